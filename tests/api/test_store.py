"""The service's store, on SQLite and on PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

import callsift
from api.db import AuditEntry, Base
from api.security import ROLES, hash_token
from api.store import (
    MANIFEST_COLUMNS,
    ConflictError,
    NotFoundError,
    Store,
    StoreUnavailableError,
    rows_to_csv,
)
from classifier.errors import CallsiftError, InvalidParameterError
from classifier.manifest import validate_manifest

WIB = timezone(timedelta(hours=7))
NYC = timezone(timedelta(hours=-4))
T0 = datetime(2025, 6, 2, 21, 15, tzinfo=WIB)
NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
A = "+6281200000001"
B = "+6281200000002"
C = "+6281200000003"
D = "+6281200000004"
E = "+6281200000005"
F = "+6281200000006"


def _wav(seconds: float = 0.5, *, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    sf.write(buffer, 0.1 * rng.standard_normal(int(8000 * seconds)), 8000, format="WAV")
    return buffer.getvalue()


def _call(store: Store, call_id: str, caller_id: str, started_at: datetime, **meta: str) -> None:
    _, created = store.register_call(
        call_id=call_id, caller_id=caller_id, started_at=started_at, metadata=meta, actor="cli"
    )
    assert created


def _audits(store: Store, action: str) -> list[dict[str, object]]:
    return [e for e in store.audit_entries(limit=1000) if e["action"] == action]


# -- schema --------------------------------------------------------------------------------


def test_upgrade_is_idempotent_and_matches_the_models(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    store.upgrade()  # the fixture already ran it once
    with store.engine.connect() as conn:
        tables = set(inspect(conn).get_table_names())
        version = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert {"calls", "reviews", "api_keys", "audit_log", "alembic_version"} <= tables
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from api.store import MIGRATIONS_DIR

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    assert version == ScriptDirectory.from_config(config).get_current_head()
    assert diff == []


# -- calls ---------------------------------------------------------------------------------


def test_register_is_idempotent_and_keeps_the_offset(store: Store) -> None:
    first, created = store.register_call(
        call_id="c1", caller_id=A, started_at=T0, metadata={"trunk": "7"}, actor="cli"
    )
    # A retry may spell the same instant in another offset.
    again, created_again = store.register_call(
        call_id="c1", caller_id=A, started_at=T0.astimezone(UTC), metadata={}, actor="cli"
    )
    assert (created, created_again) == (True, False)
    assert again == first
    assert again.started_at.utcoffset() == timedelta(hours=7)
    assert again.started_at.hour == 21
    assert again.metadata == {"trunk": "7"}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM calls")).scalar_one() == 1


def test_register_conflict_and_bad_input_change_nothing(store: Store) -> None:
    _call(store, "c1", A, T0)
    with pytest.raises(ConflictError, match="already registered"):
        store.register_call(call_id="c1", caller_id=B, started_at=T0, metadata={}, actor="cli")
    with pytest.raises(ConflictError):
        store.register_call(
            call_id="c1", caller_id=A, started_at=T0 + timedelta(seconds=1), metadata={}, actor="x"
        )
    bad = [
        {"call_id": "", "caller_id": A, "started_at": T0},
        {"call_id": "x" * 129, "caller_id": A, "started_at": T0},
        {"call_id": "c2", "caller_id": "0812", "started_at": T0},
        {"call_id": "c2", "caller_id": A, "started_at": T0.replace(tzinfo=None)},
    ]
    for kwargs in bad:
        with pytest.raises(InvalidParameterError):
            store.register_call(**kwargs, metadata={}, actor="cli")
    assert store.get_call("c1").caller_id == A
    with pytest.raises(NotFoundError, match="unknown call_id 'c2'"):
        store.get_call("c2")


def test_register_with_its_pre_score_in_one_statement(store: Store) -> None:
    score = {"flag": "none", "p_prank": 0.1, "reasons": [{"en": "Malam", "weight": 0.5}]}
    record, created = store.register_call(
        call_id="p1",
        caller_id=A,
        started_at=T0,
        metadata={"trunk": "7"},
        actor="cli",
        pre_score=score,
        model_version="m1",
    )
    assert created and record.pre_score == score and record.model_version == "m1"
    assert store.get_call("p1") == record
    # A retry returns what is stored, not the score it brings.
    again, created = store.register_call(
        call_id="p1",
        caller_id=A,
        started_at=T0,
        metadata={},
        actor="cli",
        pre_score={"flag": "likely_prank"},
        model_version="m2",
    )
    assert not created and again.pre_score == score and again.model_version == "m1"
    _call(store, "p2", A, T0 + timedelta(hours=1))
    assert store.get_call("p2").pre_score is None
    with store.engine.connect() as conn:  # SQL NULL, not JSON null, when there is no score
        nulls = conn.execute(text("SELECT COUNT(*) FROM calls WHERE pre_score IS NULL"))
        assert nulls.scalar_one() == 1
    for kwargs in ({"pre_score": score}, {"model_version": "m1"}, {"pre_score": 3}):
        with pytest.raises(InvalidParameterError):
            store.register_call(
                call_id="p3", caller_id=A, started_at=T0, metadata={}, actor="cli", **kwargs
            )
    with pytest.raises(NotFoundError):
        store.get_call("p3")


def test_driver_insert_stores_what_sqlalchemy_stores(store: Store) -> None:
    # On SQLite the per-call INSERT and history read bypass SQLAlchemy's execution layer;
    # the bytes stored must be the ones SQLAlchemy's own INSERT stores.
    from api.store.calls import _INSERT_CALL

    started = datetime(2025, 6, 2, 21, 15, 0, 0, tzinfo=WIB)  # no microseconds
    score = {"flag": "none", "reasons": [{"en": "Malam hari", "id": "Malam \u00e9"}]}
    store.register_call(
        call_id="d1",
        caller_id=A,
        started_at=started,
        metadata={"note": "caf\u00e9"},
        actor="cli",
        pre_score=score,
        model_version="m1",
    )
    with store.engine.begin() as conn:
        row = conn.execute(text("SELECT created_at FROM calls WHERE call_id = 'd1'")).one()
        created_at = (
            datetime.fromisoformat(row[0]).replace(tzinfo=UTC) if store.is_sqlite else row[0]
        )
        conn.execute(
            _INSERT_CALL,
            {
                "call_id": "d2",
                "caller_id": A,
                "started_at": started,
                "utc_offset_s": 7 * 3600,
                "metadata": {"note": "caf\u00e9"},
                "created_at": created_at,
                "history_weight": 1.0,
                "pre_score": score,
                "model_version": "m1",
            },
        )
        rows = conn.execute(text("SELECT * FROM calls WHERE call_id IN ('d1', 'd2')")).all()
    one, two = ({k: v for k, v in r._mapping.items() if k not in ("id", "call_id")} for r in rows)
    assert one == two
    past = store.caller_history(A, before=started + timedelta(seconds=1))
    assert [p.started_at for p in past] == [started, started]
    assert store.caller_history(A, before=started) == []


def test_register_race_creates_one_row(store: Store) -> None:
    n = 8
    barrier = threading.Barrier(n)

    def register(_: int) -> bool:
        barrier.wait()
        _, created = store.register_call(
            call_id="race", caller_id=A, started_at=T0, metadata={}, actor="cli"
        )
        return created

    with ThreadPoolExecutor(n) as pool:
        created = list(pool.map(register, range(n)))
    assert created.count(True) == 1
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM calls")).scalar_one() == 1


def test_caller_history_is_point_in_time(store: Store) -> None:
    _call(store, "h1", A, T0)
    _call(store, "h2", A, T0 + timedelta(hours=1))
    _call(store, "h3", A, T0 + timedelta(hours=2))
    _call(store, "other", B, T0)
    _call(store, "anon", "", T0)
    store.save_audio("h1", _wav(), ext="wav", duration_s=42.0)
    labelled, _ = store.set_disposition("h1", label="prank", note=None, actor="key:1 t")

    past = store.caller_history(A, before=T0 + timedelta(hours=2))
    assert [p.started_at for p in past] == [T0, T0 + timedelta(hours=1)]
    assert past[0].started_at.utcoffset() == timedelta(hours=7)
    assert (past[0].duration_s, past[0].label, past[0].weight) == (42.0, "prank", 1.0)
    assert past[0].label_at == labelled.label_at
    assert (past[1].duration_s, past[1].label, past[1].label_at) == (0.0, None, None)
    assert store.caller_history(A, before=T0) == []
    assert store.caller_history("", before=NOW) == []


def test_scores_and_audio_are_stored(store: Store) -> None:
    _call(store, "s1", A, T0)
    store.save_pre_score("s1", {"flag": "possible_prank", "p_prank": 0.4}, model_version="m1")
    record = store.get_call("s1")
    assert record.pre_score == {"flag": "possible_prank", "p_prank": 0.4}
    assert (record.flag, record.model_version) == (None, "m1")

    data = _wav(seed=1)
    path = store.save_audio("s1", data, ext="WAV", duration_s=0.5, caller_channel="left")
    assert Path(path) == store.data_dir / "recordings" / f"{hashlib.sha256(data).hexdigest()}.wav"
    assert Path(path).read_bytes() == data
    score = {"flag": "likely_ghost", "p_prank": 0.1, "p_ghost": 0.8, "reasons": [{"en": "x"}]}
    store.save_score("s1", score, model_version="m2")
    record = store.get_call("s1")
    assert (record.flag, record.p_prank, record.p_ghost) == ("likely_ghost", 0.1, 0.8)
    assert record.score == score
    assert (record.model_version, record.audio_file, record.duration_s) == ("m2", path, 0.5)
    assert record.caller_channel == "left"
    assert record.scored_at is not None

    # Unknown call or bad input: nothing written, nothing changed.
    with pytest.raises(NotFoundError):
        store.save_audio("nope", _wav(seed=2), ext="wav", duration_s=0.5)
    with pytest.raises(InvalidParameterError):
        store.save_audio("s1", _wav(seed=3), ext="w/v", duration_s=0.5)
    with pytest.raises(InvalidParameterError):
        store.save_score("s1", {"flag": "none", "p_prank": 3.0}, model_version="m3")
    assert len(list((store.data_dir / "recordings").iterdir())) == 1
    assert store.get_call("s1").score == score


def test_disposition_is_idempotent_and_audited(store: Store) -> None:
    _call(store, "d1", A, T0)
    record, changed = store.set_disposition("d1", label="prank", note="kids", actor="key:3 ana")
    assert changed and record.label == "prank" and record.label_note == "kids"
    again, changed_again = store.set_disposition(
        "d1", label="prank", note="kids", actor="key:3 ana"
    )
    assert not changed_again and again.label_at == record.label_at
    _, changed = store.set_disposition("d1", label="emergency", note=None, actor="key:4 bo")
    assert changed

    entries = _audits(store, "call.disposition")
    assert len(entries) == 2
    latest = entries[0]
    assert latest["actor"] == "key:4 bo"
    assert (latest["target_type"], latest["target_id"]) == ("call", "d1")
    assert latest["before"]["label"] == "prank" and latest["before"]["note"] == "kids"
    assert latest["after"]["label"] == "emergency"

    with pytest.raises(InvalidParameterError, match="unknown label 'hoax'"):
        store.set_disposition("d1", label="hoax", note=None, actor="key:4 bo")
    with pytest.raises(NotFoundError):
        store.set_disposition("never", label="prank", note=None, actor="key:4 bo")
    assert store.get_call("d1").label == "emergency"
    assert len(_audits(store, "call.disposition")) == 2


# -- numbers -------------------------------------------------------------------------------


def test_review_clear_resets_weights_and_is_audited(store: Store) -> None:
    for i in range(3):
        _call(store, f"r{i}", A, T0 + timedelta(hours=i))
    store.set_disposition("r0", label="prank", note=None, actor="cli")
    store.set_disposition("r1", label="ghost", note=None, actor="cli")
    store.set_disposition("r2", label="emergency", note=None, actor="cli")

    confirm = store.review_number(
        A, action="confirm_prank", until=None, note="same kid", actor="key:7 sup"
    )
    assert confirm["cleared_calls"] == 0
    assert [p.weight for p in store.caller_history(A, before=NOW)] == [1.0, 1.0, 1.0]

    cleared = store.review_number(A, action="clear", until=None, note="shared", actor="key:7 sup")
    assert cleared["cleared_calls"] == 2 and cleared["by"] == "key:7 sup"
    assert [p.weight for p in store.caller_history(A, before=NOW)] == [0.0, 0.0, 1.0]
    # Outcomes recorded after the clear count again.
    _call(store, "r3", A, T0 + timedelta(hours=5))
    store.set_disposition("r3", label="prank", note=None, actor="cli")
    assert store.caller_history(A, before=NOW)[-1].weight == 1.0

    entries = _audits(store, "number.review")
    assert len(entries) == 2
    entry = entries[0]
    assert entry["target_id"] == A and entry["actor"] == "key:7 sup"
    assert entry["before"]["review"]["action"] == "confirm_prank"
    assert entry["before"]["history_weights"] == {"r0": 1.0, "r1": 1.0}
    assert entry["after"]["history_weights"] == {"r0": 0.0, "r1": 0.0}
    assert entry["after"]["review"]["action"] == "clear"

    timeline = store.number_timeline(A)
    assert [c["call_id"] for c in timeline["calls"]] == ["r0", "r1", "r2", "r3"]
    assert [r["action"] for r in timeline["reviews"]] == ["confirm_prank", "clear"]


def test_review_rejects_bad_requests(store: Store) -> None:
    _call(store, "v1", A, T0)
    until = NOW + timedelta(days=7)
    watch = store.review_number(A, action="watch", until=until, note=None, actor="cli")
    assert watch["until"] == until
    with pytest.raises(InvalidParameterError, match="unknown review action"):
        store.review_number(A, action="block", until=None, note=None, actor="cli")
    with pytest.raises(InvalidParameterError, match="watch"):
        store.review_number(A, action="clear", until=until, note=None, actor="cli")
    with pytest.raises(NotFoundError):
        store.review_number(B, action="watch", until=None, note=None, actor="cli")
    with pytest.raises(NotFoundError):
        store.number_timeline(B)
    assert len(store.number_timeline(A)["reviews"]) == 1
    assert len(_audits(store, "number.review")) == 1


def test_flagged_numbers_ranking(store: Store) -> None:
    day = timedelta(days=1)
    flag = {"flag": "likely_prank", "p_prank": 0.9, "p_ghost": 0.05}

    def add(call_id: str, caller: str, started: datetime, label: str | None = None) -> None:
        _call(store, call_id, caller, started)
        if label:
            store.set_disposition(call_id, label=label, note=None, actor="cli")

    # A: three recent confirmed pranks, more this week than last.
    add("a1", A, NOW - 10 * day, "prank")
    add("a2", A, NOW - 2 * day, "prank")
    add("a3", A, NOW - 1 * day, "prank")
    # B: one prank and two flagged, unlabelled calls, all last week.
    add("b1", B, NOW - 9 * day, "prank")
    for i in (1, 2):
        add(f"b{i + 1}", B, NOW - 8 * day)
        store.save_score(f"b{i + 1}", flag, model_version="m")
    # C: one old ghost call.
    add("c1", C, NOW - 90 * day, "ghost")
    # D: four pranks, then cleared by a supervisor: drops out.
    for i in range(4):
        add(f"d{i}", D, NOW - (3 + i) * day, "prank")
    store.save_score("d0", flag, model_version="m")
    store.review_number(D, action="clear", until=None, note=None, actor="cli", now=NOW - 2 * day)
    # E: cleared, then flagged again after the clear.
    add("e1", E, NOW - 5 * day, "ghost")
    store.review_number(E, action="clear", until=None, note=None, actor="cli", now=NOW - 4 * day)
    add("e2", E, NOW - 3 * day)
    store.save_score("e2", {**flag, "flag": "possible_ghost"}, model_version="m")
    # F: genuine emergencies only; withheld pranks never make a number.
    add("f1", F, NOW - 1 * day, "emergency")
    add("w1", "", NOW - 1 * day, "prank")
    # A call after `now` does not exist yet.
    add("a4", A, NOW + 1 * day, "prank")

    ranked = store.flagged_numbers(now=NOW)
    # E's fresh flag outweighs C's ghost call of three months ago.
    assert [r["caller_id"] for r in ranked] == [A, B, E, C]
    a, b, e, c = ranked
    assert (a["calls"], a["pranks"], a["ghosts"], a["flagged"]) == (3, 3, 0, 0)
    assert a["trend"] == "rising" and b["trend"] == "falling" and c["trend"] == "steady"
    assert a["last_call_at"] == NOW - 1 * day
    assert (b["pranks"], b["flagged"]) == (1, 2)
    assert (e["ghosts"], e["flagged"]) == (0, 1)
    assert e["review"]["action"] == "clear"
    assert a["review"] is None
    assert a["risk"] > b["risk"] > e["risk"] > c["risk"] > 0
    assert [r["caller_id"] for r in store.flagged_numbers(limit=2, now=NOW)] == [A, B]


# -- export --------------------------------------------------------------------------------


def test_export_labelled_in_manifest_format(store: Store, tmp_path: Path) -> None:
    _call(store, "x1", A, T0, trunk="7")
    _call(store, "x2", B, datetime(2025, 6, 3, 8, 30, tzinfo=NYC))
    _call(store, "x3", C, T0)  # labelled, but no recording
    _call(store, "x4", A, T0 + timedelta(hours=1))  # recording, not labelled
    for seed, call_id in enumerate(("x1", "x2", "x4")):
        store.save_audio(call_id, _wav(seed=seed), ext="wav", duration_s=0.5)
    first, _ = store.set_disposition("x1", label="prank", note=None, actor="cli")
    assert first.label_at is not None
    store.set_disposition("x3", label="ghost", note=None, actor="cli")
    store.set_disposition("x2", label="emergency", note=None, actor="cli")

    rows = store.export_labelled(since=None)
    assert [r["call_id"] for r in rows] == ["x1", "x2"]
    assert list(rows[0])[: len(MANIFEST_COLUMNS)] == list(MANIFEST_COLUMNS)
    assert rows[0]["started_at"] == "2025-06-02T21:15:00+07:00"
    assert rows[1]["started_at"] == "2025-06-03T08:30:00-04:00"
    assert (rows[0]["label"], rows[0]["duration_s"], rows[0]["trunk"]) == ("prank", "0.5", "7")
    assert [r["call_id"] for r in store.export_labelled(since=None, require_audio=False)] == [
        "x1",
        "x3",
        "x2",
    ]
    later = store.export_labelled(since=first.label_at + timedelta(microseconds=1))
    assert [r["call_id"] for r in later] == ["x2"]

    manifest = tmp_path / "export.csv"
    manifest.write_text(rows_to_csv(rows), encoding="utf-8")
    assert validate_manifest(manifest) == []


# -- keys ----------------------------------------------------------------------------------


def test_keys_verify_expire_revoke(store: Store) -> None:
    token, info = store.create_key(role="supervisor", name="desk 4", actor="cli")
    assert token.startswith("cs_") and len(token) == 46
    assert info["prefix"] == token[:11] and info["role"] == "supervisor"
    now = datetime.now(UTC)
    expected = {"id": info["id"], "role": "supervisor", "name": "desk 4"}
    assert store.verify_key(token, now=now) == expected
    # Same prefix, different secret; other shapes; unknown keys.
    assert store.verify_key(token[:-1] + ("A" if token[-1] != "A" else "B"), now=now) is None
    for wrong in ("", "cs_", "Bearer x", token + "\n", "cs_" + "x" * 43):
        assert store.verify_key(wrong, now=now) is None

    soon, soon_info = store.create_key(
        role="call_taker", name="temp", actor="key:1 admin", expires_at=now + timedelta(days=1)
    )
    assert soon_info["created_by"] == 1
    assert store.verify_key(soon, now=now) is not None
    assert store.verify_key(soon, now=now + timedelta(days=2)) is None

    store.revoke_key(info["id"], actor="key:1 admin")
    store.revoke_key(info["id"], actor="key:1 admin")  # no second entry
    assert store.verify_key(token, now=now) is None
    with pytest.raises(NotFoundError):
        store.revoke_key(999, actor="cli")
    with pytest.raises(InvalidParameterError, match="expected one of call_taker"):
        store.create_key(role="root", name="x", actor="cli")

    assert len(_audits(store, "key.create")) == 2
    revoked = _audits(store, "key.revoke")
    assert len(revoked) == 1 and revoked[0]["after"]["revoked_at"]

    # Only hashes are stored: no column of any table holds a token.
    with store.engine.connect() as conn:
        dump = " ".join(
            repr(row)
            for table in ("api_keys", "audit_log")
            for row in conn.execute(text(f"SELECT * FROM {table}")).all()
        )
    assert hash_token(token) in dump
    assert token not in dump and soon not in dump
    assert token[11:] not in dump


# -- audit ---------------------------------------------------------------------------------


def test_audit_log_is_append_only_in_the_database(store: Store) -> None:
    store.audit(
        actor="key:2 ds",
        action="model.reload",
        target_type="model",
        target_id="default",
        before={"version": "a"},
        after={"version": "b", "at": NOW},
    )
    (entry,) = store.audit_entries()
    assert entry["after"] == {"version": "b", "at": NOW.isoformat()}
    statements = ["UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"]
    if store.engine.dialect.name == "postgresql":
        statements.append("TRUNCATE audit_log")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), store.engine.begin() as conn:
            conn.execute(text(statement))
    with store.engine.connect() as conn:
        rows = conn.execute(select(AuditEntry.actor)).all()
    assert rows == [("key:2 ds",)]


def test_audit_entries_newest_first_with_paging(store: Store) -> None:
    for i in range(5):
        store.audit(
            actor="cli", action=f"a{i}", target_type="t", target_id=str(i), before=None, after=None
        )
    assert [e["action"] for e in store.audit_entries(limit=2, offset=1)] == ["a3", "a2"]
    with pytest.raises(InvalidParameterError):
        store.audit_entries(limit=0)


# -- degraded ------------------------------------------------------------------------------


def test_unreachable_database_fails_fast(tmp_path: Path) -> None:
    store = Store("postgresql+psycopg://postgres@127.0.0.1:1/x", data_dir=tmp_path)
    start = time.monotonic()
    try:
        assert store.ping() is False
        with pytest.raises(StoreUnavailableError, match="database unavailable"):
            store.register_call(call_id="c", caller_id=A, started_at=T0, metadata={}, actor="cli")
        with pytest.raises(StoreUnavailableError):
            store.caller_history(A, before=NOW)
        with pytest.raises(StoreUnavailableError):
            store.upgrade()
        assert isinstance(StoreUnavailableError("x"), CallsiftError)
    finally:
        store.dispose()
    assert time.monotonic() - start < 5.0


# -- command line --------------------------------------------------------------------------


def test_keys_cli_prints_once_and_audits(
    store: Store, store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", store_url)
    runner = CliRunner()
    result = runner.invoke(
        callsift.app, ["keys", "create", "--role", "data_scientist", "--name", "nb"]
    )
    assert result.exit_code == 0, result.output
    tokens = [line for line in result.stdout.splitlines() if line.startswith("cs_")]
    assert len(tokens) == 1
    assert "cannot be shown again" in result.output
    info = store.verify_key(tokens[0], now=datetime.now(UTC))
    assert info is not None and info["role"] == "data_scientist" and info["name"] == "nb"
    (entry,) = _audits(store, "key.create")
    assert entry["actor"] == "cli"

    listed = runner.invoke(callsift.app, ["keys", "list"])
    assert listed.exit_code == 0 and "data_scientist\tactive" in listed.stdout
    assert tokens[0] not in listed.stdout
    revoked = runner.invoke(callsift.app, ["keys", "revoke", str(info["id"])])
    assert revoked.exit_code == 0, revoked.output
    assert store.verify_key(tokens[0], now=datetime.now(UTC)) is None
    upgraded = runner.invoke(callsift.app, ["db", "upgrade"])
    assert upgraded.exit_code == 0 and "up to date" in upgraded.stdout


def test_keys_cli_unknown_role_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "cli.db"
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{db}")
    monkeypatch.setattr(sys, "argv", ["callsift", "keys", "create", "--role", "boss"])
    with pytest.raises(SystemExit) as exit_info:
        callsift.main()
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown role 'boss'")
    assert all(role in err for role in ROLES)
    assert not db.exists()  # refused before touching the database


def test_api_cli_import_is_light() -> None:
    code = (
        "import sys, api.cli; "
        "heavy = [m for m in ('sqlalchemy', 'fastapi', 'alembic') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
