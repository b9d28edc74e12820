"""Retention: delete old recordings and pseudonymise old caller numbers.

``callsift db retention [--dry-run]`` runs :func:`apply_retention` with the settings
``CALLSIFT_RETENTION_DAYS`` (recordings) and ``CALLSIFT_NUMBER_RETENTION_DAYS``
(numbers, with ``CALLSIFT_PSEUDONYM_KEY``). Only calls that *started* before the cutoff
(now minus the days) are touched; a call inside the window is never changed, and a
recording file one of them still uses (recordings are content-addressed, so two calls
may share one) is never deleted.

The work goes in batches of :data:`BATCH` calls, each one short transaction (every
statement stays within ``CALLSIFT_DB_TIMEOUT_S`` while the service runs beside it) that
writes its own audit entry, so whatever a run did is in the audit log even if it stops
half way; run it again to finish. Audit entries name the calls, never a number.

A pseudonym is ``anon:`` and 16 hex digits of HMAC-SHA256(key, number)
(``simless:anon-...`` for a SIM-less id, which keeps that feature of the call): the same
number gets the same pseudonym in every run with the same key, so an export still keeps
a caller's calls together (training splits by caller), while nobody without the key can
tell which number it was, even by trying every number.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path, PurePath

from sqlalchemy import select, update

from api.db import Call, Review
from api.store import Store
from api.store.audit import audit_row
from classifier.errors import InvalidParameterError

#: Calls per transaction (and per audit entry).
BATCH = 500
#: Shortest pseudonym key accepted.
MIN_KEY_LENGTH = 16
_PSEUDONYM = re.compile(r"^(?:anon:|simless:anon-)[0-9a-f]{16}$")


def pseudonym_key(numbers_days: int | None, key: str | None) -> bytes:
    """The pseudonym key as bytes (empty when numbers are kept).

    Raises
    ------
    InvalidParameterError
        Numbers are to be pseudonymised and the key is missing or short.
    """
    if numbers_days is None:
        return b""
    if key is None or len(key) < MIN_KEY_LENGTH:
        raise InvalidParameterError(
            "CALLSIFT_NUMBER_RETENTION_DAYS needs CALLSIFT_PSEUDONYM_KEY, a secret of at "
            f"least {MIN_KEY_LENGTH} characters kept the same for every run (e.g. "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return key.encode("utf-8")


def pseudonym(caller_id: str, key: bytes) -> str:
    """The pseudonym of ``caller_id`` under ``key`` (``""``, withheld, stays ``""``)."""
    if caller_id == "" or is_pseudonym(caller_id):
        return caller_id
    digest = hmac.new(key, caller_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]
    return f"simless:anon-{digest}" if caller_id.startswith("simless:") else f"anon:{digest}"


def is_pseudonym(caller_id: str) -> bool:
    """Whether ``caller_id`` is already a pseudonym made by :func:`pseudonym`."""
    return bool(_PSEUDONYM.match(caller_id))


@dataclass
class RetentionReport:
    """What a run changed (or, dry, would change)."""

    dry_run: bool
    recordings_cutoff: datetime | None
    numbers_cutoff: datetime | None
    recordings_removed: int = 0
    files_deleted: int = 0
    files_kept: int = 0
    calls_pseudonymised: int = 0
    reviews_pseudonymised: int = 0
    problems: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """The report as lines for the terminal."""
        would = "would be " if self.dry_run else ""
        out: list[str] = []
        if self.recordings_cutoff is None:
            out.append("recordings: kept (CALLSIFT_RETENTION_DAYS not set)")
        else:
            out.append(
                f"recordings of calls started before {_when(self.recordings_cutoff)}: "
                f"{self.recordings_removed} calls' recordings {would}removed, "
                f"{self.files_deleted} files {would}deleted, {self.files_kept} kept for "
                "calls inside the window"
            )
        if self.numbers_cutoff is None:
            out.append("numbers: kept (CALLSIFT_NUMBER_RETENTION_DAYS not set)")
        else:
            out.append(
                f"numbers of calls and reviews before {_when(self.numbers_cutoff)}: "
                f"{self.calls_pseudonymised} calls and {self.reviews_pseudonymised} reviews "
                f"{would}pseudonymised"
            )
        return out + [f"problem: {p}" for p in self.problems]


def _when(value: datetime) -> str:
    return value.isoformat(timespec="seconds")


def apply_retention(
    store: Store,
    *,
    now: datetime,
    recordings_days: int | None,
    numbers_days: int | None,
    key: str | None,
    dry_run: bool = False,
    actor: str = "cli",
    batch: int = BATCH,
) -> RetentionReport:
    """Delete recordings and pseudonymise numbers of calls older than the settings.

    Parameters
    ----------
    store : Store
    now : datetime, keyword-only
        Aware; the cutoffs are ``now`` minus the days.
    recordings_days, numbers_days : int or None, keyword-only
        At least 1; None leaves that kind of data as it is.
    key : str or None, keyword-only
        The pseudonym key; required (at least :data:`MIN_KEY_LENGTH` characters) when
        ``numbers_days`` is set.
    dry_run : bool, keyword-only
        Count what would change; change nothing, write no audit entry.
    actor : str, keyword-only
        Who runs it, in the audit log.
    batch : int, keyword-only
        Calls per transaction.

    Returns
    -------
    RetentionReport

    Raises
    ------
    InvalidParameterError
        A bad setting, named.
    StoreUnavailableError
        The database failed; batches done before are kept, and audited.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidParameterError("now must be an aware datetime")
    for name, days in (("recordings", recordings_days), ("numbers", numbers_days)):
        if days is not None and (not isinstance(days, int) or days < 1):
            raise InvalidParameterError(f"retention days of {name} must be 1 or more; got {days}")
    if batch < 1:
        raise InvalidParameterError(f"batch must be 1 or more; got {batch}")
    secret = pseudonym_key(numbers_days, key)
    report = RetentionReport(
        dry_run=dry_run,
        recordings_cutoff=None if recordings_days is None else now - timedelta(recordings_days),
        numbers_cutoff=None if numbers_days is None else now - timedelta(numbers_days),
    )
    if report.recordings_cutoff is not None:
        _recordings(store, report, report.recordings_cutoff, actor=actor, batch=batch)
    if report.numbers_cutoff is not None:
        _numbers(store, report, report.numbers_cutoff, now, secret, actor=actor, batch=batch)
    return report


