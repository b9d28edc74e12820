"""Retention (issue 19, deliver 5): ``callsift db retention`` deletes old recordings and
pseudonymises old numbers, audited, never touching a call inside the window; on SQLite
and PostgreSQL."""

from __future__ import annotations

import io
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import callsift
from api.retention import apply_retention, is_pseudonym, pseudonym
from api.store import Store, rows_to_csv
from classifier.callrow import caller_id_problem
from classifier.errors import InvalidParameterError
from classifier.manifest import validate_manifest

NOW = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
KEY = "k" * 32
A, B, C, D = "+6281200000011", "+6281200000012", "+6281200000013", "+6281200000014"
SIMLESS = "simless:356938035643809"
NUMBERS = (A, B, C, D, SIMLESS)


def _wav(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buffer = io.BytesIO()
    sf.write(buffer, 0.1 * rng.standard_normal(4000), 8000, format="WAV")
    return buffer.getvalue()


def _ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


#: call_id: (number, days before NOW, recording seed or None). Recordings are kept 60
#: days and numbers 30 in the tests below.
CALLS: dict[str, tuple[str, float, int | None]] = {
    "old": (A, 90, 1),
    "old-again": (A, 89, None),
    "old-simless": (SIMLESS, 45, 2),
    "shared-old": (B, 61, 3),
    "shared-new": (B, 5, 3),  # the same bytes: one file for both calls
    "rec-edge-in": (C, 60 - 1 / 1440, 4),  # a minute inside the recordings window
    "rec-edge-out": (C, 60 + 1 / 1440, 5),  # a minute outside it
    "num-edge-in": (D, 30 - 1 / 1440, None),
    "withheld": ("", 90, 6),
    "new": (A, 1, 7),
}
#: Calls inside both windows: never changed.
INSIDE = ("shared-new", "num-edge-in", "new")


def _populate(store: Store) -> None:
    for call_id, (number, days, seed) in CALLS.items():
        store.register_call(
            call_id=call_id, caller_id=number, started_at=_ago(days), metadata={}, actor="cli"
        )
        if seed is not None:
            store.save_audio(call_id, _wav(seed), ext="wav", duration_s=0.5)
    for call_id in ("old-simless", "rec-edge-in", "shared-new"):
        store.set_disposition(call_id, label="prank", note=None, actor="cli")
    store.review_number(A, action="confirm_prank", until=None, note=None, actor="cli", now=_ago(40))
    store.review_number(
        B, action="watch", until=NOW + timedelta(days=10), note=None, actor="cli", now=_ago(40)
    )
    store.review_number(D, action="clear", until=None, note=None, actor="cli", now=_ago(10))


def _snapshot(store: Store) -> dict[str, dict[str, Any]]:
    return {call_id: store.get_call(call_id).as_dict() for call_id in CALLS}


def _reviews(store: Store) -> list[str]:
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT caller_id FROM reviews ORDER BY id"))]


def _retention_audits(store: Store) -> list[dict[str, Any]]:
    return [e for e in store.audit_entries(limit=1000) if e["action"].startswith("retention.")]


def _files(store: Store) -> set[str]:
    return {p.name for p in (store.data_dir / "recordings").iterdir()}


def test_retention_deletes_old_recordings_and_pseudonymises_old_numbers(store: Store) -> None:
    _populate(store)
    before = _snapshot(store)
    files = _files(store)
    assert len(files) == 7 and len(store.caller_history(A, before=NOW)) == 3

    dry = apply_retention(
        store, now=NOW, recordings_days=60, numbers_days=30, key=KEY, dry_run=True
    )
    assert (dry.recordings_removed, dry.files_deleted, dry.files_kept) == (4, 3, 1)
    assert (dry.calls_pseudonymised, dry.reviews_pseudonymised) == (6, 1)
    assert _snapshot(store) == before and _files(store) == files
    assert _retention_audits(store) == [] and len(_reviews(store)) == 3

    done = apply_retention(store, now=NOW, recordings_days=60, numbers_days=30, key=KEY, batch=2)
    assert (done.recordings_removed, done.files_deleted, done.files_kept) == (4, 3, 1)
    assert (done.calls_pseudonymised, done.reviews_pseudonymised) == (6, 1)
    assert done.problems == []
    after = _snapshot(store)

    # Inside both windows: nothing changed, and their recordings are all there.
    for call_id in INSIDE:
        assert after[call_id] == before[call_id], call_id
    assert Path(after["shared-new"]["audio_file"]).is_file()  # its file was shared
    assert Path(after["rec-edge-in"]["audio_file"]).is_file()
    assert Path(after["old-simless"]["audio_file"]).is_file()  # 45 days: recording kept
    # Outside the recordings window: link gone, file deleted unless another call uses it.
    for call_id in ("old", "shared-old", "rec-edge-out", "withheld"):
        assert after[call_id]["audio_file"] is None, call_id
        assert after[call_id]["score"] == before[call_id]["score"]  # the rest is kept
    assert not Path(before["old"]["audio_file"]).exists()
    assert not Path(before["rec-edge-out"]["audio_file"]).exists()
    assert len(_files(store)) == 4

    # Outside the numbers window: a keyed pseudonym, the same for the same number.
    assert (
        after["old"]["caller_id"] == after["old-again"]["caller_id"] == pseudonym(A, KEY.encode())
    )
    assert after["old"]["caller_id"].startswith("anon:")
    assert after["old-simless"]["caller_id"].startswith("simless:anon-")
    assert after["rec-edge-in"]["caller_id"] == after["rec-edge-out"]["caller_id"]
    assert after["withheld"]["caller_id"] == ""
    assert after["num-edge-in"]["caller_id"] == D and after["new"]["caller_id"] == A
    # The number's old calls no longer count in its history.
    assert len(store.caller_history(A, before=NOW)) == 1
    # Reviews: the old one pseudonymised, a watch still running and a recent one kept.
    old_review, watch, recent = _reviews(store)
    assert is_pseudonym(old_review) and (watch, recent) == (B, D)

    # Audited per batch, naming calls, never a number.
    audits = _retention_audits(store)
    recordings = [e for e in audits if e["action"] == "retention.recordings"]
    assert len(recordings) == 2  # 4 calls in batches of 2
    assert sorted(c for e in recordings for c in e["before"]["call_ids"]) == sorted(
        ["old", "shared-old", "rec-edge-out", "withheld"]
    )
    assert sum(e["after"]["files_deleted"] for e in recordings) == 3
    numbered = [e for e in audits if e["action"] == "retention.numbers"]
    assert sorted(c for e in numbered for c in e["before"].get("call_ids", [])) == sorted(
        ["old", "old-again", "old-simless", "shared-old", "rec-edge-in", "rec-edge-out"]
    )
    text = json.dumps(audits, default=str)
    assert not [n for n in NUMBERS if n in text]

    # A second run finds nothing left to do and writes nothing.
    again = apply_retention(store, now=NOW, recordings_days=60, numbers_days=30, key=KEY)
    assert (again.recordings_removed, again.calls_pseudonymised, again.reviews_pseudonymised) == (
        0,
        0,
        0,
    )
    assert len(_retention_audits(store)) == len(audits) and _snapshot(store) == after


def test_the_export_of_pseudonymised_calls_is_still_a_manifest(
    store: Store, tmp_path: Path
) -> None:
    _populate(store)
    apply_retention(store, now=NOW, recordings_days=60, numbers_days=30, key=KEY)
    rows = store.export_labelled(since=None)
    assert {r["call_id"] for r in rows} == {"old-simless", "rec-edge-in", "shared-new"}
    assert {r["caller_id"][:5] for r in rows} == {"simle", "anon:", "+6281"}
    manifest = tmp_path / "export.csv"
    manifest.write_text(rows_to_csv(rows), encoding="utf-8")
    assert validate_manifest(manifest) == []
    assert caller_id_problem("anon:0123456789abcdef") is None
    assert caller_id_problem("anon:0123") is not None  # only the pseudonym's own shape


def test_only_what_is_set_is_applied_and_a_missing_key_is_refused(store: Store) -> None:
    _populate(store)
    before = _snapshot(store)
    kept = apply_retention(store, now=NOW, recordings_days=None, numbers_days=None, key=None)
    assert kept.lines()[0].startswith("recordings: kept") and _snapshot(store) == before
    for key in (None, "short"):
        with pytest.raises(InvalidParameterError, match="CALLSIFT_PSEUDONYM_KEY"):
            apply_retention(store, now=NOW, recordings_days=60, numbers_days=30, key=key)
    assert _snapshot(store) == before  # refused before any change
    with pytest.raises(InvalidParameterError, match="1 or more"):
        apply_retention(store, now=NOW, recordings_days=0, numbers_days=None, key=None)
    # Another key gives other pseudonyms: without it they cannot be matched to numbers.
    assert pseudonym(A, KEY.encode()) != pseudonym(A, b"another key of 32 characters....")


def test_retention_command(
    store: Store, store_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    store.register_call(
        call_id="old", caller_id=A, started_at=now - timedelta(days=40), metadata={}, actor="cli"
    )
    store.save_audio("old", _wav(1), ext="wav", duration_s=0.5)
    store.register_call(
        call_id="new", caller_id=A, started_at=now - timedelta(days=1), metadata={}, actor="cli"
    )
    for name, value in {
        "DATABASE_URL": store_url,
        "CALLSIFT_DATA_DIR": str(data_dir),
        "CALLSIFT_RETENTION_DAYS": "30",
        "CALLSIFT_NUMBER_RETENTION_DAYS": "30",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("CALLSIFT_PSEUDONYM_KEY", raising=False)
    monkeypatch.setattr(sys, "argv", ["callsift", "db", "retention"])
    with pytest.raises(SystemExit) as refused:
        callsift.main()
    assert refused.value.code != 0
    monkeypatch.setenv("CALLSIFT_PSEUDONYM_KEY", KEY)
    runner = CliRunner()
    dry = runner.invoke(callsift.app, ["db", "retention", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "1 calls' recordings would be removed, 1 files would be deleted" in dry.stdout
    assert "1 calls and 0 reviews would be pseudonymised" in dry.stdout
    assert store.get_call("old").audio_file is not None
    done = runner.invoke(callsift.app, ["db", "retention"])
    assert done.exit_code == 0, done.output
    assert "1 calls' recordings removed, 1 files deleted" in done.stdout
    old, new = store.get_call("old"), store.get_call("new")
    assert old.audio_file is None and is_pseudonym(old.caller_id)
    assert new.caller_id == A
    assert {e["actor"] for e in _retention_audits(store)} == {"cli"}
