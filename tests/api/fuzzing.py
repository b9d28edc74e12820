"""Schemathesis against a running callsift service, with every check (issue 19).

Shared by ``tests/api/test_openapi_fuzz.py`` (a small run per database in the suite) and
``bench/fuzz_api.py`` (thousands of requests, figures written). The run is
schemathesis's own engine, as ``st run --checks all`` runs it: the examples, coverage,
fuzzing and stateful phases, positive and negative data, requests authenticated with an
admin key (the ``ignored_auth`` check also sends them without).

Rules of the service that JSON Schema cannot write, having no notion of "now" or of the
ISO calendar: ``started_at`` at most ``CALLSIFT_MAX_FUTURE_SKEW_S`` ahead, a watch's
``until`` in the future, and a weekly report's week started and in its ISO year. All are
in the fields' descriptions; a request breaking one is refused with 422
and a detail naming the rule. :func:`_time_rule_refusal` lets exactly those refusals of
schema-valid data through ``positive_data_acceptance`` and nothing else.

A recording's content cannot be written in a schema either: a schema-valid upload of random
bytes is refused with 415 or 422 (not audio). That operation expects those statuses for
positive data; real recordings are posted by ``tests/api/test_app_calls.py``.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import schemathesis
import uvicorn
from fastapi import FastAPI
from schemathesis.engine import Status, events, from_schema
from schemathesis.specs.openapi.checks import positive_data_acceptance

AUDIO_OPERATION = "POST /v1/calls/{call_id}/audio"
#: Not generated: an open event stream answers for as long as the client listens.
EVENTS_OPERATION = "GET /v1/events"
#: A model reload loads and warms the model before it answers: 0.4-17.6 s on this machine
#: beside a model build (load 8); schemathesis's default 10 s cut it short.
REQUEST_TIMEOUT_S = 60.0
#: The refusals of the two rules about "now" (api/routers/calls.py, numbers.py).
_TIME_RULES = (
    re.compile(r"started_at \S+ is [0-9]+ s in the future; expected at most \S+ s ahead .*"),
    re.compile(r"until \S+ is in the past; expected a future date"),
    # The weekly report: a week not started yet, or one its ISO year lacks (2025-W53).
    re.compile(r"week \S+ is in the future \(today is \S+\)"),
    re.compile(r"week \S+ does not exist: ISO year [0-9]+ has no week [0-9]+ .*"),
)


def _time_rule_refusal(response: schemathesis.Response) -> bool:
    if response.status_code != 422:
        return False
    try:
        detail = json.loads(response.content).get("detail", "")
    except (ValueError, AttributeError):
        return False
    return isinstance(detail, str) and any(rule.fullmatch(detail) for rule in _TIME_RULES)


def _value_breaking_its_pattern(response: schemathesis.Response, case: schemathesis.Case) -> bool:
    """A 422 naming a query or path parameter whose value breaks the parameter's declared
    ``pattern``: the request was not schema-valid. schemathesis's stateful phase sends
    such values as positive data (seen: a call id, ``kp``, as ``GET /v1/calls?caller_id=``,
    with no resource-pool draw recorded in the case's metadata)."""
    if response.status_code != 422:
        return False
    try:
        body = json.loads(response.content)
        # The service's 422: {"detail": "<one line>", "errors": [{"loc": [...], ...}]}.
        errors = body.get("errors") or body.get("detail") or []
    except (ValueError, AttributeError):
        return False
    if not isinstance(errors, list):
        return False
    named = {
        (str(e["loc"][0]), str(e["loc"][1]))
        for e in errors
        if isinstance(e, dict) and isinstance(e.get("loc"), list) and len(e["loc"]) >= 2
    }
    parameters = case.operation.definition.raw.get("parameters", [])
    values = {"query": case.query or {}, "path": case.path_parameters or {}}
    for param in parameters:
        where, name = param.get("in"), param.get("name")
        pattern = (param.get("schema") or {}).get("pattern")
        value = values.get(where, {}).get(name)
        if (where, name) in named and pattern and isinstance(value, str):
            if re.search(pattern, value) is None:
                return True
    return False


@schemathesis.check
def positive_data_acceptance_now(
    ctx: schemathesis.CheckContext, response: schemathesis.Response, case: schemathesis.Case
) -> bool | None:
    """schemathesis's ``positive_data_acceptance``, except for a 422 of a rule about now
    and for a parameter value that breaks its declared pattern (not schema-valid data)."""
    if _time_rule_refusal(response) or _value_breaking_its_pattern(response, case):
        return None
    return positive_data_acceptance(ctx, response, case)


@dataclass
class FuzzReport:
    """What a run did and found."""

    seconds: float = 0.0
    stop_reason: str = ""
    scenarios: int = 0
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    per_operation: Counter[str] = field(default_factory=Counter)
    #: One entry per distinct failure: check, operation, status, and how to reproduce it.
    failures: list[str] = field(default_factory=list)
    #: Errors of the run itself (a request that could not be sent, a hook that failed).
    errors: list[str] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500)