def _recordings(
    store: Store, report: RetentionReport, cutoff: datetime, *, actor: str, batch: int
) -> None:
    folder = store.data_dir / "recordings"
    last = 0
    while True:
        # One session per batch; store._session maps database errors as every store call.
        with store._session(write=not report.dry_run) as session:
            query = (
                select(Call.id, Call.call_id, Call.audio_file, Call.audio_sha256)
                .where(Call.started_at < cutoff, Call.audio_file.is_not(None), Call.id > last)
                .order_by(Call.id)
                .limit(batch)
            )
            rows = session.execute(query if report.dry_run else query.with_for_update()).all()
            if not rows:
                return
            last = rows[-1].id
            ids = [r.id for r in rows]
            # A file is the recordings folder's file of that name: only files there are
            # ever served, and only files there are ever deleted.
            files = {PurePath(str(r.audio_file)).name for r in rows}
            shas = {r.audio_sha256 for r in rows if r.audio_sha256}
            in_use = {
                PurePath(str(f)).name
                for f in session.execute(
                    select(Call.audio_file).where(
                        Call.audio_sha256.in_(shas),
                        Call.audio_file.is_not(None),
                        Call.id.not_in(ids),
                    )
                ).scalars()
            }
            doomed = sorted(files - in_use)
            report.recordings_removed += len(rows)
            report.files_kept += len(files & in_use)
            if report.dry_run:
                report.files_deleted += sum((folder / name).is_file() for name in doomed)
                continue
            session.execute(update(Call).where(Call.id.in_(ids)).values(audio_file=None))
            deleted = _delete(folder, doomed, report)
            session.add(
                audit_row(
                    actor,
                    "retention.recordings",
                    "calls",
                    f"started before {cutoff.isoformat()}",
                    {"call_ids": [r.call_id for r in rows]},
                    {
                        "recording": None,
                        "files_deleted": deleted,
                        "files_kept": len(files & in_use),
                    },
                )
            )


def _delete(folder: Path, names: list[str], report: RetentionReport) -> int:
    """Delete ``names`` in ``folder`` (before the batch commits: a run stopped after
    this leaves calls naming missing files, which the next run unlinks for good)."""
    deleted = 0
    for name in names:
        path = folder / name
        try:
            path.unlink()
            deleted += 1
        except FileNotFoundError:
            pass
        except OSError as exc:
            report.problems.append(f"recording {name} could not be deleted: {exc.strerror}")
    report.files_deleted += deleted
    return deleted


def _numbers(
    store: Store,
    report: RetentionReport,
    cutoff: datetime,
    now: datetime,
    key: bytes,
    *,
    actor: str,
    batch: int,
) -> None:
    target = f"before {cutoff.isoformat()}"
    last = 0
    while True:
        with store._session(write=not report.dry_run) as session:
            query = (
                select(Call)
                .where(Call.started_at < cutoff, Call.caller_id != "", Call.id > last)
                .order_by(Call.id)
                .limit(batch)
            )
            calls = session.execute(query if report.dry_run else query.with_for_update())
            rows = list(calls.scalars())
            if not rows:
                break
            last = rows[-1].id
            changed = [r for r in rows if not is_pseudonym(r.caller_id)]
            report.calls_pseudonymised += len(changed)
            if report.dry_run or not changed:
                continue
            for r in changed:
                r.caller_id = pseudonym(r.caller_id, key)
            session.add(
                audit_row(
                    actor,
                    "retention.numbers",
                    "calls",
                    target,
                    {"call_ids": [r.call_id for r in changed]},
                    {"caller_id": "pseudonym"},
                )
            )
    last = 0
    while True:
        with store._session(write=not report.dry_run) as session:
            # A watch still running keeps its number: it is a decision in force.
            review_query = (
                select(Review)
                .where(
                    Review.created_at < cutoff,
                    Review.id > last,
                    Review.until.is_(None) | (Review.until <= now),
                )
                .order_by(Review.id)
                .limit(batch)
            )
            found = session.execute(
                review_query if report.dry_run else review_query.with_for_update()
            )
            reviews = list(found.scalars())
            if not reviews:
                return
            last = reviews[-1].id
            altered = [v for v in reviews if v.caller_id and not is_pseudonym(v.caller_id)]
            report.reviews_pseudonymised += len(altered)
            if report.dry_run or not altered:
                continue
            for review in altered:
                review.caller_id = pseudonym(review.caller_id, key)
            session.add(
                audit_row(
                    actor,
                    "retention.numbers",
                    "reviews",
                    target,
                    {"review_ids": [v.id for v in altered]},
                    {"caller_id": "pseudonym"},
                )
            )
