"""Schemathesis against the service, every check, on SQLite and PostgreSQL (issue 19).

A real uvicorn server on the loopback serves the app (the shipped model preloaded), and
schemathesis's engine runs its examples, coverage, fuzzing and stateful phases against
``/openapi.json`` with an admin key: responses must match the document (statuses, bodies,
headers, ``Allow``), schema-valid requests must be served and invalid ones refused, and
nothing may answer 5xx. A small run per database (``MAX_EXAMPLES``, a fixed seed);
``bench/fuzz_api.py`` runs thousands of requests on other seeds.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from api.main import create_app
from tests.api.conftest import BACKENDS, fresh_pg_schema
from tests.api.fuzzing import fuzz, threaded_server
from tests.api.test_app_calls import make_settings, preloaded_holder

#: Examples per operation and phase: about 800 requests, 15-25 s per database.
MAX_EXAMPLES = 10
SEED = 19


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_schemathesis_with_every_check_finds_nothing(backend: str, tmp_path: Path) -> None:
    with ExitStack() as stack:
        url = (
            f"sqlite:///{tmp_path / 'callsift.db'}"
            if backend == "sqlite"
            else stack.enter_context(fresh_pg_schema())
        )
        # Every operation's invalid-key checks come from one address within a minute:
        # past the default 30 failures the limit answers 429, which schemathesis's
        # ignored_auth check does not expect (the limit is tested in test_security.py).
        settings = make_settings(url, tmp_path, auth_failures_per_minute=1000)
        app = create_app(settings, models=preloaded_holder())
        base_url = stack.enter_context(threaded_server(app))
        store = app.state.runtime.store
        key = store.create_key(role="admin", name="schemathesis", actor="cli")[0]
        report = fuzz(base_url, key, max_examples=MAX_EXAMPLES, seed=SEED)
    assert report.stop_reason == "completed", report.stop_reason
    assert not report.errors, "\n".join(report.errors)
    assert not report.failures, f"{len(report.failures)} failures:\n" + "\n".join(report.failures)
    assert report.server_errors == 0, report.statuses
    # The run reached every operation, and past the key check.
    assert len(report.per_operation) >= len(app.openapi()["paths"]), report.per_operation
    assert report.requests >= 300 and report.statuses[200] >= 100, report.statuses
