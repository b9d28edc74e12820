"""Data scientists: reviewed calls back as training data, in the manifest format."""

from __future__ import annotations

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
    """Every call with a disposition and a recording, oldest disposition first; audio paths
    are absolute paths on the server. Check the file with ``callsift validate``."""
    rows = store.export_labelled(since=since)
    return Response(
        content=rows_to_csv(rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="labelled.csv"'},
    )
