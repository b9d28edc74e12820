"""Request and response bodies of the HTTP API.

Requests (``...In``) refuse unknown fields, so a misspelt field is an error rather
than silently ignored; responses (``...Out``) are what the service promises to send.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from classifier.callrow import (
    CALL_ID_MAX,
    CALL_ID_PATTERN,
    CALLER_ID_MAX,
    CALLER_ID_PATTERN,
    NUMBER_PATTERN,
    CallRow,
    number_problem,
)

#: Shown on every supervisor answer and in the API documentation.
SERVICE_ADVISORY: dict[str, str] = {
    "en": (
        "callsift only recommends: it never blocks, drops or deprioritises a call. "
        "Answer and handle every call; a silent caller may be a victim who cannot speak."
    ),
    "id": (
        "callsift hanya memberi saran: tidak pernah memblokir, memutus, atau menurunkan "
        "prioritas panggilan. Jawab dan tangani setiap panggilan; penelepon yang diam "
        "mungkin korban yang tidak dapat berbicara."
    ),
}
#: A call_id as the HTTP API takes it (:data:`classifier.callrow.CALL_ID_PATTERN`).
CallId = Annotated[str, StringConstraints(pattern=CALL_ID_PATTERN, max_length=CALL_ID_MAX)]


def check_number(value: str, *, pattern: str = NUMBER_PATTERN) -> str:
    """``value`` when it matches ``pattern`` (raises ValueError saying what a number is);
    the rule is :func:`classifier.callrow.number_problem`."""
    problem = number_problem(value, pattern=pattern)
    if problem is not None:
        raise ValueError(problem)
    return value


#: Text the database keeps: PostgreSQL refuses the NUL character in text and JSON.
TEXT_PATTERN = r"^[^\x00]*$"
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=TEXT_PATTERN)]
MetaValue = Annotated[str, StringConstraints(max_length=1024, pattern=TEXT_PATTERN)]
Note = Annotated[str, StringConstraints(max_length=2000, pattern=TEXT_PATTERN)]
Label = Literal["emergency", "non_emergency", "prank", "ghost"]
ReviewAction = Literal["confirm_prank", "confirm_ghost", "clear", "watch"]
Advisory = dict[str, str]

# RFC 3339 date-time with its offset, what JSON Schema's "date-time" format means.
# pydantic alone also takes numbers (as Unix times), dates without seconds and a space
# for the T: a request the schema calls invalid would be served.
_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{1,6})?"
    r"(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


_NAIVE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?")


def _rfc3339(value: object) -> object:
    if isinstance(value, datetime):  # built in Python (tests, internal callers)
        return value
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return value
    example = "expected e.g. 2025-06-03T19:04:11+08:00"
    if isinstance(value, str) and _NAIVE.fullmatch(value):
        raise ValueError(f"{value!r} has no UTC offset (timezone); {example}")
    shown = repr(value)[:60] if isinstance(value, str) else f"a {type(value).__name__}"
    raise ValueError(f"{shown} is not an RFC 3339 date-time with a UTC offset; {example}")


#: A date-time with its UTC offset, exactly as JSON Schema's ``format: date-time``.
DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]


def _metadata_schema(schema: dict[str, Any]) -> None:
    # pydantic writes a key pattern as patternProperties, which leaves any other key,
    # with any value, valid; the service refuses those.
    schema.pop("patternProperties", None)
    schema["propertyNames"] = {"minLength": 1, "maxLength": 64, "pattern": TEXT_PATTERN}
    schema["additionalProperties"] = {"type": "string", "maxLength": 1024, "pattern": TEXT_PATTERN}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


# --- calls -----------------------------------------------------------------------------


# The call row's rules (classifier.callrow.CallRow, shared with the manifest and the
# store), narrowed to what the schema documents: a call_id safe in a URL path, a number
# in ASCII digits without a pseudonym, an RFC 3339 date-time.
class CallIn(CallRow, _In):
    """A call arriving at the centre."""

    call_id: CallId = Field(description="Unique id from the call-taking system.")
    caller_id: str = Field(
        max_length=CALLER_ID_MAX,
        description="E.164 number, simless:<handset id>, or empty when withheld.",
        examples=["+6281234567890"],
        json_schema_extra={"pattern": CALLER_ID_PATTERN},
    )
    started_at: DateTime = Field(
        description=(
            "When the call started, RFC 3339 with a UTC offset; at most "
            "CALLSIFT_MAX_FUTURE_SKEW_S (300 s) in the future."
        ),
        examples=["2025-06-03T19:04:11+08:00"],
    )
    metadata: dict[MetaKey, MetaValue] = Field(
        default_factory=dict,
        max_length=50,
        description="Free text metadata, kept as is; never model input.",
        json_schema_extra=_metadata_schema,
    )

    @field_validator("caller_id")
    @classmethod
    def _api_number(cls, value: str) -> str:
        return check_number(value, pattern=CALLER_ID_PATTERN)


class ReasonOut(BaseModel):
    """One plain-language reason behind a score."""

    group: str
    effect: Literal["raises", "lowers"]
    target: Literal["prank", "ghost"]
    weight: float
    en: str
    id: str


class ScoreOut(BaseModel):
    """A score: class probabilities, flag and reasons."""

    stage: Literal["pre_answer", "call"]
    p_emergency: float
    p_non_emergency: float
    p_prank: float
    p_ghost: float
    flag: str = Field(description="none, possible_prank, likely_prank, possible_ghost, ...")
    reasons: list[ReasonOut]
    advisory: Advisory
    model_version: str


class CallScoredOut(ScoreOut):
    """The answer to a call's arrival: its pre-answer score."""

    call_id: str
    created: bool | None = Field(
        description="True for a new call, False for a retry; null when the database was down."
    )
    history_unavailable: bool = Field(
        description="The database was unreachable: scored without the caller's history."
    )
    stored: bool = Field(description="Whether the score was saved.")
    elapsed_ms: float


