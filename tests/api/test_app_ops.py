"""Operating the service: health, metrics, logs, an unusable model, reloads, settings."""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.main import create_app
from api.observability import JsonFormatter, redact
from api.security import ROLES
from api.service import ModelHolder
from api.settings import Settings
from classifier.artifact import DEFAULT_MODEL_DIR
from tests.api.test_app_calls import (
    Env,
    default_model,
    make_settings,
    new_call_id,
    new_number,
    preloaded_holder,
    wav,
)


@contextmanager
def _env(tmp: Path, holder: ModelHolder, **overrides: Any) -> Iterator[Env]:
    url = f"sqlite:///{tmp / 'callsift.db'}"
    app = create_app(make_settings(url, tmp, **overrides), models=holder)
    with TestClient(app, raise_server_exceptions=False) as client:
        store = app.state.runtime.store
        keys = {r: store.create_key(role=r, name=f"ops {r}", actor="cli")[0] for r in ROLES}
        yield Env(app=app, client=client, store=store, keys=keys, tmp=tmp)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with _env(tmp_path_factory.mktemp("ops"), preloaded_holder()) as running:
        yield running


def _model_copy(tmp: Path, version: str) -> Path:
    """The shipped model under another version name (the card's version is not hashed)."""
    folder = tmp / f"model-{version}"
    shutil.copytree(DEFAULT_MODEL_DIR, folder, ignore=shutil.ignore_patterns("report"))
    card = json.loads((folder / "card.json").read_text(encoding="utf-8"))
    card["version"] = version
    (folder / "card.json").write_text(json.dumps(card), encoding="utf-8")
    return folder


def _broken_model(tmp: Path) -> Path:
    folder = tmp / "broken-model"
    folder.mkdir()
    (folder / "card.json").write_text("{not json", encoding="utf-8")
    return folder


def test_health_ready_and_openapi_say_advisory_only(env: Env) -> None:
    assert env.client.get("/healthz").json() == {"status": "ok"}
    ready = env.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["model"]["version"] == default_model().version
    spec = env.client.get("/openapi.json").json()
    assert "never blocks, drops or deprioritises a call" in spec["info"]["description"]
    assert (
        "multipart/form-data"
        in (spec["paths"]["/v1/calls/{call_id}/audio"]["post"]["requestBody"]["content"])
    )


def test_metrics_count_requests_flags_and_model(env: Env) -> None:
    number = new_number()
    body = {
        "call_id": new_call_id(),
        "caller_id": number,
        "started_at": datetime.now(UTC).isoformat(),
    }
    scored = env.client.post("/v1/calls", json=body, headers=env.auth())
    flag = scored.json()["flag"]
    env.client.get(f"/v1/numbers/{number}", headers=env.auth("supervisor"))
    text = env.client.get("/metrics").text
    # The event loop's watch runs from startup (its tick is 50 ms).
    assert "callsift_event_loop_lag_seconds_count" in text
    assert "callsift_gc_pause_seconds" in text
    assert (
        'callsift_http_request_duration_seconds_bucket{le="0.005",method="POST",'
        'route="/v1/calls",status="200"}'
        in text
        or 'callsift_http_request_duration_seconds_count{method="POST",route="/v1/calls",'
        'status="200"}'
        in text
    )
    assert 'route="/v1/numbers/{caller_id}"' in text
    assert f'callsift_calls_scored_total{{flag="{flag}",stage="pre_answer"}}' in text
    assert f'callsift_model_info{{version="{default_model().version}"}} 1.0' in text
    assert "callsift_model_available 1.0" in text
    assert 'callsift_pre_answer_cache{result="miss"}' in text
    assert number not in text


