"""Text the databases cannot hold (issue 19, finding 1), on SQLite and PostgreSQL.

PostgreSQL refuses the NUL character in text (``psycopg.DataError``: the disposition and
review answered 500 and logged the note); no UTF-8 encoding exists for a lone surrogate.
Every free text a request stores (a disposition's or a review's note, a call's
metadata) is refused with 422 naming the field, on both engines alike; nothing is
stored, and the text never reaches the log.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from api.observability import JsonFormatter
from api.store import Store
from classifier.errors import InvalidParameterError
from tests.api.conftest import BACKENDS
from tests.api.test_app_calls import WITA, Env, new_call_id, new_number, running_env

#: Marks the refused text, to look for it in the log.
SECRET = "tell-nobody-7d1c"
TEXTS = [
    pytest.param(f"{SECRET}\u0000end", id="nul"),
    pytest.param(f"{SECRET}\ud800end", id="lone-surrogate"),
]
REFUSED = [
    pytest.param(f"{SECRET}\u0000end", "NUL", id="nul"),
    pytest.param(f"{SECRET}\ud800end", "lone surrogate", id="lone-surrogate"),
]


@pytest.fixture(scope="module", params=BACKENDS)
def env(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    with running_env(request.param, tmp_path_factory.mktemp(f"text-{request.param}")) as e:
        yield e


def _post_raw(env: Env, path: str, body: dict[str, Any], role: str) -> Any:
    # json.dumps escapes NUL and surrogates as \u0000 / \ud800: what a client sends.
    return env.client.post(
        path,
        content=json.dumps(body),
        headers={**env.auth(role), "Content-Type": "application/json"},
    )


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    formatter = JsonFormatter()
    return "\n".join(formatter.format(r) for r in caplog.records)


def _names(detail: str, field: str) -> None:
    """The refusal names the field (the character is named by the store's refusal; the
    request schema or the JSON parser may refuse first, in their own words)."""
    assert field in detail, detail


def _audit(env: Env) -> list[dict[str, Any]]:
    return list(env.client.get("/v1/audit", headers=env.auth("admin")).json()["entries"])


@pytest.mark.parametrize("note", TEXTS)
def test_disposition_note_the_database_cannot_hold_is_422(
    env: Env, caplog: pytest.LogCaptureFixture, note: str
) -> None:
    call = env.register()
    before, audit = env.get_call(call["call_id"]).json(), _audit(env)
    caplog.set_level(logging.DEBUG)
    response = _post_raw(
        env,
        f"/v1/calls/{call['call_id']}/disposition",
        {"label": "prank", "note": note},
        "call_taker",
    )
    assert response.status_code == 422, response.text
    _names(response.json()["detail"], "note")
    assert SECRET not in response.text
    assert env.get_call(call["call_id"]).json() == before
    assert _audit(env) == audit
    assert SECRET not in _logged(caplog)


@pytest.mark.parametrize("note", TEXTS)
def test_review_note_the_database_cannot_hold_is_422(
    env: Env, caplog: pytest.LogCaptureFixture, note: str
) -> None:
    call = env.register()
    number = call["request"]["caller_id"]
    audit = _audit(env)
    caplog.set_level(logging.DEBUG)
    response = _post_raw(
        env, f"/v1/numbers/{number}/review", {"action": "confirm_prank", "note": note}, "supervisor"
    )
    assert response.status_code == 422, response.text
    _names(response.json()["detail"], "note")
    assert SECRET not in response.text
    timeline = env.client.get(f"/v1/numbers/{number}", headers=env.auth("supervisor")).json()
    assert timeline["reviews"] == []
    assert _audit(env) == audit
    assert SECRET not in _logged(caplog)


@pytest.mark.parametrize("where", ["value", "key"])
@pytest.mark.parametrize("text", TEXTS)
def test_metadata_the_database_cannot_hold_is_422_and_the_call_not_stored(
    env: Env, caplog: pytest.LogCaptureFixture, text: str, where: str
) -> None:
    call_id = new_call_id()
    metadata = {"trunk": "7", **({"incident": text} if where == "value" else {text[-8:]: "x"})}
    body = {
        "call_id": call_id,
        "caller_id": new_number(),
        "started_at": "2025-06-03T19:04:11+08:00",
        "metadata": metadata,
    }
    caplog.set_level(logging.DEBUG)
    response = _post_raw(env, "/v1/calls", body, "call_taker")
    assert response.status_code == 422, response.text
    _names(response.json()["detail"], "metadata")
    assert env.get_call(call_id).status_code == 404
    assert SECRET not in _logged(caplog)


def test_notes_and_metadata_without_such_characters_are_kept_as_sent(env: Env) -> None:
    # Control characters other than NUL, emoji and right-to-left text are fine.
    text = "tab\there, bell\u0007, \u00e9t\u00e9 \U0001f4de \u05e9\u05dc\u05d5\u05dd\nline 2"
    call = env.register(metadata={"incident_type": text})
    assert env.get_call(call["call_id"]).json()["metadata"] == {"incident_type": text}
    disp = env.client.post(
        f"/v1/calls/{call['call_id']}/disposition",
        json={"label": "prank", "note": text},
        headers=env.auth(),
    )
    assert disp.status_code == 200 and disp.json()["note"] == text
    assert env.get_call(call["call_id"]).json()["label_note"] == text


# --- the store itself (the CLI and the live streams write through it too) --------------


@pytest.mark.parametrize(("text", "kind"), REFUSED)
def test_the_store_refuses_such_text_before_writing(store: Store, text: str, kind: str) -> None:
    number = new_number()
    call_id = new_call_id()
    started = datetime(2025, 6, 3, 19, 4, 11, tzinfo=WITA)
    with pytest.raises(InvalidParameterError, match=f"metadata.*{kind}"):
        store.register_call(
            call_id=call_id, caller_id=number, started_at=started, metadata={"a": text}, actor="t"
        )
    store.register_call(
        call_id=call_id, caller_id=number, started_at=started, metadata={}, actor="t"
    )
    with pytest.raises(InvalidParameterError, match=f"note.*{kind}"):
        store.set_disposition(call_id, label="prank", note=text, actor="t")
    with pytest.raises(InvalidParameterError, match=f"note.*{kind}"):
        store.review_number(number, action="watch", until=None, note=text, actor="t")
    with pytest.raises(InvalidParameterError, match=f"name.*{kind}"):
        store.create_key(role="admin", name=text, actor="t")
    with pytest.raises(InvalidParameterError, match=f"actor.*{kind}"):
        store.set_disposition(call_id, label="prank", note=None, actor=text)
    assert store.get_call(call_id).label is None
    assert store.number_timeline(number)["reviews"] == []
    assert store.list_keys() == [] and store.audit_entries() == []


def test_audit_keeps_such_text_escaped_rather_than_lose_the_entry(store: Store) -> None:
    # An audit entry records what happened (e.g. a reload asked for a registry ref with
    # a NUL in it): it is kept, with the characters written as escapes.
    store.audit(
        actor="key:1 ops",
        action="model.reload_failed",
        target_type="model",
        target_id="champ\u0000ion",
        before=None,
        after={"error": "no model 'champ\u0000ion\ud800'"},
    )
    (entry,) = store.audit_entries()
    assert entry["target_id"] == "champ\\x00ion"
    assert entry["after"] == {"error": "no model 'champ\\x00ion\\ud800'"}
