"""GET /v1/reports/weekly and ``callsift report``: a week of calls seeded through the
public API, and the numbers the page shows for them (issue 21)."""

from __future__ import annotations

import io
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from api.reports import OUTCOMES, TEXT, mask_number, outcome
from tests.api.conftest import BACKENDS
from tests.api.test_app_calls import Env, new_number, running_env, wav

TZ = ZoneInfo("Asia/Makassar")


def silence(seconds: float = 10.0) -> bytes:
    """Digital silence: the shipped model flags 10 s of it as a possible ghost call."""
    buffer = io.BytesIO()
    sf.write(buffer, np.zeros(int(seconds * 8000)), 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def voiced(seconds: float = 15.0) -> bytes:
    """A seeded voiced-pulse signal at 120 Hz in syllable-length bursts: the shipped model
    flags it neither prank nor ghost (a prank it misses, for the report's "missed" row)."""
    rng = np.random.default_rng(1)
    t = np.arange(int(seconds * 8000)) / 8000
    phase = 2 * np.pi * np.cumsum(120 + 20 * np.sin(2 * np.pi * 0.5 * t)) / 8000
    pulses = sum(np.sin(k * phase) / k for k in range(1, 20))
    bursts = (np.sin(2 * np.pi * 4 * t) > 0) * (np.sin(2 * np.pi * 0.3 * t) > -0.3)
    y = 0.2 * pulses * bursts + 0.01 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    sf.write(buffer, y, 8000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def iso_week(day: date) -> str:
    iso = day.isocalendar()
    return f"{iso.year}-W{iso.week:02d}"


class Seeded:
    def __init__(self, env: Env, week: str, monday: date, calls: list[dict[str, Any]]) -> None:
        self.env, self.week, self.monday, self.calls = env, week, monday, calls
        self.numbers = Counter(c["caller_id"] for c in calls if c["label"] == "prank")


def _seed(env: Env) -> Seeded:
    today = datetime.now(TZ).date()
    monday = today - timedelta(days=today.weekday() + 14)  # two weeks back: complete
    start = datetime(monday.year, monday.month, monday.day, tzinfo=TZ)
    pranksters = [new_number() for _ in range(3)]
    calls: list[dict[str, Any]] = []
    for i in range(50):
        at = start + timedelta(days=i % 7, hours=(i * 5) % 24, minutes=i)
        kind = i % 5
        caller = pranksters[i % 3] if kind == 2 else new_number()
        extra: dict[str, Any] = (
            {"metadata": {"incident_type": "fire" if i % 2 else "medical"}} if i < 20 else {}
        )
        registered = env.register(caller_id=caller, started_at=at, **extra)
        call_id = registered["call_id"]
        flag = None
        if kind in (0, 1):
            flag = env.upload(call_id, silence()).json()["flag"]
        elif i == 2:  # a prankster's first call, voiced: the prank the model misses
            answer = env.upload(call_id, voiced()).json()
            flag = answer.get("flag")
            assert flag == "none", answer
        elif kind == 2 or (kind == 4 and i % 2):
            flag = env.upload(call_id, wav(seed=i)).json()["flag"]
        label = {0: "ghost", 1: "emergency", 2: "prank", 3: "non_emergency"}.get(kind)
        if label is not None:
            response = env.client.post(
                f"/v1/calls/{call_id}/disposition", json={"label": label}, headers=env.auth()
            )
            assert response.status_code == 200, response.text
        duration = env.get_call(call_id).json()["duration_s"]
        calls.append(
            {"caller_id": caller, "label": label, "flag": flag, "duration_s": duration, "at": at}
        )
    # Earlier weeks, for the share table: one prank 3 weeks back, one plain call 4 weeks back.
    for weeks_back, label in ((1, "prank"), (2, None)):
        old = env.register(started_at=start - timedelta(weeks=weeks_back) + timedelta(hours=12))
        if label:
            env.client.post(
                f"/v1/calls/{old['call_id']}/disposition", json={"label": label}, headers=env.auth()
            )
    return Seeded(env, iso_week(monday), monday, calls)


@pytest.fixture(scope="module", params=BACKENDS)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Seeded]:
    tmp = tmp_path_factory.mktemp(f"reports-{request.param}")
    with running_env(request.param, tmp, timezone="Asia/Makassar") as env:
        yield _seed(env)


def _page(seeded: Seeded, role: str = "supervisor", **params: str) -> Any:
    return seeded.env.client.get(
        "/v1/reports/weekly",
        params={"week": seeded.week, **params},
        headers=seeded.env.auth(role),
    )


def _row(*cells: object) -> str:
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def test_page_counts_outcomes_and_flags(seeded: Seeded) -> None:
    response = _page(seeded)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    t = TEXT["en"]
    outcomes = Counter(outcome(c["label"], c["flag"]) for c in seeded.calls)
    assert outcomes["ghost"] == 10 and outcomes["prank"] == 10
    assert _row("Total", *(outcomes[k] for k in OUTCOMES), 50) in page
    assert "Calls this week: 50." in page
    assert "Asia/Makassar" in page
    # Caught/cleared/missed from the flags the API returned and the dispositions given.
    scored = [c for c in seeded.calls if c["label"] and c["flag"] is not None]
    caught = sum(c["flag"] != "none" and c["label"] in ("prank", "ghost") for c in scored)
    cleared = sum(c["flag"] != "none" and c["label"] not in ("prank", "ghost") for c in scored)
    missed = sum(c["flag"] == "none" and c["label"] in ("prank", "ghost") for c in scored)
    assert caught > 0 and cleared > 0 and missed > 0  # every branch is exercised
    assert _row(t["caught"], caught) in page
    assert _row(t["cleared"], cleared) in page
    assert _row(t["missed"], missed) in page
    # Minutes spent on confirmed ghost calls: their recordings' durations.
    ghost_s = sum(c["duration_s"] for c in seeded.calls if c["label"] == "ghost")
    assert _row(t["ghost"], f"{ghost_s / 60:.1f}") in page
    # Pranks by weekday and hour: every prank of the week is in the heat table once.
    heat = re.search(r'<section id="heat">(.*?)</section>', page, re.S)
    assert heat is not None
    cells = re.findall(r"<td[^>]*>(\d*)</td>", heat.group(1))
    pranks = outcomes["prank"] + outcomes["flag_prank"]
    assert sum(int(c) for c in cells if c) == pranks
    # The 4 earlier weeks: the prank 3 weeks back is 100% of its week's one call.
    earlier = iso_week(seeded.monday - timedelta(weeks=1))
    assert _row(earlier, 1, "100.0%", "0.0%") in page
    assert "fire" in page and "medical" in page
    # Self-contained: no external stylesheet, script or image.
    assert "@media print" in page
    assert not re.search(r'(src|href)="(https?:)?//', page)


def test_supervisor_sees_numbers_admin_masked(seeded: Seeded) -> None:
    top, pranks = seeded.numbers.most_common(1)[0]
    supervisor = _page(seeded, "supervisor").text
    admin = _page(seeded, "admin").text
    assert _row(top, pranks) in supervisor
    assert top not in admin
    assert _row(mask_number(top), pranks) in admin
    assert mask_number("+6281234567567") == "+62812****567"


@pytest.mark.parametrize("role", ["call_taker", "data_scientist"])
def test_other_roles_are_refused(seeded: Seeded, role: str) -> None:
    response = _page(seeded, role)
    assert response.status_code == 403
    assert "supervisor, admin" in response.json()["detail"]
    assert (
        seeded.env.client.get("/v1/reports/weekly", params={"week": seeded.week}).status_code == 401
    )


def test_empty_week_says_so(seeded: Seeded) -> None:
    quiet = iso_week(seeded.monday - timedelta(weeks=30))
    response = seeded.env.client.get(
        "/v1/reports/weekly", params={"week": quiet}, headers=seeded.env.auth("admin")
    )
    assert response.status_code == 200
    assert TEXT["en"]["no_calls"] in response.text


@pytest.mark.parametrize(
    ("week", "says"),
    [
        ("2026-49", "YYYY-Www"),
        ("W49-2026", "YYYY-Www"),
        ("2025-W53", "no week 53"),
        ("2025-W00", "no week 0"),
        (iso_week(datetime.now(UTC).date() + timedelta(weeks=2)), "future"),
    ],
)
def test_bad_weeks_are_422(seeded: Seeded, week: str, says: str) -> None:
    response = seeded.env.client.get(
        "/v1/reports/weekly", params={"week": week}, headers=seeded.env.auth("supervisor")
    )
    assert response.status_code == 422, response.text
    assert says in response.json()["detail"]


def test_bad_lang_is_422(seeded: Seeded) -> None:
    assert _page(seeded, lang="fr").status_code == 422


def test_indonesian_page(seeded: Seeded) -> None:
    response = _page(seeded, lang="id")
    assert response.status_code == 200
    page = response.text
    t = TEXT["id"]
    assert '<html lang="id">' in page
    assert t["title"].format(week=seeded.week) in page
    outcomes = Counter(outcome(c["label"], c["flag"]) for c in seeded.calls)
    assert _row(t["total_col"], *(outcomes[k] for k in OUTCOMES), 50) in page
    earlier = iso_week(seeded.monday - timedelta(weeks=1))
    assert _row(earlier, 1, "100,0%", "0,0%") in page  # Indonesian decimal comma
    assert "Calls this week" not in page


def test_cli_writes_the_same_report(
    seeded: Seeded, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import callsift

    settings = seeded.env.app.state.runtime.settings
    monkeypatch.setenv("CALLSIFT_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("CALLSIFT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("CALLSIFT_TIMEZONE", "Asia/Makassar")
    out = tmp_path / "week.html"
    runner = CliRunner()
    result = runner.invoke(
        callsift.app, ["report", "--week", seeded.week, "--lang", "id", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    page = out.read_text(encoding="utf-8")
    outcomes = Counter(outcome(c["label"], c["flag"]) for c in seeded.calls)
    assert _row(TEXT["id"]["total_col"], *(outcomes[k] for k in OUTCOMES), 50) in page
    top = seeded.numbers.most_common(1)[0][0]
    assert top not in page and mask_number(top) in page  # masked unless --full-numbers
    bad = runner.invoke(callsift.app, ["report", "--week", "2026-49", "--out", str(out)])
    assert bad.exit_code != 0
    assert "YYYY-Www" in str(bad.exception)