def test_logs_never_hold_a_raw_phone_number(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    number = new_number()
    caplog.set_level(logging.INFO, logger="callsift")
    call_id = new_call_id()
    started = datetime.now(UTC).isoformat()
    body = {"call_id": call_id, "caller_id": number, "started_at": started}
    assert env.client.post("/v1/calls", json=body, headers=env.auth()).status_code == 200
    files = {"file": ("a.wav", wav(seed=8), "audio/wav")}
    env.client.post(f"/v1/calls/{call_id}/audio", files=files, headers=env.auth())
    env.client.get(f"/v1/numbers/{number}", headers=env.auth("supervisor"))
    env.client.post(
        f"/v1/numbers/{number}/review", json={"action": "confirm_prank"}, headers=env.auth("admin")
    )
    records = [r for r in caplog.records if r.name.startswith("callsift")]
    routes = {getattr(r, "route", None) for r in records}
    assert "/v1/numbers/{caller_id}/review" in routes
    scored = [r for r in records if r.getMessage() == "scored"]
    assert len(scored) == 2
    hashed = {getattr(r, "caller", None) for r in scored}
    assert len(hashed) == 1 and None not in hashed
    formatter = JsonFormatter()
    for record in records:
        raw = json.dumps(vars(record), default=str) + formatter.format(record)
        assert number not in raw and number[1:] not in raw


def test_internal_errors_answer_500_and_log_no_number(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    number = new_number()

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"unexpected state for {number}")

    monkeypatch.setattr(env.app.state.runtime.store, "flagged_numbers", boom)
    caplog.set_level(logging.INFO, logger="callsift")
    response = env.client.get("/v1/numbers/flagged", headers=env.auth("supervisor"))
    assert response.status_code == 500
    assert response.json() == {"detail": "internal error"}
    errors = [r for r in caplog.records if r.getMessage() == "internal error"]
    assert errors and "RuntimeError" in errors[0].traceback  # type: ignore[attr-defined]
    for record in caplog.records:
        assert number not in JsonFormatter().format(record)
        assert number not in json.dumps(vars(record), default=str)


def test_redact_hides_numbers_and_simless_ids() -> None:
    text = redact("calls from +6281234567890 and simless:imei-99 at 12:00")
    assert "6281234567890" not in text and "imei-99" not in text
    assert text.endswith("at 12:00")


def test_unusable_model_answers_503_until_a_reload_fixes_it(
    tmp_path: Path,
) -> None:
    holder = ModelHolder(model_dir=_broken_model(tmp_path))
    with _env(tmp_path, holder) as env:
        assert env.client.get("/healthz").status_code == 200
        ready = env.client.get("/readyz")
        assert ready.status_code == 503
        assert "model unavailable" in ready.json()["detail"]
        body = {
            "call_id": new_call_id(),
            "caller_id": new_number(),
            "started_at": datetime.now(UTC).isoformat(),
        }
        scored = env.client.post("/v1/calls", json=body, headers=env.auth())
        assert scored.status_code == 503
        assert scored.json()["detail"].startswith("model unavailable:")
        assert "card.json" in scored.json()["detail"]
        audio = env.client.post(
            f"/v1/calls/{body['call_id']}/audio",
            content=wav(),
            headers={**env.auth(), "Content-Type": "audio/wav"},
        )
        assert audio.status_code == 503
        assert env.client.get("/v1/model", headers=env.auth()).status_code == 503
        assert "callsift_model_available 0.0" in env.client.get("/metrics").text

        failed = env.client.post("/v1/model/reload", headers=env.auth("data_scientist"))
        assert failed.status_code == 503
        assert "model reload failed" in failed.json()["detail"]

        holder.model_dir = _model_copy(tmp_path, "fixed-1")
        fixed = env.client.post("/v1/model/reload", headers=env.auth("data_scientist"))
        assert fixed.status_code == 200, fixed.text
        assert fixed.json()["previous_version"] is None
        assert fixed.json()["version"] == "fixed-1"
        # The call was registered when it arrived; the retry scores and stores it.
        again = env.client.post("/v1/calls", json=body, headers=env.auth())
        assert again.status_code == 200 and again.json()["model_version"] == "fixed-1"
        assert again.json()["created"] is False and again.json()["stored"] is True
        stored = env.client.get(f"/v1/calls/{body['call_id']}", headers=env.auth()).json()
        assert stored["pre_score"]["p_prank"] == again.json()["p_prank"]
        assert env.client.get("/readyz").status_code == 200


def test_reload_keeps_requests_in_flight_on_the_old_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import api.routers.calls as calls_router

    holder = preloaded_holder(model_dir=_model_copy(tmp_path, "reloaded-2"))
    old = holder.get()
    seen: list[object] = []
    swapped: list[str] = []
    real = calls_router.pre_answer_score

    def swap_mid_request(model: Any, **kwargs: Any) -> Any:
        seen.append(model)
        if len(seen) == 1:
            # A reload from another thread completes while this request is scored. On
            # SQLite the request runs on the event loop, so the reload cannot come in
            # through HTTP here; reloads run in worker threads, as this one does.
            worker = threading.Thread(target=lambda: swapped.append(holder.reload()[1].version))
            worker.start()
            worker.join(60)
        return real(model, **kwargs)

    monkeypatch.setattr(calls_router, "pre_answer_score", swap_mid_request)
    with _env(tmp_path, holder) as env:
        body = {
            "call_id": new_call_id(),
            "caller_id": new_number(),
            "started_at": datetime.now(UTC).isoformat(),
        }
        response = env.client.post("/v1/calls", json=body, headers=env.auth())
        assert swapped == ["reloaded-2"]
        assert response.status_code == 200, response.text
        assert response.json()["model_version"] == old.version
        assert seen[0] is old.model
        stored = env.client.get(f"/v1/calls/{body['call_id']}", headers=env.auth()).json()
        assert stored["pre_score"]["model_version"] == old.version

        after = env.client.post(
            "/v1/calls", json={**body, "call_id": new_call_id()}, headers=env.auth()
        )
        assert after.json()["model_version"] == "reloaded-2"
        assert seen[-1] is holder.get().model and seen[-1] is not old.model

        # Through the API: audited, and the metrics follow.
        holder.model_dir = _model_copy(tmp_path, "reloaded-3")
        reload = env.client.post("/v1/model/reload", headers=env.auth("admin"))
        assert reload.status_code == 200, reload.text
        assert reload.json()["previous_version"] == "reloaded-2"
        assert reload.json()["version"] == "reloaded-3"
        assert 'callsift_model_info{version="reloaded-3"} 1.0' in env.client.get("/metrics").text

        # A reload that fails keeps the serving model, and says so.
        holder.model_dir = _broken_model(tmp_path)
        failed = env.client.post("/v1/model/reload", headers=env.auth("data_scientist"))
        assert failed.status_code == 409
        assert "still serving reloaded-3" in failed.json()["detail"]
        assert env.client.get("/v1/model", headers=env.auth()).json()["version"] == "reloaded-3"

        audit = env.client.get("/v1/audit", headers=env.auth("admin")).json()["entries"]
        actions = [(e["action"], e["target_id"]) for e in audit]
        assert ("model.reload", "reloaded-3") in actions
        assert ("model.reload_failed", "configured") in actions
        entry = next(e for e in audit if e["action"] == "model.reload")
        assert entry["before"]["version"] == "reloaded-2"
        source = f"dir:{tmp_path / 'model-reloaded-3'}"
        assert entry["after"] == {"version": "reloaded-3", "source": source}


def test_model_info_shows_card_and_metrics(env: Env) -> None:
    info = env.client.get("/v1/model", headers=env.auth("call_taker")).json()
    assert info["version"] == default_model().version
    assert info["source"] == "default"
    assert info["card"]["features"] and info["metrics"] == info["card"]["metrics"]


def test_starts_without_a_database_and_says_so(tmp_path: Path) -> None:
    settings = make_settings("postgresql+psycopg://postgres@127.0.0.1:1/test", tmp_path)
    app = create_app(settings, models=preloaded_holder())
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "database unreachable" in ready.json()["detail"]
        response = client.get("/v1/model", headers={"X-API-Key": "cs_" + "B" * 43})
        assert response.status_code == 503
        assert "cannot verify the API key" in response.json()["detail"]


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@db:5432/x")
    monkeypatch.setenv("CALLSIFT_MAX_AUDIO_BYTES", "1234")
    monkeypatch.setenv("CALLSIFT_TIMEZONE", "Asia/Makassar")
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("CALLSIFT_MAX_FUTURE_SKEW_S=60\n", encoding="utf-8")
    settings = Settings()
    assert settings.database_url == "postgresql+psycopg://u@db:5432/x"
    assert settings.max_audio_bytes == 1234
    assert settings.max_future_skew_s == 60
    monkeypatch.setenv("CALLSIFT_DATABASE_URL", "sqlite:///x.db")
    assert Settings().database_url == "sqlite:///x.db"
    monkeypatch.setenv("CALLSIFT_TIMEZONE", "Mars/Olympus")
    with pytest.raises(ValueError, match="unknown time zone"):
        Settings()


def test_far_future_limit_is_configurable(tmp_path: Path) -> None:
    with _env(tmp_path, preloaded_holder(), max_future_skew_s=3600) as env:
        body = {
            "call_id": new_call_id(),
            "caller_id": new_number(),
            "started_at": (datetime.now(UTC) + timedelta(minutes=30)).isoformat(),
        }
        assert env.client.post("/v1/calls", json=body, headers=env.auth()).status_code == 200


def test_serve_command_runs_uvicorn_on_the_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    import typer
    import uvicorn

    from api.cli import serve_command
    from api.supervisor import Supervisor

    configs: list[Any] = []
    instances: list[str | None] = []  # what the workers would read

    def supervise(self: Supervisor) -> None:
        configs.append(self.config)
        instances.append(os.environ.get("CALLSIFT_INSTANCE"))

    def serve_here(self: uvicorn.Server, sockets: Any = None) -> None:
        configs.append(self.config)
        instances.append(os.environ.get("CALLSIFT_INSTANCE"))
        self.started = True

    monkeypatch.setattr(Supervisor, "run", supervise)
    monkeypatch.setattr(uvicorn.Server, "run", serve_here)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://user:secret@db:5432/x")
    monkeypatch.delenv("CALLSIFT_INSTANCE", raising=False)
    cli = typer.Typer()
    cli.command()(serve_command)
    cli.command("other")(lambda: None)  # keep "serve" a named sub-command
    try:
        result = CliRunner().invoke(cli, ["serve-command", "--port", "8123", "--workers", "2"])
    finally:
        os.environ.pop("CALLSIFT_INSTANCE", None)  # set for the workers, not for later tests
    assert result.exit_code == 0, result.output
    # The workers share one server name, and with it one limit of live streams.
    assert instances == [f"{socket.gethostname()}:8123"]
    monkeypatch.setenv("CALLSIFT_INSTANCE", "centre-1")
    assert CliRunner().invoke(cli, ["serve-command", "--port", "8124"]).exit_code == 0
    assert instances[-1] == "centre-1"  # a name given is kept
    workers, single = configs
    assert workers.app == "api.main:create_app" and workers.factory is True
    assert workers.port == 8123 and workers.workers == 2 and workers.host == "127.0.0.1"
    # One worker serves the app built around the model the command loaded and warmed.
    assert not isinstance(single.app, str) and single.factory is False and single.port == 8124
    # uvicorn's access log would print raw paths with phone numbers.
    assert workers.access_log is False and single.access_log is False
    assert "secret" not in result.output and "http://127.0.0.1:8123/docs" in result.output
