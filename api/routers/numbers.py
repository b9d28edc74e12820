"""Supervisors: numbers ranked by risk, a number's timeline, review decisions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AfterValidator

from api.deps import StoreDep, SupervisorDep
from api.routers.calls import call_out
from api.schemas import (
    NUMBER_PATTERN,
    SERVICE_ADVISORY,
    FlaggedNumberOut,
    FlaggedOut,
    ReviewIn,
    ReviewOut,
    TimelineOut,
    check_number,
    error_responses,
)
from classifier.callrow import CALLER_ID_MAX, caller_id_problem

router = APIRouter(prefix="/v1/numbers", tags=["numbers"])


def _caller_id(caller_id: str) -> str:
    problem = caller_id_problem(caller_id)
    if caller_id == "" or problem:
        raise HTTPException(
            status_code=422,
            detail=f"caller_id: {problem or 'empty'}; expected an E.164 number or simless:<id>",
        )
    return caller_id


CallerIdPath = Annotated[
    str,
    AfterValidator(check_number),
    Path(
        max_length=CALLER_ID_MAX,
        description="E.164 number or simless:<handset id>.",
        json_schema_extra={"pattern": NUMBER_PATTERN},
    ),
]
_NO_NUMBER = (404, "no call from this number")


@router.get(
    "/flagged",
    response_model=FlaggedOut,
    summary="Numbers ranked by risk (confirmed pranks, ghost calls, recent flags)",
    responses=error_responses(401, 403, 413, 422, 503),
)
def flagged_numbers(
    principal: SupervisorDep,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> FlaggedOut:
    """Numbers whose calls keep costing the centre time, riskiest first, with counts of
    confirmed pranks and ghost calls, the last call and the trend over two weeks.
    Advisory: nothing here blocks or deprioritises a number's calls."""
    rows = store.flagged_numbers(limit=limit, now=datetime.now(UTC))
    return FlaggedOut(numbers=[FlaggedNumberOut(**row) for row in rows], advisory=SERVICE_ADVISORY)


@router.get(
    "/{caller_id}",
    response_model=TimelineOut,
    summary="A number's timeline: calls, scores, dispositions and reviews",
    responses=error_responses(401, 403, _NO_NUMBER, 413, 422, 503),
)
def number_timeline(
    caller_id: CallerIdPath, principal: SupervisorDep, store: StoreDep
) -> TimelineOut:
    timeline = store.number_timeline(_caller_id(caller_id))
    return TimelineOut(
        caller_id=timeline["caller_id"],
        calls=[call_out(c) for c in timeline["calls"]],
        reviews=timeline["reviews"],
        advisory=SERVICE_ADVISORY,
    )


@router.post(
    "/{caller_id}/review",
    response_model=ReviewOut,
    summary="A supervisor's decision: confirm prank caller or ghost-prone handset, clear, watch",
    responses=error_responses(
        400, 401, 403, _NO_NUMBER, 413, (422, "invalid body; until not in the future"), 503
    ),
)
def review_number(
    caller_id: CallerIdPath, body: ReviewIn, principal: SupervisorDep, store: StoreDep
) -> ReviewOut:
    """Record a decision about a number (audited). ``clear`` resets the history weight of
    the number's earlier prank and ghost outcomes (redress); ``watch`` needs ``until``.
    A review never blocks, drops or deprioritises the number's calls."""
    now = datetime.now(UTC)
    if body.action == "watch" and body.until is None:
        raise HTTPException(status_code=422, detail="action watch needs until (an aware date)")
    if body.until is not None and body.action != "watch":
        raise HTTPException(
            status_code=422, detail=f"until applies to action watch only; got {body.action}"
        )
    if body.until is not None and body.until <= now:
        raise HTTPException(
            status_code=422,
            detail=f"until {body.until.isoformat()} is in the past; expected a future date",
        )
    review = store.review_number(
        _caller_id(caller_id),
        action=body.action,
        until=body.until,
        note=body.note,
        actor=principal.actor,
    )
    return ReviewOut(**{**review, "advisory": SERVICE_ADVISORY})
