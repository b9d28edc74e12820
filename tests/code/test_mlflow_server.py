"""A team MLflow tracking server on PostgreSQL, end to end (docs/model.md, "A shared
MLflow server").

`mlflow server` runs as a subprocess on loopback with a fresh PostgreSQL database as
its backend store and a folder as its artifact store; `callsift train` logs and
registers a small model there, `callsift promote` makes it the champion, and the
service loads the champion from that server and reports it on GET /v1/model. Skipped
when PostgreSQL is not reachable (a failure with ``CALLSIFT_REQUIRE_POSTGRES=1``) or
refuses to create a database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.main import create_app
from callsift import app as cli
from classifier.artifact import read_card
from tests.api.conftest import PG_DATABASE, PG_HOST, PG_PORT, _require_postgres
from tests.api.test_app_calls import make_settings
from tests.conftest import shared_feature_cache, small_corpus_manifest
from training.simulate import simulate_corpus

pytestmark = pytest.mark.slow

runner = CliRunner()
START_TIMEOUT = 45.0  # seconds; the first start creates MLflow's tables in PostgreSQL
# The model only has to exist: whole calls only, few iterations (tests/code/test_train_cli.py
# trains the full recipe).
TINY = ["--max-iter", "15", "--test-callers", "0.4", "--test-after", "0.6", "--prefixes", "none"]


@pytest.fixture
def mlflow_database() -> Iterator[str]:
    """A new, empty PostgreSQL database for MLflow's own tables; dropped afterwards."""
    import psycopg

    user = _require_postgres()
    name = f"mlflow_{uuid.uuid4().hex[:12]}"
    conninfo = f"host={PG_HOST} port={PG_PORT} dbname={PG_DATABASE} user={user}"
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.errors.InsufficientPrivilege as exc:
        pytest.skip(f"PostgreSQL user {user!r} may not create a database: {exc}")
    try:
        yield f"postgresql+psycopg://{user}@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            # FORCE: a connection the killed server left half-closed must not keep it.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _mlflow_exe() -> list[str]:
    exe = Path(sys.executable).with_name("mlflow")
    return [str(exe)] if exe.exists() else [shutil.which("mlflow") or "mlflow"]


def _wait_healthy(proc: subprocess.Popen[bytes], uri: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.3)
    pytest.fail(
        f"mlflow server not healthy after {START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}"
    )


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """End the server and the workers it started (its process group)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_train_promote_and_serve_through_a_postgres_backed_server(
    mlflow_database: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    port = _free_port()
    uri = f"http://127.0.0.1:{port}"
    artifacts = tmp_path / "artifacts"
    log = tmp_path / "mlflow-server.log"
    command = [
        *_mlflow_exe(),
        "server",
        "--backend-store-uri",
        mlflow_database,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]
    with open(log, "wb") as out:
        # Its own process group: the server starts uvicorn workers of its own.
        # As docs/model.md runs it: without MLflow's job consumers (five more interpreters
        # on a database backend), which callsift does not use.
        proc = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
    try:
        # The corpora are simulated while the server creates its tables: the run's shared
        # small corpus with its feature cache (tests/conftest.py: simulated and featured
        # here unless another file already did), and a few calls to promote on.
        corpus = small_corpus_manifest(tmp_path_factory)
        evaluation = simulate_corpus(
            tmp_path / "eval", preset="balanced", n_calls=12, seed=1, n_jobs=1, progress=False
        )
        _wait_healthy(proc, uri, log)

        model_dir = tmp_path / "model"
        result = runner.invoke(
            cli,
            [
                "train",
                str(corpus),
                "--out",
                str(model_dir),
                *TINY,
                "--jobs",
                "1",
                "--cache",
                str(shared_feature_cache(tmp_path_factory)),
                "--tracking-uri",
                uri,
            ],
        )
        assert result.exit_code == 0, (result.output, result.exception)
        assert "registered callsift version 1 as challenger" in result.output

        result = runner.invoke(
            cli, ["promote", str(evaluation), "--tracking-uri", uri, "--jobs", "1"]
        )
        assert result.exit_code == 0, (result.output, result.exception)

        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        champion = client.get_model_version_by_alias("callsift", "champion")
        assert str(champion.version) == "1"
        assert client.get_model_version("callsift", "1").tags["promotion_decision"] == "promoted"
        # The model's files went to the server's artifact store, not a local mlruns.
        assert list(artifacts.rglob("card.json")), sorted(p.name for p in artifacts.rglob("*"))

        settings = make_settings(
            f"sqlite:///{tmp_path / 'callsift.db'}",
            tmp_path,
            model_registry_ref="champion",
            mlflow_tracking_uri=uri,
        )
        service = create_app(settings)
        with TestClient(service, raise_server_exceptions=False) as http:
            key, _ = service.state.runtime.store.create_key(role="admin", name="t", actor="cli")
            response = http.get("/v1/model", headers={"X-API-Key": key})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["source"] == "registry:champion"
        assert body["version"] == read_card(model_dir)["version"]
    finally:
        _stop(proc)
