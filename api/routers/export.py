"""Data scientists: reviewed calls back as training data, in the manifest format.

The export names each recording by its path in the recordings folder
(``<sha256>.<ext>``), never by its place on the server: a manifest saved in that folder,
or in a copy of it, resolves its audio (``audio_path`` is relative to the manifest).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import Response

from api.deps import DataScientistDep, StoreDep
from api.schemas import DateTime, error_responses
from api.store import rows_to_csv

router = APIRouter(prefix="/v1/export", tags=["export"])


@router.get(
    "/labelled",
    response_class=Response,
    summary="Dispositioned calls as a manifest CSV (docs/data-format.md)",
    responses={
        200: {"content": {"text/csv": {}}, "description": "manifest CSV"},
        **error_responses(401, 403, 413, 422, 503),
    },
)
def export_labelled(
    principal: DataScientistDep,
    store: StoreDep,
    since: Annotated[
        DateTime | None,
        Query(description="Only calls dispositioned at or after this time (RFC 3339 with offset)."),
    ] = None,
) -> Response:
    """Every call with a disposition and a recording, oldest disposition first. Each
    ``audio_path`` is relative to the recordings folder (``<sha256>.<ext>``): save the
    CSV there, or in a copy of that folder, and check it with ``callsift validate``."""
    rows = store.export_labelled(since=since)
    for row in rows:
        # Stored recordings lie flat in <data_dir>/recordings, named by their content.
        row["audio_path"] = PurePath(row["audio_path"]).name
    return Response(
        content=rows_to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="labelled.csv"'},
    )
