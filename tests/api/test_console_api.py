"""The web console's API: who am I, the live call list, recordings, the dashboard and
the model report, with the role of every key, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import soundfile as sf

from api.dashboard import PLOT_NAMES, render_plot
from api.security import ROLES
from api.store import Store
from tests.api.conftest import BACKENDS
from tests.api.test_app_calls import (
    WITA,
    Env,
    new_call_id,
    new_number,
    running_env,
    wav,
)

PNG = b"\x89PNG\r\n\x1a\n"
WIB = timezone(timedelta(hours=7))


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    tmp = tmp_path_factory.mktemp(f"console-{request.param}")
    with running_env(request.param, tmp, key_name="console") as e:
        yield e


# --- roles -----------------------------------------------------------------------------

ALL = set(ROLES)
READERS = {"call_taker", "supervisor", "admin", "data_scientist"}
SUPERVISORS = {"supervisor", "admin"}
DASHBOARD = {"supervisor", "admin", "data_scientist"}
GET_ENDPOINTS: dict[str, set[str]] = {
    "/v1/me": ALL,
    "/v1/calls": READERS,
    "/v1/dashboard": DASHBOARD,
    "/v1/dashboard/plots/heatmap.png": DASHBOARD,
    "/v1/model/report": ALL,
    "/v1/model/report/roc.png": ALL,
}


@pytest.mark.parametrize("path", sorted(GET_ENDPOINTS))
def test_role_matrix(env: Env, path: str) -> None:
    for role in ROLES:
        response = env.client.get(path, headers=env.auth(role))
        expected = 200 if role in GET_ENDPOINTS[path] else 403
        assert response.status_code == expected, (role, path, response.text)
        if expected == 403:
            assert "allowed roles" in response.json()["detail"]
    assert env.client.get(path).status_code == 401
    bad = {"X-API-Key": "cs_" + "A" * 43}
    assert env.client.get(path, headers=bad).status_code == 401


def test_recording_is_for_supervisors_only(env: Env) -> None:
    call_id = env.register()["call_id"]
    assert env.upload(call_id, wav(seed=3)).status_code == 200
    path = f"/v1/calls/{call_id}/recording"
    for role in ROLES:
        expected = 200 if role in SUPERVISORS else 403
        assert env.client.get(path, headers=env.auth(role)).status_code == expected, role
    assert env.client.get(path).status_code == 401


def test_me_lists_capabilities_per_role(env: Env) -> None:
    expected = {
        "call_taker": {"dispose", "model"},
        "supervisor": {"dispose", "review", "queue", "model", "dashboard", "report"},
        "data_scientist": {"model", "export", "dashboard"},
        "admin": {"dispose", "review", "queue", "audit", "model", "export", "dashboard", "report"},
    }
    for role, allowed in expected.items():
        body = env.client.get("/v1/me", headers=env.auth(role)).json()
        assert body["role"] == role and body["name"] == f"console {role}"
        assert isinstance(body["key_id"], int)
        assert {k for k, v in body["roles_allowed"].items() if v} == allowed
        assert set(body["roles_allowed"]) == set(expected["admin"])
        assert body["timezone"] == "UTC"  # no CALLSIFT_TIMEZONE: the console says UTC


# --- call list -------------------------------------------------------------------------


def test_recent_calls_newest_first_and_polling_with_since(env: Env) -> None:
    first = env.register()["call_id"]
    listed = env.client.get("/v1/calls", headers=env.auth()).json()
    assert listed["calls"][0]["call_id"] == first
    assert "never blocks" in listed["advisory"]["en"]
    latest = listed["latest"]
    assert latest == listed["calls"][0]["created_at"]

    second = env.register()["call_id"]
    third = env.register()["call_id"]
    polled = env.client.get("/v1/calls", params={"since": latest}, headers=env.auth()).json()
    assert [c["call_id"] for c in polled["calls"]] == [third, second]
    again = env.client.get("/v1/calls", params={"since": polled["latest"]}, headers=env.auth())
    assert again.json()["calls"] == []
    assert again.json()["latest"] is not None  # keeps the since the client sent

    limited = env.client.get("/v1/calls", params={"limit": 2}, headers=env.auth()).json()
    assert [c["call_id"] for c in limited["calls"]] == [third, second]
    item = limited["calls"][0]
    assert item["pre_score"]["stage"] == "pre_answer" and item["has_audio"] is False
    assert "audio_file" not in item


def test_recent_calls_refuses_bad_parameters(env: Env) -> None:
    for params in ({"limit": 0}, {"limit": 201}, {"since": "yesterday"}):
        response = env.client.get("/v1/calls", params=params, headers=env.auth())
        assert response.status_code == 422, params
    naive = env.client.get("/v1/calls", params={"since": "2025-01-01T00:00:00"}, headers=env.auth())
    assert naive.status_code == 422 and "UTC offset" in naive.json()["detail"]


def test_recent_calls_carry_the_numbers_recent_record(env: Env) -> None:
    number = new_number()
    old = env.register(caller_id=number, started_at=datetime.now(WITA) - timedelta(days=10))
    pranked = env.register(caller_id=number)
    latest = env.register(caller_id=number)
    withheld = env.register(caller_id="")
    for call_id in (old["call_id"], pranked["call_id"]):
        response = env.client.post(
            f"/v1/calls/{call_id}/disposition", json={"label": "prank"}, headers=env.auth()
        )
        assert response.status_code == 200
    calls = env.client.get("/v1/calls", params={"limit": 10}, headers=env.auth()).json()["calls"]
    by_id = {c["call_id"]: c for c in calls}
    assert by_id[latest["call_id"]]["caller_recent"] == {"calls_7d": 2, "pranks": 2, "ghosts": 0}
    assert by_id[withheld["call_id"]]["caller_recent"] == {
        "calls_7d": 0,
        "pranks": 0,
        "ghosts": 0,
    }
    # A supervisor's clear resets the confirmed pranks (redress).
    cleared = env.client.post(
        f"/v1/numbers/{number}/review", json={"action": "clear"}, headers=env.auth("supervisor")
    )
    assert cleared.status_code == 200
    calls = env.client.get("/v1/calls", params={"limit": 10}, headers=env.auth()).json()["calls"]
    mine = next(c for c in calls if c["call_id"] == latest["call_id"])
    assert mine["caller_recent"] == {"calls_7d": 2, "pranks": 0, "ghosts": 0}


def test_a_numbers_last_calls_for_the_console_panel(env: Env) -> None:
    number, other = new_number(), new_number()
    mine = [env.register(caller_id=number)["call_id"] for _ in range(3)]
    env.register(caller_id=other)
    for role in ("call_taker", "data_scientist"):  # calls are readable; no timeline needed
        listed = env.client.get(
            "/v1/calls", params={"caller_id": number, "limit": 2}, headers=env.auth(role)
        )
        assert listed.status_code == 200, listed.text
        assert [c["call_id"] for c in listed.json()["calls"]] == mine[:0:-1]
    for bad in ("", "0812", "+62 812"):
        refused = env.client.get("/v1/calls", params={"caller_id": bad}, headers=env.auth())
        assert refused.status_code == 422, bad
        assert "caller_id" in refused.text


# --- recordings ------------------------------------------------------------------------


def test_recording_is_served_with_its_type_and_without_the_server_path(env: Env) -> None:
    call_id = env.register()["call_id"]
    data = wav(seed=11)
    assert env.upload(call_id, data).status_code == 200
    response = env.client.get(f"/v1/calls/{call_id}/recording", headers=env.auth("supervisor"))
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["content-type"] == "audio/wav"
    headers = " ".join(response.headers.values())
    assert str(env.tmp) not in headers and "recordings" not in headers
    assert f"{call_id}.wav" in response.headers["content-disposition"]


@pytest.mark.parametrize(
    ("fmt", "subtype", "stored_type", "transcoded"),
    [
        ("MP3", "MPEG_LAYER_III", "audio/mpeg", False),
        ("WAV", "ULAW", "audio/wav", False),
        ("WAV", "GSM610", "audio/wav", True),  # mono only
        ("WAV", "IMA_ADPCM", "audio/wav", True),
        ("AU", "ULAW", "application/octet-stream", True),
    ],
)
def test_a_recorder_format_is_scored_and_played(
    env: Env, fmt: str, subtype: str, stored_type: str, transcoded: bool
) -> None:
    call_id = env.register()["call_id"]
    channels = 1 if subtype == "GSM610" else 2
    data = wav(4.0, seed=12, channels=channels, fmt=fmt, subtype=subtype)
    scored = env.upload(call_id, data, **({"caller_channel": "right"} if channels == 2 else {}))
    assert scored.status_code == 200, scored.text
    assert scored.json()["duration_s"] == pytest.approx(4.0, abs=0.1)
    url = f"/v1/calls/{call_id}/recording"
    played = env.client.get(url, headers=env.auth("supervisor"))
    assert played.status_code == 200
    if transcoded:
        # Browsers play no GSM, ADPCM or AU: a PCM 16 WAV of it, its channels, its rate.
        assert played.headers["content-type"] == "audio/wav"
        assert played.headers["x-callsift-transcoded-from"] == f"{fmt} {subtype}"
        info = sf.info(io.BytesIO(played.content))
        assert (info.format, info.subtype, info.channels) == ("WAV", "PCM_16", channels)
        assert info.samplerate == 8000 and info.duration == pytest.approx(4.0, abs=0.1)
        decoded, _ = sf.read(io.BytesIO(data), dtype="float32")
        pcm, _ = sf.read(io.BytesIO(played.content), dtype="float32")
        assert np.abs(pcm - decoded[: len(pcm)]).max() < 2e-4  # 16-bit rounding only
    else:
        assert played.content == data
        assert played.headers["content-type"] == stored_type
        assert "x-callsift-transcoded-from" not in played.headers
    as_stored = env.client.get(url, params={"original": "true"}, headers=env.auth("supervisor"))
    assert as_stored.content == data
    assert as_stored.headers["content-type"] == stored_type


def test_a_stored_recording_that_no_longer_decodes_is_named_not_a_500(env: Env) -> None:
    call_id = env.register()["call_id"]
    data = wav(2.0, seed=13, subtype="GSM610")
    assert env.upload(call_id, data).status_code == 200
    stored = env.store.get_call(call_id).audio_file
    assert stored is not None
    with open(stored, "r+b") as fh:  # the disk under the recordings folder went bad
        fh.write(b"\0" * 64)
    url = f"/v1/calls/{call_id}/recording"
    played = env.client.get(url, headers=env.auth("supervisor"))
    assert played.status_code == 422
    assert f"the stored recording of call {call_id} cannot be re-encoded" in played.json()["detail"]
    assert "original=true" in played.json()["detail"]
    assert str(env.tmp) not in played.text and "recordings" not in played.text
    raw = env.client.get(url, params={"original": "true"}, headers=env.auth("supervisor"))
    assert raw.status_code == 200 and raw.content[64:] == data[64:]


def test_recording_missing_is_404_with_a_clear_message(env: Env) -> None:
    call_id = env.register()["call_id"]
    response = env.client.get(f"/v1/calls/{call_id}/recording", headers=env.auth("supervisor"))
    assert response.status_code == 404
    assert response.json()["detail"] == f"call {call_id} has no stored recording"
    unknown = env.client.get(f"/v1/calls/{new_call_id()}/recording", headers=env.auth("supervisor"))
    assert unknown.status_code == 404 and "unknown call_id" in unknown.json()["detail"]


# --- dashboard -------------------------------------------------------------------------


def _seed_dashboard(store: Store, now: datetime) -> tuple[str, str]:
    """Five calls in the window, one too old; returns the two local dates used (WITA)."""
    day1 = (now.astimezone(WITA) - timedelta(days=2)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    day2 = (now.astimezone(WITA) - timedelta(days=1)).replace(
        hour=21, minute=0, second=0, microsecond=0
    )
    calls = [
        ("d1", day1, "prank", {"incident_type": "fire"}),
        ("d2", day1 + timedelta(minutes=5), "emergency", {"incident_type": "fire"}),
        ("d3", day1 + timedelta(minutes=9), None, {"incident_type": "medical"}),
        ("d4", day2, "ghost", {}),
        # 23:30 at UTC+7 is 00:30 the next day at UTC+8: dates follow the time zone asked for.
        ("d5", (day1 + timedelta(days=1)).replace(hour=0, minute=30).astimezone(WIB), None, {}),
        ("old", now - timedelta(days=40), "prank", {"incident_type": "fire"}),
    ]
    for call_id, started, label, meta in calls:
        store.register_call(
            call_id=call_id,
            caller_id="+6281100000001",
            started_at=started,
            metadata=meta,
            actor="test",
        )
        if label is not None:
            store.set_disposition(call_id, label=label, note=None, actor="test")
    return day1.date().isoformat(), day2.date().isoformat()


def test_dashboard_counts_on_a_hand_made_dataset(store: Store) -> None:
    now = datetime.now(UTC)
    date1, date2 = _seed_dashboard(store, now)
    counts = store.dashboard_counts(now=now, tz=ZoneInfo("Asia/Makassar"))
    zero = {"emergency": 0, "non_emergency": 0, "prank": 0, "ghost": 0, "unlabelled": 0}
    assert counts["days"] == [
        {"date": date1, **zero, "prank": 1, "emergency": 1, "unlabelled": 1},
        {"date": date2, **zero, "ghost": 1, "unlabelled": 1},
    ]
    assert counts["share"] == [
        {"date": date1, "prank_share": 0.5, "ghost_share": 0.0},
        {"date": date2, "prank_share": 0.0, "ghost_share": 1.0},
    ]
    heat = counts["heatmap"]
    assert len(heat) == 7 and all(len(row) == 24 for row in heat)
    assert sum(map(sum, heat)) == 5
    weekday1 = datetime.fromisoformat(date1).weekday()
    weekday2 = datetime.fromisoformat(date2).weekday()
    assert heat[weekday1][10] == 3 and heat[weekday2][21] == 1 and heat[weekday2][0] == 1
    assert counts["incident_types"] == [
        {"type": "fire", "calls": 2},
        {"type": "medical", "calls": 1},
    ]
    # Without a centre time zone, each call keeps its own offset: d5 stays on day 1, 23:30.
    own = store.dashboard_counts(now=now, tz=None)
    assert [d["date"] for d in own["days"]] == [date1, date2]
    assert own["days"][0]["unlabelled"] == 2 and own["days"][1]["unlabelled"] == 0
    assert own["heatmap"][weekday1][23] == 1


def test_dashboard_counts_of_an_empty_database(store: Store) -> None:
    counts = store.dashboard_counts(now=datetime.now(UTC))
    assert counts == {
        "days": [],
        "share": [],
        "heatmap": [[0] * 24 for _ in range(7)],
        "incident_types": [],
    }


def test_dashboard_endpoint_and_plots(env: Env) -> None:
    kind = f"kind-{new_call_id()}"
    env.register(metadata={"incident_type": kind})
    body = env.client.get("/v1/dashboard", headers=env.auth("supervisor")).json()
    assert {"days", "share", "heatmap", "incident_types", "advisory"} <= body.keys()
    assert sum(d["unlabelled"] for d in body["days"]) >= 1
    assert {"type": kind, "calls": 1} in body["incident_types"]
    for name in PLOT_NAMES:
        response = env.client.get(
            f"/v1/dashboard/plots/{name}.png", headers=env.auth("data_scientist")
        )
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(PNG)
    unknown = env.client.get("/v1/dashboard/plots/roc.png", headers=env.auth("supervisor"))
    assert unknown.status_code == 404 and "calls_per_day" in unknown.json()["detail"]


def test_plots_of_no_data_are_still_pngs() -> None:
    empty = {"days": [], "share": [], "heatmap": [[0] * 24 for _ in range(7)], "incident_types": []}
    drawn = {name: render_plot(name, empty) for name in PLOT_NAMES}
    assert all(png.startswith(PNG) for png in drawn.values())
    # Every empty plot is the same "no calls yet" text under a different title.
    assert len(set(drawn.values())) == len(PLOT_NAMES)
    with pytest.raises(Exception, match="unknown plot"):
        render_plot("nope", empty)


# --- model report ----------------------------------------------------------------------


def test_model_report_lists_card_text_and_plots(env: Env) -> None:
    body = env.client.get("/v1/model/report", headers=env.auth("call_taker")).json()
    assert body["version"] == body["card"]["version"]
    assert body["report_md"] and body["report_md"].startswith("#")
    assert {"roc", "pr", "calibration", "confusion"} <= set(body["plots"])
    for name in body["plots"]:
        response = env.client.get(f"/v1/model/report/{name}.png", headers=env.auth())
        assert response.status_code == 200, name
        assert response.content.startswith(PNG)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/model/report/..%2Fcard.json.png",
        "/v1/model/report/..%2F..%2Fdefault%2Freport%2Froc.png",
        "/v1/model/report/%2e%2e%2fcard.png",
        "/v1/model/report/card.png",
        "/v1/model/report/ROC.png",
        "/v1/model/report/roc.png.png",
        "/v1/model/report/scores.png",
        "/v1/model/report/.png",
    ],
)
def test_model_report_plot_refuses_anything_not_listed(env: Env, path: str) -> None:
    response = env.client.get(path, headers=env.auth("admin"))
    assert response.status_code == 404, response.text
    assert not response.content.startswith(PNG)