class AudioScoredOut(ScoreOut):
    """The answer to a recording: the full score of the call."""

    call_id: str
    duration_s: float
    history_unavailable: bool
    stored: bool
    elapsed_ms: float


class DispositionIn(_In):
    """The call-taker's outcome of a call."""

    label: Label
    note: Note | None = None


class DispositionOut(BaseModel):
    call_id: str
    label: str
    note: str | None
    label_at: datetime | None
    changed: bool = Field(description="False when the same disposition was already recorded.")


class CallOut(BaseModel):
    """A stored call with its scores and disposition."""

    call_id: str
    caller_id: str
    started_at: datetime
    metadata: dict[str, str]
    duration_s: float | None
    pre_score: dict[str, Any] | None
    score: dict[str, Any] | None
    flag: str | None
    p_prank: float | None
    p_ghost: float | None
    model_version: str | None
    scored_at: datetime | None
    label: str | None
    label_note: str | None
    label_at: datetime | None
    history_weight: float = Field(
        description="How much this call's outcome counts in the number's history (0 once cleared)."
    )
    has_audio: bool


# --- numbers ---------------------------------------------------------------------------


class FlaggedNumberOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    caller_id: str
    calls: int
    pranks: int
    ghosts: int
    flagged: int
    last_call_at: datetime | None
    trend: str
    risk: float
    review: dict[str, Any] | None = None


class FlaggedOut(BaseModel):
    numbers: list[FlaggedNumberOut]
    advisory: Advisory


class TimelineOut(BaseModel):
    caller_id: str
    calls: list[CallOut]
    reviews: list[dict[str, Any]]
    advisory: Advisory


_REVIEW_NOTE = "Free text kept with the decision (audited)."


