"""Request and response bodies of the HTTP API.

Requests (``...In``) refuse unknown fields, so a misspelt field is an error rather
than silently ignored; responses (``...Out``) are what the service promises to send.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from classifier.manifest import caller_id_problem

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

#: call_id: what a call-taking system's ids look like, and safe inside a URL path.
CALL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$"
CallId = Annotated[str, StringConstraints(pattern=CALL_ID_PATTERN, max_length=128)]
MetaKey = Annotated[str, StringConstraints(min_length=1, max_length=64)]
MetaValue = Annotated[str, StringConstraints(max_length=1024)]
Note = Annotated[str, StringConstraints(max_length=2000)]
Label = Literal["emergency", "non_emergency", "prank", "ghost"]
ReviewAction = Literal["confirm_prank", "confirm_ghost", "clear", "watch"]
Advisory = dict[str, str]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


# --- calls -----------------------------------------------------------------------------


class CallIn(_In):
    """A call arriving at the centre."""

    call_id: CallId = Field(description="Unique id from the call-taking system.")
    caller_id: str = Field(
        max_length=128,
        description="E.164 number, simless:<handset id>, or empty when withheld.",
        examples=["+6281234567890"],
    )
    started_at: AwareDatetime = Field(
        description="When the call started, ISO 8601 with a UTC offset.",
        examples=["2025-06-03T19:04:11+08:00"],
    )
    metadata: dict[MetaKey, MetaValue] = Field(
        default_factory=dict,
        max_length=50,
        description="Free text metadata, kept as is; never model input.",
    )

    @field_validator("caller_id")
    @classmethod
    def _caller_id(cls, value: str) -> str:
        problem = caller_id_problem(value)
        if problem:
            raise ValueError(problem)
        return value


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


class ReviewIn(_In):
    """A supervisor's decision about a number."""

    action: ReviewAction = Field(
        description=(
            "confirm_prank (prank caller), confirm_ghost (ghost-prone handset), clear "
            "(resets the weight of the number's earlier flags), watch (until a date)"
        )
    )
    until: AwareDatetime | None = Field(default=None, description="Required for watch.")
    note: Note | None = None


class ReviewOut(BaseModel):
    model_config = ConfigDict(extra="allow")

    caller_id: str
    action: str
    advisory: Advisory


# --- model, audit ----------------------------------------------------------------------


class ModelOut(BaseModel):
    version: str
    source: str
    loaded_at: datetime
    metrics: dict[str, Any] | None
    card: dict[str, Any]


class ReloadIn(_In):
    registry_ref: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = Field(
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
        description="UI capabilities: dispose, review, queue, audit, model, export, dashboard."
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
