"""Management: the weekly report as one printable HTML page (api/reports.py builds it).

Supervisors see callers' numbers in full; admins see them masked (``+62812****567``):
the page is meant to be printed and passed on, and an admin runs the service rather than
follows up callers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from api.deps import RuntimeDep, SupervisorDep
from api.reports import WEEK_PATTERN, weekly_report_html
from api.schemas import error_responses

router = APIRouter(prefix="/v1/reports", tags=["reports"])


@router.get(
    "/weekly",
    response_class=HTMLResponse,
    summary="Weekly report for management, one printable HTML page",
    responses={
        200: {"content": {"text/html": {}}, "description": "the report page"},
        **error_responses(
            401,
            403,
            413,
            (422, "week not in the format YYYY-Www, not an ISO week, or in the future"),
            503,
        ),
    },
)
def weekly_report(
    principal: SupervisorDep,
    runtime: RuntimeDep,
    week: Annotated[
        str,
        Query(
            description=(
                "ISO week, YYYY-Www (e.g. 2026-W49): one the ISO year has, and not in the future."
            ),
            # In the schema only: the route's own check names the expected format.
            json_schema_extra={"pattern": WEEK_PATTERN},
        ),
    ],
    lang: Annotated[Literal["en", "id"], Query(description="Page language.")] = "en",
) -> HTMLResponse:
    """Calls by outcome per day, prank and ghost share against the 4 earlier weeks,
    pranks by weekday and hour, the numbers with most confirmed pranks, incident types,
    time spent on prank and ghost calls, and what the flags caught and missed. Days and
    hours are in the centre's time zone (``CALLSIFT_TIMEZONE``), else UTC."""
    page = weekly_report_html(
        runtime.store,
        week=week,
        tz=runtime.timezone,
        lang=lang,
        unmask=principal.role == "supervisor",
        now=datetime.now(UTC),
    )
    return HTMLResponse(page)
