"""The export of dispositioned calls as a manifest (docs/data-format.md), in the columns
and through the CSV writer of :mod:`classifier.manifest`."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import select

from api.db import Call
from api.store.checks import aware
from api.store.engine import StoreEngine
from api.store.rows import iso, local_time
from classifier.callrow import OPTIONAL_COLUMNS, REQUIRED_COLUMNS

#: Columns every exported row starts with (docs/data-format.md), then optional ones.
MANIFEST_COLUMNS: tuple[str, ...] = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, "label_at")


class ExportStore(StoreEngine):
    """Labelled calls as manifest rows."""

    def export_labelled(
        self, *, since: datetime | None, require_audio: bool = True
    ) -> list[dict[str, str]]:
        """Dispositioned calls as manifest rows (docs/data-format.md), oldest disposition first.

        Parameters
        ----------
        since : datetime or None, keyword-only
            Only calls dispositioned at or after this time.
        require_audio : bool, keyword-only
            Leave out calls whose recording never arrived (a manifest row needs audio).

        Returns
        -------
        list of dict of str to str
            Columns :data:`MANIFEST_COLUMNS` (``started_at`` in the call's own offset,
            ``audio_path`` absolute), then the call's metadata keys that do not clash.
        """
        if since is not None:
            aware(since, "since")
        query = select(Call).where(Call.label.is_not(None))
        if since is not None:
            query = query.where(Call.label_at >= since)
        if require_audio:
            query = query.where(Call.audio_file.is_not(None))
        query = query.order_by(Call.label_at, Call.id)
        with self._session() as session:
            rows = session.execute(query).scalars().all()
        out: list[dict[str, str]] = []
        for r in rows:
            row = {
                "call_id": r.call_id,
                "caller_id": r.caller_id,
                "started_at": local_time(r.started_at, r.utc_offset_s).isoformat(),
                "duration_s": repr(float(r.duration_s or 0.0)),
                "audio_path": r.audio_file or "",
                "label": r.label or "",
                "caller_channel": r.caller_channel or "mix",
                "label_at": iso(r.label_at) or "",
            }
            for key, value in (r.meta or {}).items():
                row.setdefault(key, value)
            out.append(row)
        return out


def manifest_fieldnames(rows: Sequence[Mapping[str, str]]) -> list[str]:
    """CSV columns for :meth:`Store.export_labelled` rows: the fixed ones, then metadata keys
    in order of first appearance."""
    names = list(MANIFEST_COLUMNS)
    seen = set(names)
    for row in rows:
        for key in row:
            if key not in seen:
                seen.add(key)
                names.append(key)
    return names


def rows_to_csv(rows: Sequence[Mapping[str, str]]) -> str:
    """Manifest CSV text of exported rows (header line even when there are none)."""
    # The manifest module pulls in pandas; only pay for it when a manifest is exported.
    from classifier.manifest import write_manifest_rows

    buffer = io.StringIO()
    write_manifest_rows(buffer, rows, manifest_fieldnames(rows), lineterminator="\n")
    return buffer.getvalue()