def config(
    base_url: str, key: str, *, max_examples: int, seed: int, workers: int = 1
) -> schemathesis.Config:
    """The run's configuration: every check, both generation modes, every phase."""
    cfg = schemathesis.Config.from_dict(
        {
            "seed": seed,
            "base-url": base_url,
            "headers": {"X-API-Key": key},
            "workers": workers,
            "request-timeout": REQUEST_TIMEOUT_S,
            "generation": {"max-examples": max_examples, "database": "none"},
            "operations": [
                # The event stream never ends by design (a request to it would only time
                # out); tests/api/test_events.py checks its keys, tokens and parameters.
                {"include-name": EVENTS_OPERATION, "enabled": False},
                {
                    "include-name": AUDIO_OPERATION,
                    "checks": {
                        "positive_data_acceptance": {
                            "expected-statuses": [
                                "2xx",
                                "401",
                                "403",
                                "404",
                                "409",
                                "415",
                                "422",
                                "429",
                                "5xx",
                            ]
                        }
                    },
                },
            ],
        }
    )
    checks = cfg.projects.override.checks
    # max_response_time among them, at the request timeout: a reload may take 10-18 s here.
    checks.update(included_check_names=["all"], max_response_time=REQUEST_TIMEOUT_S)
    # Run by positive_data_acceptance_now instead, which calls it.
    checks.update(excluded_check_names=["positive_data_acceptance"])
    return cfg


def fuzz(base_url: str, key: str, *, max_examples: int, seed: int, workers: int = 1) -> FuzzReport:
    """Run schemathesis against the service at ``base_url`` (its ``/openapi.json``)."""
    cfg = config(base_url, key, max_examples=max_examples, seed=seed, workers=workers)
    schema = schemathesis.openapi.from_url(f"{base_url}/openapi.json", config=cfg)
    report = FuzzReport()
    start = time.monotonic()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            _scenario(report, event)
        elif isinstance(event, events.NonFatalError):
            report.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            report.errors.append(f"fatal: {event.exception!r}")
        elif isinstance(event, events.EngineFinished):
            report.stop_reason = str(event.stop_reason)
            report.failures += [f"after run: {f.title}: {f.message}" for f in event.failures]
    report.seconds = time.monotonic() - start
    report.failures = sorted(set(report.failures))
    return report


def _scenario(report: FuzzReport, event: events.ScenarioFinished) -> None:
    recorder = event.recorder
    report.scenarios += 1
    for interaction in recorder.interactions.values():
        report.requests += 1
        report.per_operation[recorder.label] += 1
        if interaction.response is not None:
            report.statuses[interaction.response.status_code] += 1
    for case_id, checks in recorder.checks.items():
        for check in checks:
            if check.status != Status.FAILURE or check.failure_info is None:
                continue
            failure = check.failure_info.failure
            node = recorder.cases.get(case_id)
            curl = check.failure_info.code_sample if node is not None else ""
            report.failures.append(
                f"{check.name} on {recorder.label}: {failure.title}: "
                f"{' '.join(failure.message.split())[:300]}\n    {curl}"
            )
    if event.status == Status.ERROR:
        report.errors.append(f"{recorder.label}: scenario ended with an error")


@contextmanager
def threaded_server(app: FastAPI) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port in a thread; yields its URL."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            ws_per_message_deflate=False,
            lifespan="on",
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        sock.close()


def summary(report: FuzzReport) -> dict[str, Any]:
    """The run's figures, for a bench's JSON."""
    return {
        "seconds": round(report.seconds, 1),
        "stop_reason": report.stop_reason,
        "scenarios": report.scenarios,
        "requests": report.requests,
        "statuses": dict(sorted(report.statuses.items())),
        "server_errors": report.server_errors,
        "failures": len(report.failures),
        "errors": len(report.errors),
        "requests_per_operation": dict(sorted(report.per_operation.items())),
    }