class WatchReviewIn(_In):
    """Watch a number until a date."""

    action: Literal["watch"] = Field(description="watch the number until a date")
    until: DateTime = Field(
        description="Required: when the watch ends, RFC 3339 with a UTC offset, in the future."
    )
    note: Note | None = Field(default=None, description=_REVIEW_NOTE)

    @model_validator(mode="before")
    @classmethod
    def _needs_until(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("until") is None:
            raise ValueError("action watch needs until (an aware date)")
        return data


class DecisionReviewIn(_In):
    """Confirm a prank caller or a ghost-prone handset, or clear the number."""

    action: Literal["confirm_prank", "confirm_ghost", "clear"] = Field(
        description=(
            "confirm_prank (prank caller), confirm_ghost (ghost-prone handset), clear "
            "(resets the weight of the number's earlier flags)"
        )
    )
    until: None = Field(default=None, description="Only for watch: absent or null here.")
    note: Note | None = Field(default=None, description=_REVIEW_NOTE)

    @field_validator("until", mode="before")
    @classmethod
    def _no_until(cls, value: Any) -> None:
        if value is not None:
            raise ValueError("until applies to action watch only")
        return None


#: A supervisor's decision about a number: ``watch`` needs ``until``, the others refuse
#: it. In the schema a oneOf on ``action``, so that the rule is the schema's, not only
#: the handler's.
ReviewIn = Annotated[WatchReviewIn | DecisionReviewIn, Field(discriminator="action")]


class ReviewOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    caller_id: str
    action: str
    advisory: Advisory


# --- errors ----------------------------------------------------------------------------


class ErrorItem(BaseModel):
    """One problem of a request that failed validation."""

    loc: list[str | int] = Field(
        description='Where: "body", "query", "path" or "header", then the field.'
    )
    msg: str = Field(description="What is wrong there.")


class ErrorResponse(BaseModel):
    """Every error answer of the HTTP API (4xx and 5xx): ``detail`` says what went wrong
    and what was expected; a 422 from validation also lists each problem in ``errors``.
    Some answers add fields of their own (``/readyz``: the state of each part)."""

    detail: str = Field(description="What went wrong, and what was expected.")
    errors: list[ErrorItem] | None = Field(
        default=None, description="422 from validation: each field's problem."
    )


#: What each error status means, unless an endpoint says more.
ERROR_STATUSES: dict[int, str] = {
    400: "malformed request body: JSON that does not parse, or a broken multipart upload",
    401: "missing, unknown, revoked or expired API key",
    403: "the key's role may not use this endpoint; detail names the roles that may",
    404: "not found",
    408: "the request body did not arrive in time",
    409: "conflicts with what is stored",
    413: "request body larger than the limit (CALLSIFT_MAX_JSON_BYTES, for recordings "
    "CALLSIFT_MAX_AUDIO_BYTES)",
    415: "unsupported content type or audio format",
    422: "invalid parameter or body; errors lists each field's problem",
    503: "database or model unavailable (retry later); detail says which",
}


def error_responses(*statuses: int | tuple[int, str]) -> dict[int | str, dict[str, Any]]:
    """``responses=`` of a route: each status with :class:`ErrorResponse` as its body.

    A status is ``404`` (described as in :data:`ERROR_STATUSES`) or ``(404, "call_id
    not registered")`` when it means something particular on the route.
    """
    out: dict[int | str, dict[str, Any]] = {}
    for item in statuses:
        status, note = item if isinstance(item, tuple) else (item, ERROR_STATUSES[item])
        out[status] = {"model": ErrorResponse, "description": note}
    return out


# --- model, audit ----------------------------------------------------------------------


class DriftGroupOut(BaseModel):
    group: str = Field(description="Feature group (docs/model.md, Drift).")
    psi: float | None = Field(description="The largest PSI of its features; null: not judged.")
    level: Literal["ok", "watch", "shift"] | None
    features: dict[str, float | None] = Field(description="PSI of each feature of the group.")


class DriftScoreOut(BaseModel):
    score: str
    psi: float | None
    level: Literal["ok", "watch", "shift"] | None


class FlagRateOut(BaseModel):
    flag: Literal["prank", "ghost"]
    calls: int
    flagged: int
    rate: float | None = Field(description="Share of the window's calls flagged (any level).")
    reference: float = Field(description="Share of the model's held-out calls flagged.")
    ratio: float | None = Field(description="rate / reference; null: not judged.")
    p_value: float | None = Field(
        description="Two-sided Fisher exact test of the window's count against the held-out one."
    )
    shifted: bool


class DriftDayOut(BaseModel):
    day: str = Field(description="Local date (YYYY-MM-DD).")
    calls: int
    prank: float = Field(description="Share of the day's calls flagged prank.")
    ghost: float = Field(description="Share of the day's calls flagged ghost.")


class DriftOut(BaseModel):
    """The serving model's recent calls against its training reference."""

    status: Literal["ok", "warning", "insufficient_data", "no_reference", "unavailable"]
    warning: str | None = Field(description="Plain text when the status is warning.")
    detail: str | None
    model_version: str
    window_days: int
    since: datetime
    until: datetime
    calls: int = Field(description="Calls scored from audio by this model in the window.")
    min_calls: int
    groups: list[DriftGroupOut]
    scores: list[DriftScoreOut]
    flag_rates: list[FlagRateOut]
    days: list[DriftDayOut]
    thresholds: dict[str, float]


class ModelOut(BaseModel):
    version: str
    source: str
    loaded_at: datetime
    metrics: dict[str, Any] | None
    card: dict[str, Any]
    drift: DriftOut


class ReloadIn(_In):
    registry_ref: (
        Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=TEXT_PATTERN)] | None
    ) = Field(
        default=None,
        description="Registry alias or version to switch to; empty reloads the configured model.",
    )


