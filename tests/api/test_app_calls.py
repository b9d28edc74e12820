"""The HTTP service end to end, on SQLite and PostgreSQL: call lifecycle, idempotent
retries, bad input, roles, and scoring through a database outage."""

from __future__ import annotations

import functools
import io
import itertools
import json
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.main import create_app
from api.security import ROLES
from api.service import LoadedModel, ModelHolder, load_scoring_model
from api.settings import Settings
from api.store import Store
from classifier.manifest import validate_manifest
from tests.api.conftest import BACKENDS, fresh_pg_schema

WITA = timezone(timedelta(hours=8))
MAX_AUDIO_BYTES = 300_000
MAX_AUDIO_SECONDS = 20.0
MAX_JSON_BYTES = 16_384
UNREACHABLE_PG = "postgresql+psycopg://postgres@127.0.0.1:1/test"


@functools.cache
def default_model() -> LoadedModel:
    """The shipped model, loaded once for every app of the session."""
    return load_scoring_model()


def preloaded_holder(**kwargs: Any) -> ModelHolder:
    holder = ModelHolder(**kwargs)
    holder.set_for_tests(default_model())
    return holder


def wav(
    seconds: float = 3.0,
    *,
    seed: int = 0,
    sr: int = 8000,
    channels: int = 1,
    fmt: str = "WAV",
    subtype: str = "PCM_16",
) -> bytes:
    """Seeded line noise plus a 440 Hz tone, shape (seconds * sr, channels), as file bytes."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    mono = 0.05 * rng.standard_normal(t.size) + 0.3 * np.sin(2 * np.pi * 440.0 * t)
    data = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    buffer = io.BytesIO()
    sf.write(buffer, data, sr, format=fmt, subtype=subtype)
    return buffer.getvalue()


_numbers = itertools.count(1)


def new_number() -> str:
    return f"+62812{uuid.uuid4().int % 10**6:06d}{next(_numbers):03d}"


def new_call_id() -> str:
    return f"c-{uuid.uuid4().hex[:16]}"


@dataclass
class Env:
    """One running app on one database, with a key per role."""

    app: FastAPI
    client: TestClient
    store: Store
    keys: dict[str, str]
    tmp: Path

    def auth(self, role: str = "call_taker") -> dict[str, str]:
        return {"X-API-Key": self.keys[role]}

    def register(
        self,
        *,
        call_id: str | None = None,
        caller_id: str | None = None,
        started_at: datetime | None = None,
        role: str = "call_taker",
        **extra: Any,
    ) -> dict[str, Any]:
        body = {
            "call_id": call_id or new_call_id(),
            "caller_id": new_number() if caller_id is None else caller_id,
            "started_at": (started_at or datetime.now(WITA) - timedelta(minutes=5)).isoformat(),
            **extra,
        }
        response = self.client.post("/v1/calls", json=body, headers=self.auth(role))
        assert response.status_code == 200, response.text
        return {**response.json(), "request": body}

    def upload(self, call_id: str, data: bytes, **params: str) -> Any:
        return self.client.post(
            f"/v1/calls/{call_id}/audio",
            files={"file": ("call.wav", data, "audio/wav")},
            params=params,
            headers=self.auth(),
        )

    def get_call(self, call_id: str) -> Any:
        return self.client.get(f"/v1/calls/{call_id}", headers=self.auth())


def make_settings(url: str, tmp: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": url,
        "data_dir": tmp / "data",
        "max_audio_bytes": MAX_AUDIO_BYTES,
        "max_audio_seconds": MAX_AUDIO_SECONDS,
        "max_json_bytes": MAX_JSON_BYTES,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@contextmanager
def running_env(
    backend: str, tmp: Path, *, key_name: str = "test", **overrides: Any
) -> Iterator[Env]:
    """An app on a fresh database of ``backend``, with a key per role named ``key_name``."""
    with ExitStack() as stack:
        if backend == "sqlite":
            url = f"sqlite:///{tmp / 'callsift.db'}"
        else:
            url = stack.enter_context(fresh_pg_schema())
        app = create_app(make_settings(url, tmp, **overrides), models=preloaded_holder())
        client = stack.enter_context(TestClient(app, raise_server_exceptions=False))
        store = app.state.runtime.store
        keys = {
            role: store.create_key(role=role, name=f"{key_name} {role}", actor="cli")[0]
            for role in ROLES
        }
        yield Env(app=app, client=client, store=store, keys=keys, tmp=tmp)


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with running_env(request.param, tmp_path_factory.mktemp(f"app-{request.param}")) as e:
        yield e


# --- lifecycle -------------------------------------------------------------------------


def test_call_audio_disposition_then_history_of_next_call(env: Env) -> None:
    number = new_number()
    first = env.register(caller_id=number, metadata={"trunk": "7"})
    assert first["created"] is True
    assert first["stage"] == "pre_answer"
    assert first["history_unavailable"] is False and first["stored"] is True
    assert first["model_version"] == default_model().version
    assert "answer and handle every call" in first["advisory"]["en"]
    assert first["p_prank"] + first["p_ghost"] + first["p_emergency"] + first[
        "p_non_emergency"
    ] == pytest.approx(1.0)
    assert not any(r["group"] == "prank_history" for r in first["reasons"])

    scored = env.upload(first["call_id"], wav(seed=1))
    assert scored.status_code == 200, scored.text
    body = scored.json()
    assert body["stage"] == "call" and body["stored"] is True
    assert body["duration_s"] == pytest.approx(3.0)
    assert body["flag"] in {
        "none",
        "possible_prank",
        "likely_prank",
        "possible_ghost",
        "likely_ghost",
    }
    assert body["elapsed_ms"] > 0

    disp = env.client.post(
        f"/v1/calls/{first['call_id']}/disposition",
        json={"label": "prank", "note": "laughing children"},
        headers=env.auth(),
    )
    assert disp.status_code == 200, disp.text
    assert disp.json()["changed"] is True

    stored = env.get_call(first["call_id"]).json()
    assert stored["label"] == "prank" and stored["label_note"] == "laughing children"
    assert stored["has_audio"] is True and stored["score"]["flag"] == body["flag"]
    assert stored["metadata"] == {"trunk": "7"}
    # The call's own UTC offset survives the round trip.
    assert stored["started_at"].endswith("+08:00")

    # The next call from the number, after the disposition, sees the prank.
    second = env.register(caller_id=number, started_at=datetime.now(UTC) + timedelta(seconds=30))
    assert second["p_prank"] > first["p_prank"]
    assert any(r["group"] == "prank_history" for r in second["reasons"])

    timeline = env.client.get(f"/v1/numbers/{number}", headers=env.auth("supervisor"))
    assert timeline.status_code == 200
    assert [c["call_id"] for c in timeline.json()["calls"]] == [
        first["call_id"],
        second["call_id"],
    ]
    flagged = env.client.get("/v1/numbers/flagged", headers=env.auth("supervisor")).json()
    row = next(n for n in flagged["numbers"] if n["caller_id"] == number)
    assert row["pranks"] == 1  # the second call starts in the future: not counted yet
    assert "never blocks, drops or deprioritises" in flagged["advisory"]["en"]


def test_arrival_answer_is_the_schema_and_the_stored_score(env: Env) -> None:
    from api.schemas import CallScoredOut
    from api.service import pre_answer_score, score_payload
    from classifier.history import history_features

    number = new_number()
    earlier = env.register(caller_id=number, started_at=datetime.now(WITA) - timedelta(hours=2))
    env.client.post(
        f"/v1/calls/{earlier['call_id']}/disposition", json={"label": "prank"}, headers=env.auth()
    )
    started = datetime.now(WITA) + timedelta(seconds=30)  # after the disposition
    body = {"call_id": new_call_id(), "caller_id": number, "started_at": started.isoformat()}
    response = env.client.post("/v1/calls", json=body, headers=env.auth())
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    # The answer rendered by hand is what the declared model would have sent.
    assert list(answer) == list(CallScoredOut.model_fields)
    assert CallScoredOut.model_validate(answer).model_dump(mode="json") == answer
    # The score is the model's on this call's history, and it is what was stored.
    loaded = default_model()
    history = history_features(env.store.caller_history(number, before=started), at=started)
    expected = score_payload(
        pre_answer_score(
            loaded.model, caller_id=number, started_at=started, history=history, timezone=None
        ),
        model_version=loaded.version,
    )
    assert history["hist_prank"] == 1.0
    assert {k: answer[k] for k in expected} == json.loads(json.dumps(expected))
    stored = env.get_call(body["call_id"]).json()
    assert stored["pre_score"] == {k: answer[k] for k in expected}
    assert stored["model_version"] == loaded.version
    again = env.client.post("/v1/calls", json=body, headers=env.auth()).json()
    assert again["created"] is False and again["stored"] is True
    assert {k: again[k] for k in expected} == {k: answer[k] for k in expected}


def test_database_lost_between_history_and_insert(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.service import pre_answer_score
    from api.store import StoreUnavailableError
    from classifier.history import empty_history, history_features

    number = new_number()
    first = env.register(caller_id=number, started_at=datetime.now(WITA) - timedelta(hours=1))
    env.client.post(
        f"/v1/calls/{first['call_id']}/disposition", json={"label": "prank"}, headers=env.auth()
    )

    def gone(**kwargs: Any) -> Any:
        raise StoreUnavailableError("database unavailable: connection lost")

    monkeypatch.setattr(env.store, "register_call", gone)
    body = {
        "call_id": new_call_id(),
        "caller_id": number,
        "started_at": (datetime.now(UTC) + timedelta(seconds=30)).isoformat(),
    }
    response = env.client.post("/v1/calls", json=body, headers=env.auth())
    monkeypatch.undo()
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["created"] is None and answer["stored"] is False
    assert answer["history_unavailable"] is False  # the history was read and used
    started = datetime.fromisoformat(body["started_at"])
    loaded = default_model()
    with_history, without = (
        pre_answer_score(
            loaded.model, caller_id=number, started_at=started, history=h, timezone=None
        ).p_prank
        for h in (
            history_features(env.store.caller_history(number, before=started), at=started),
            empty_history(),
        )
    )
    assert answer["p_prank"] == with_history != without
    assert env.get_call(body["call_id"]).status_code == 404


def test_clearing_a_number_removes_its_past_pranks_from_history(env: Env) -> None:
    number = new_number()
    first = env.register(caller_id=number)
    env.client.post(
        f"/v1/calls/{first['call_id']}/disposition", json={"label": "prank"}, headers=env.auth()
    )
    soon = datetime.now(UTC) + timedelta(seconds=20)
    before_clear = env.register(caller_id=number, started_at=soon)
    review = env.client.post(
        f"/v1/numbers/{number}/review",
        json={"action": "clear", "note": "number reassigned"},
        headers=env.auth("supervisor"),
    )
    assert review.status_code == 200, review.text
    assert review.json()["cleared_calls"] == 1
    after_clear = env.register(caller_id=number, started_at=soon + timedelta(seconds=1))
    assert after_clear["p_prank"] < before_clear["p_prank"]
    assert not any(r["group"] == "prank_history" for r in after_clear["reasons"])
    audit = env.client.get("/v1/audit", headers=env.auth("admin")).json()["entries"]
    entry = next(e for e in audit if e["action"] == "number.review" and e["target_id"] == number)
    assert entry["before"]["history_weights"] == {first["call_id"]: 1.0}
    assert entry["after"]["history_weights"] == {first["call_id"]: 0.0}
    assert entry["actor"].startswith("key:")


def test_raw_body_stereo_and_flac_uploads(env: Env) -> None:
    call = env.register()
    raw = env.client.post(
        f"/v1/calls/{call['call_id']}/audio",
        content=wav(seed=2, channels=2),
        params={"caller_channel": "left"},
        headers={**env.auth(), "Content-Type": "application/octet-stream"},
    )
    assert raw.status_code == 200, raw.text
    flac = env.client.post(
        f"/v1/calls/{call['call_id']}/audio",
        content=wav(seed=3, sr=16000, fmt="FLAC"),
        headers={**env.auth(), "Content-Type": "audio/flac"},
    )
    assert flac.status_code == 200, flac.text
    assert env.get_call(call["call_id"]).json()["duration_s"] == pytest.approx(3.0)


def test_retries_never_count_a_call_twice(env: Env) -> None:
    number = new_number()
    first = env.register(caller_id=number)
    body = first["request"]
    again = env.client.post("/v1/calls", json=body, headers=env.auth())
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["p_prank"] == first["p_prank"]
    for _ in range(2):
        assert env.upload(body["call_id"], wav(seed=4)).status_code == 200
    url = f"/v1/calls/{body['call_id']}/disposition"
    changes = [
        env.client.post(url, json={"label": "ghost"}, headers=env.auth()).json()["changed"]
        for _ in range(2)
    ]
    assert changes == [True, False]
    calls = env.client.get(f"/v1/numbers/{number}", headers=env.auth("supervisor")).json()["calls"]
    assert len(calls) == 1
    audit = env.client.get("/v1/audit", headers=env.auth("admin")).json()["entries"]
    assert [e["target_id"] for e in audit if e["action"] == "call.disposition"].count(
        body["call_id"]
    ) == 1


def test_call_id_reused_for_another_call_is_a_conflict(env: Env) -> None:
    call = env.register()
    body = {**call["request"], "started_at": datetime.now(UTC).isoformat()}
    response = env.client.post("/v1/calls", json=body, headers=env.auth())
    assert response.status_code == 409
    assert "different caller_id or started_at" in response.json()["detail"]
    assert env.get_call(call["call_id"]).json()["started_at"].endswith("+08:00")


def test_withheld_and_simless_callers(env: Env) -> None:
    withheld = env.register(caller_id="")
    assert withheld["created"] is True
    simless = env.register(caller_id="simless:356938035643809")
    assert simless["created"] is True


def test_export_is_a_valid_manifest(env: Env) -> None:
    call = env.register()
    assert env.upload(call["call_id"], wav(seed=5)).status_code == 200
    env.client.post(
        f"/v1/calls/{call['call_id']}/disposition", json={"label": "emergency"}, headers=env.auth()
    )
    response = env.client.get("/v1/export/labelled", headers=env.auth("data_scientist"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert call["call_id"] in response.text
    # Audio paths are relative to the recordings folder: the manifest is saved there.
    recordings = env.app.state.runtime.store.data_dir / "recordings"
    manifest = recordings / f"export-{uuid.uuid4().hex}.csv"
    manifest.write_text(response.text, encoding="utf-8")
    assert [p for p in validate_manifest(manifest) if p.severity == "error"] == []

    later = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    empty = env.client.get(
        "/v1/export/labelled", params={"since": later}, headers=env.auth("data_scientist")
    )
    assert empty.status_code == 200
    assert empty.text.strip().splitlines() == [empty.text.strip()]  # header only
    naive = env.client.get(
        "/v1/export/labelled",
        params={"since": "2025-06-01T00:00:00"},
        headers=env.auth("data_scientist"),
    )
    assert naive.status_code == 422


# --- bad input -------------------------------------------------------------------------


def _future() -> str:
    return (datetime.now(UTC) + timedelta(days=2)).isoformat()


BAD_CALLS: list[tuple[str, Any, int, str]] = [
    ("malformed JSON", b'{"call_id": "x", ', 400, "malformed JSON"),
    ("not an object", b"[1, 2]", 422, "invalid request"),
    ("unknown field", {"colour": "red"}, 422, "Extra inputs are not permitted"),
    ("wrong type", {"caller_id": 6281234567}, 422, "body.caller_id"),
    ("naive timestamp", {"started_at": "2025-06-03T19:04:11"}, 422, "timezone"),
    ("not a timestamp", {"started_at": "yesterday"}, 422, "body.started_at"),
    ("far future", {"started_at": None}, 422, "in the future"),
    ("bad number", {"caller_id": "081234"}, 422, "not an E.164 number"),
    ("bad call_id", {"call_id": "a/b"}, 422, "body.call_id"),
    ("long call_id", {"call_id": "x" * 129}, 422, "body.call_id"),
    ("metadata not text", {"metadata": {"trunk": 7}}, 422, "body.metadata"),
    ("missing field", {"caller_id": ...}, 422, "Field required"),
    ("body too large", {"metadata": {f"k{i}": "v" * 1000 for i in range(20)}}, 413, "larger than"),
]


@pytest.mark.parametrize(
    ("case", "change", "status", "message"), BAD_CALLS, ids=[c[0] for c in BAD_CALLS]
)
def test_bad_call_is_refused_and_nothing_stored(
    env: Env, case: str, change: Any, status: int, message: str
) -> None:
    call_id = new_call_id()
    body: dict[str, Any] = {
        "call_id": call_id,
        "caller_id": new_number(),
        "started_at": datetime.now(UTC).isoformat(),
    }
    if isinstance(change, bytes):
        content = change
    else:
        for key, value in change.items():
            if value is ...:
                del body[key]
            else:
                body[key] = _future() if (key == "started_at" and value is None) else value
        content = json.dumps(body).encode()
    response = env.client.post(
        "/v1/calls", content=content, headers={**env.auth(), "Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    # Field errors name the field, never echo the input back.
    assert all(set(e) == {"loc", "msg"} for e in response.json().get("errors", []))
    assert env.get_call(call_id).status_code == 404


def test_chunked_bodies_are_limited_while_streaming(env: Env) -> None:
    """Without Content-Length the limit holds as the bytes arrive."""
    call = env.register()

    def chunks(total: int) -> Iterator[bytes]:
        for _ in range(total // 4096 + 1):
            yield b"x" * 4096

    big_json = env.client.post(
        "/v1/calls",
        content=chunks(MAX_JSON_BYTES + 1),
        headers={**env.auth(), "Content-Type": "application/json"},
    )
    assert big_json.status_code == 413
    big_audio = env.client.post(
        f"/v1/calls/{call['call_id']}/audio",
        content=chunks(MAX_AUDIO_BYTES + 1),
        headers={**env.auth(), "Content-Type": "audio/wav"},
    )
    assert big_audio.status_code == 413
    assert "larger than 300000 bytes" in big_audio.json()["detail"]
    assert env.get_call(call["call_id"]).json()["has_audio"] is False


@pytest.fixture(scope="module")
def scored_call(env: Env) -> dict[str, Any]:
    """A registered, scored and dispositioned call that bad requests must leave alone."""
    call = env.register()
    assert env.upload(call["call_id"], wav(seed=6)).status_code == 200
    env.client.post(
        f"/v1/calls/{call['call_id']}/disposition", json={"label": "ghost"}, headers=env.auth()
    )
    return dict(env.get_call(call["call_id"]).json())


def _noise_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


BAD_AUDIO: list[tuple[str, dict[str, Any], int, str]] = [
    ("unsupported content type", {"content": wav(), "ctype": "text/plain"}, 415, "Content-Type"),
    ("unsupported container", {"content": wav(fmt="CAF")}, 415, "CAF"),
    ("low sample rate", {"content": wav(sr=4000)}, 415, "4000 Hz"),
    ("corrupt", {"content": b"RIFF" + _noise_bytes(5000)}, 422, "cannot decode"),
    ("random bytes", {"content": _noise_bytes(5000, 1)}, 422, "cannot decode"),
    ("truncated", {"content": wav()[:30]}, 422, "cannot decode"),
    ("empty", {"content": b""}, 422, "empty input"),
    ("too short", {"content": wav(0.1)}, 422, "expected at least"),
    ("too long", {"content": wav(25.0, subtype="ULAW")}, 422, "expected at most 20 s"),
    ("oversized raw", {"content": _noise_bytes(MAX_AUDIO_BYTES + 1)}, 413, "larger than"),
    ("oversized multipart", {"file": _noise_bytes(MAX_AUDIO_BYTES + 10)}, 413, "larger than"),
    ("multipart without file", {"form": {"note": ("n.txt", b"hi")}}, 422, "no file field"),
    (
        "multipart of many fields",
        {"form": [(f"f{i}", (None, b"x")) for i in range(11)]},
        422,
        "Too many fields",
    ),
    ("left of mono", {"content": wav(), "params": {"caller_channel": "left"}}, 422, "stereo"),
    ("bad channel", {"content": wav(), "params": {"caller_channel": "mid"}}, 422, "caller_channel"),
]


@pytest.mark.parametrize(
    ("case", "req", "status", "message"), BAD_AUDIO, ids=[c[0] for c in BAD_AUDIO]
)
def test_bad_audio_is_refused_and_the_stored_score_kept(
    env: Env, scored_call: dict[str, Any], case: str, req: dict[str, Any], status: int, message: str
) -> None:
    url = f"/v1/calls/{scored_call['call_id']}/audio"
    params = req.get("params")
    if "file" in req:
        response = env.client.post(
            url, files={"file": ("x.wav", req["file"], "audio/wav")}, headers=env.auth()
        )
    elif "form" in req:
        response = env.client.post(url, files=req["form"], headers=env.auth())
    else:
        headers = {**env.auth(), "Content-Type": req.get("ctype", "audio/wav")}
        response = env.client.post(url, content=req["content"], params=params, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    assert env.get_call(scored_call["call_id"]).json() == scored_call


def test_audio_and_disposition_for_unknown_calls_are_404(env: Env) -> None:
    call_id = new_call_id()
    audio = env.upload(call_id, wav())
    assert audio.status_code == 404
    assert "no call was registered" in audio.json()["detail"]
    disp = env.client.post(
        f"/v1/calls/{call_id}/disposition", json={"label": "prank"}, headers=env.auth()
    )
    assert disp.status_code == 404
    assert env.get_call(call_id).status_code == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"label": "hoax"}, "body.label"),
        ({"label": "prank", "by": "me"}, "Extra inputs"),
        ({"label": "prank", "note": "x" * 2001}, "body.note"),
        ({}, "Field required"),
    ],
)
def test_bad_disposition_is_refused(
    env: Env, scored_call: dict[str, Any], body: dict[str, Any], message: str
) -> None:
    response = env.client.post(
        f"/v1/calls/{scored_call['call_id']}/disposition", json=body, headers=env.auth()
    )
    assert response.status_code == 422
    assert message in response.json()["detail"]
    assert env.get_call(scored_call["call_id"]).json() == scored_call


@pytest.mark.parametrize(
    ("number", "body", "status", "message"),
    [
        (None, {"action": "watch"}, 422, "needs until"),
        (None, {"action": "clear", "until": "2099-01-01T00:00:00+00:00"}, 422, "watch only"),
        (None, {"action": "watch", "until": "2020-01-01T00:00:00+00:00"}, 422, "in the past"),
        (None, {"action": "ban"}, 422, "body.action"),
        ("+6280000000000", {"action": "confirm_prank"}, 404, "unknown number"),
        ("0812", {"action": "confirm_prank"}, 422, "E.164"),
    ],
)
def test_bad_review_is_refused(
    env: Env,
    scored_call: dict[str, Any],
    number: str | None,
    body: dict[str, Any],
    status: int,
    message: str,
) -> None:
    caller = number or scored_call["caller_id"]
    response = env.client.post(
        f"/v1/numbers/{caller}/review", json=body, headers=env.auth("supervisor")
    )
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]
    timeline = env.client.get(
        f"/v1/numbers/{scored_call['caller_id']}", headers=env.auth("supervisor")
    )
    assert timeline.json()["reviews"] == []


# --- roles -----------------------------------------------------------------------------

CALL_ROLES = {"call_taker", "supervisor", "admin"}
ENDPOINTS: list[tuple[str, str, dict[str, Any], set[str]]] = [
    ("POST", "/v1/calls", {"json": {}}, CALL_ROLES),
    ("POST", "/v1/calls/{call}/audio", {"content": b"x", "ctype": "text/plain"}, CALL_ROLES),
    ("POST", "/v1/calls/{call}/disposition", {"json": {}}, CALL_ROLES),
    ("GET", "/v1/calls/{call}", {}, CALL_ROLES | {"data_scientist"}),
    ("GET", "/v1/numbers/flagged", {}, {"supervisor", "admin"}),
    ("GET", "/v1/numbers/{number}", {}, {"supervisor", "admin"}),
    ("POST", "/v1/numbers/{number}/review", {"json": {}}, {"supervisor", "admin"}),
    ("GET", "/v1/export/labelled", {}, {"data_scientist", "admin"}),
    ("GET", "/v1/model", {}, set(ROLES)),
    ("POST", "/v1/model/reload", {"json": {"unknown": 1}}, {"data_scientist", "admin"}),
    ("GET", "/v1/audit", {}, {"admin"}),
]


def _request(
    env: Env, method: str, path: str, spec: dict[str, Any], headers: dict[str, str]
) -> Any:
    kwargs: dict[str, Any] = {"headers": dict(headers)}
    if "json" in spec:
        kwargs["json"] = spec["json"]
    if "content" in spec:
        kwargs["content"] = spec["content"]
        kwargs["headers"]["Content-Type"] = spec["ctype"]
    return env.client.request(method, path, **kwargs)


def test_every_endpoint_checks_the_role(env: Env, scored_call: dict[str, Any]) -> None:
    wrong: list[str] = []
    for method, template, spec, allowed in ENDPOINTS:
        path = template.format(call=scored_call["call_id"], number=scored_call["caller_id"])
        for role in ROLES:
            response = _request(env, method, path, spec, env.auth(role))
            if role in allowed:
                ok = response.status_code not in (401, 403)
            else:
                ok = response.status_code == 403 and "allowed roles" in response.json()["detail"]
            if not ok:
                wrong.append(f"{role} {method} {template}: {response.status_code}")
        anonymous = _request(env, method, path, spec, {})
        if anonymous.status_code != 401:
            wrong.append(f"anonymous {method} {template}: {anonymous.status_code}")
    assert wrong == []
    # Nothing above changed the call.
    assert env.get_call(scored_call["call_id"]).json() == scored_call


def test_bad_expired_and_revoked_keys_are_401(env: Env) -> None:
    expired, _ = env.store.create_key(
        role="admin", name="old", actor="cli", expires_at=datetime.now(UTC) - timedelta(seconds=1)
    )
    revoked, info = env.store.create_key(role="admin", name="gone", actor="cli")
    env.store.revoke_key(info["id"], actor="cli")
    for token in ("nonsense", "cs_" + "A" * 43, expired, revoked):
        response = env.client.get("/v1/model", headers={"X-API-Key": token})
        assert response.status_code == 401, token
        assert "API key" in response.json()["detail"]
    bearer = env.client.get("/v1/model", headers={"Authorization": f"Bearer {env.keys['admin']}"})
    assert bearer.status_code == 200


def test_revocation_reaches_a_key_in_use(env: Env) -> None:
    token, info = env.store.create_key(role="call_taker", name="soon revoked", actor="cli")
    assert env.client.get("/v1/model", headers={"X-API-Key": token}).status_code == 200
    env.store.revoke_key(info["id"], actor="cli")
    keys = env.app.state.runtime.keys
    fresh, keys.fresh_s = keys.fresh_s, 0.0  # as if the cache time had passed
    try:
        assert env.client.get("/v1/model", headers={"X-API-Key": token}).status_code == 401
    finally:
        keys.fresh_s = fresh


# --- database outage -------------------------------------------------------------------


def test_database_down_scoring_goes_on_without_history(env: Env) -> None:
    registered = env.register()  # also puts the call_taker key in the key cache
    unseen_key, _ = env.store.create_key(role="call_taker", name="never used", actor="cli")
    runtime = env.app.state.runtime
    good = runtime.store
    down = Store(UNREACHABLE_PG, data_dir=env.tmp / "down", pool_timeout_s=1.0)
    new_id = new_call_id()
    runtime.store = down
    try:
        arrived = env.client.post(
            "/v1/calls",
            json={
                "call_id": new_id,
                "caller_id": new_number(),
                "started_at": datetime.now(UTC).isoformat(),
            },
            headers=env.auth(),
        )
        assert arrived.status_code == 200, arrived.text
        assert arrived.json()["history_unavailable"] is True
        assert arrived.json()["stored"] is False and arrived.json()["created"] is None

        audio = env.upload(registered["call_id"], wav(seed=7))
        assert audio.status_code == 200, audio.text
        assert audio.json()["history_unavailable"] is True and audio.json()["stored"] is False

        unknown = env.upload(new_call_id(), wav(seed=7))
        assert unknown.status_code == 503
        disp = env.client.post(
            f"/v1/calls/{new_id}/disposition", json={"label": "prank"}, headers=env.auth()
        )
        assert disp.status_code == 503
        assert disp.json()["detail"] == "database unavailable; retry later"
        assert env.client.get("/v1/model", headers={"X-API-Key": unseen_key}).status_code == 503
        ready = env.client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["database"] == "unreachable"
    finally:
        runtime.store = good
        down.dispose()
    assert env.get_call(new_id).status_code == 404
    assert env.get_call(registered["call_id"]).json()["has_audio"] is False
    assert env.client.get("/readyz").status_code == 200