class ReloadOut(BaseModel):
    previous_version: str | None
    version: str
    source: str
    loaded_at: datetime


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    at: datetime
    actor: str
    action: str
    target_type: str
    target_id: str
    before: Any | None
    after: Any | None


class AuditOut(BaseModel):
    entries: list[AuditEntryOut]
    limit: int
    offset: int


# --- web console -----------------------------------------------------------------------


class MeOut(BaseModel):
    """The holder of the request's key and what the console may show them."""

    key_id: int
    role: str
    name: str
    roles_allowed: dict[str, bool] = Field(
        description="UI capabilities: dispose, review, queue, audit, model, export, dashboard, "
        "report."
    )
    timezone: str = Field(
        description="The centre's time zone the console shows times in (CALLSIFT_TIMEZONE: "
        "an IANA name or +HH:MM); UTC when not set."
    )


class CallerRecentOut(BaseModel):
    calls_7d: int = Field(description="Calls from this number started in the last 7 days.")
    pranks: int = Field(description="Confirmed prank calls not reset by a clear.")
    ghosts: int = Field(description="Confirmed ghost calls not reset by a clear.")


class RecentCallOut(CallOut):
    created_at: datetime = Field(description="When the service registered the call (UTC).")
    caller_recent: CallerRecentOut


class RecentCallsOut(BaseModel):
    calls: list[RecentCallOut] = Field(description="Most recently registered first.")
    latest: datetime | None = Field(
        description="created_at of the newest call listed (else the since asked for): "
        "pass it as since in the next poll."
    )
    advisory: Advisory


class DayCountsOut(BaseModel):
    date: str
    emergency: int
    non_emergency: int
    prank: int
    ghost: int
    unlabelled: int


class DayShareOut(BaseModel):
    date: str
    prank_share: float
    ghost_share: float


class IncidentTypeOut(BaseModel):
    type: str
    calls: int


class DashboardOut(BaseModel):
    days: list[DayCountsOut]
    share: list[DayShareOut]
    heatmap: list[list[int]] = Field(description="7 x 24: weekday (Monday first) x local hour.")
    incident_types: list[IncidentTypeOut]
    advisory: Advisory


class ModelReportOut(BaseModel):
    version: str
    card: dict[str, Any]
    report_md: str | None
    plots: list[str] = Field(description="Plot names; fetch each at /v1/model/report/{name}.png.")


# --- pushed updates --------------------------------------------------------------------


class EventTokenOut(BaseModel):
    token: str = Field(
        description="Opens one event stream: GET /v1/events?token=...; once, before expires_at."
    )
    expires_at: datetime
    expires_in_s: float = Field(description="Seconds the token stays valid.")
