"""What the web console needs beyond the call lifecycle: who am I, the live call list,
recordings, the supervisors' dashboard and the model's evaluation report."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import AfterValidator

from api.deps import (
    AnyRoleDep,
    CallReaderDep,
    RuntimeDep,
    SettingsDep,
    StoreDep,
    SupervisorDep,
    require_roles,
)
from api.routers.calls import CallIdPath, call_out
from api.schemas import (
    NUMBER_PATTERN,
    SERVICE_ADVISORY,
    DashboardOut,
    DateTime,
    MeOut,
    ModelReportOut,
    RecentCallOut,
    RecentCallsOut,
    check_number,
    error_responses,
)
from api.service import LoadedModel, Principal
from classifier.artifact import DEFAULT_MODEL_DIR
from classifier.audio import audio_format, pcm16_wav
from classifier.callrow import CALLER_ID_MAX
from classifier.errors import CallsiftError

router = APIRouter(tags=["console"])

DashboardDep = Annotated[Principal, Depends(require_roles("supervisor", "admin", "data_scientist"))]

#: UI capability -> roles that have it (the server checks each action again).
CAPABILITIES: dict[str, frozenset[str]] = {
    "dispose": frozenset({"call_taker", "supervisor", "admin"}),
    "review": frozenset({"supervisor", "admin"}),
    "queue": frozenset({"supervisor", "admin"}),
    "audit": frozenset({"admin"}),
    "model": frozenset({"call_taker", "supervisor", "data_scientist", "admin"}),
    "export": frozenset({"data_scientist", "admin"}),
    "dashboard": frozenset({"supervisor", "admin", "data_scientist"}),
    "report": frozenset({"supervisor", "admin"}),
}
AUDIO_MEDIA_TYPES: dict[str, str] = {
    "wav": "audio/wav",
    "flac": "audio/flac",
    "ogg": "audio/ogg",
    "oga": "audio/ogg",
    "mp3": "audio/mpeg",
}
#: Encodings browsers play as stored (Chromium, Firefox, Safari): the rest (GSM 6.10,
#: ADPCM, AU, AIFF, the 64-bit WAVs) are played from a PCM 16 WAV made on request.
PLAYABLE: frozenset[tuple[str, str]] = frozenset(
    [
        (f, s)
        for f in ("WAV", "WAVEX")
        for s in ("PCM_16", "PCM_24", "PCM_U8", "FLOAT", "ULAW", "ALAW")
    ]
    + [("FLAC", s) for s in ("PCM_S8", "PCM_16", "PCM_24")]
    + [("OGG", "VORBIS"), ("OGG", "OPUS"), ("MP3", "MPEG_LAYER_III")]
)
_REPORT_PLOT = re.compile(r"^[a-z_]+$")
_PNG = "image/png"
# Plots are rebuilt per request; a short private cache spares a console that re-renders.
_PLOT_HEADERS = {"Cache-Control": "private, max-age=30"}


@router.get(
    "/v1/me",
    response_model=MeOut,
    summary="The key's holder and what they may do",
    responses=error_responses(401, 413, 503),
)
async def me(principal: AnyRoleDep, settings: SettingsDep) -> MeOut:
    return MeOut(
        key_id=principal.key_id,
        role=principal.role,
        name=principal.name,
        roles_allowed={cap: principal.role in roles for cap, roles in CAPABILITIES.items()},
        timezone=settings.timezone or "UTC",
    )


@router.get(
    "/v1/calls",
    response_model=RecentCallsOut,
    summary="Calls registered most recently first, with each number's recent record",
    responses=error_responses(401, 403, 413, 422, 503),
)
def recent_calls(
    principal: CallReaderDep,
    store: StoreDep,
    since: Annotated[
        DateTime | None,
        Query(description="Only calls registered after this time (RFC 3339 with offset)."),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    caller_id: Annotated[
        str | None,
        AfterValidator(lambda v: None if v is None else check_number(v)),
        Query(
            max_length=CALLER_ID_MAX,
            description="Only this number's calls (E.164 or simless:<id>); calls are "
            "readable by call-takers anyway, the number's reviews and recordings are not.",
            json_schema_extra={"pattern": NUMBER_PATTERN},
        ),
    ] = None,
) -> RecentCallsOut:
    """For polling: pass the previous answer's ``latest`` as ``since``. With
    ``caller_id``: that number's last calls, the console's number panel."""
    if since is not None and (since.tzinfo is None or since.utcoffset() is None):
        raise HTTPException(
            status_code=422,
            detail=f"since {since.isoformat()} has no UTC offset; expected e.g. "
            "2025-06-03T19:04:11+08:00",
        )
    rows = store.recent_calls(since=since, limit=limit, now=datetime.now(UTC), caller_id=caller_id)
    calls = [
        RecentCallOut(
            **call_out(row["call"]).model_dump(),
            created_at=row["created_at"],
            caller_recent=row["caller_recent"],
        )
        for row in rows
    ]
    latest = rows[0]["created_at"] if rows else since
    return RecentCallsOut(calls=calls, latest=latest, advisory=SERVICE_ADVISORY)


@router.get(
    "/v1/calls/{call_id}/recording",
    summary="A call's stored recording, for playback",
    response_class=FileResponse,
    responses={
        200: {
            "description": "The recording as stored when browsers play its encoding, "
            "else (GSM 6.10, ADPCM, AU, AIFF, RF64, W64) a PCM 16 WAV of it at its own rate "
            "and channels; `original=true` gives the stored bytes whatever they are.",
            "content": {"audio/wav": {}, "audio/flac": {}, "audio/ogg": {}, "audio/mpeg": {}},
        },
        **error_responses(401, 403, (404, "unknown call, or no recording stored"), 413, 422, 503),
    },
)
def recording(
    call_id: CallIdPath,
    principal: SupervisorDep,
    store: StoreDep,
    original: Annotated[
        bool, Query(description="the stored file as uploaded, not re-encoded for playback")
    ] = False,
) -> Response:
    record = store.get_call(call_id)
    missing = HTTPException(status_code=404, detail=f"call {call_id} has no stored recording")
    if not record.audio_file:
        raise missing
    path = Path(record.audio_file)
    # Only files inside the recordings folder are ever served.
    if not path.resolve().is_relative_to(store.data_dir / "recordings") or not path.is_file():
        raise missing
    ext = path.suffix.lstrip(".").lower()
    if not original:
        try:
            # Read as an open file: the decoder's messages then never name the server's path.
            with path.open("rb") as fh:
                fmt, subtype = audio_format(fh)
                fh.seek(0)
                wav = None if (fmt, subtype) in PLAYABLE else pcm16_wav(fh, max_samples=None)
        except CallsiftError as exc:
            # Stored recordings were decoded when uploaded; one that no longer decodes is
            # still there for `original=true`.
            raise HTTPException(
                status_code=422,
                detail=f"the stored recording of call {call_id} cannot be re-encoded for "
                f"playback ({exc}); fetch it with original=true",
            ) from None
        if wav is not None:
            return Response(
                wav,
                media_type="audio/wav",
                headers={
                    "Content-Disposition": f'inline; filename="{call_id}.wav"',
                    "X-Callsift-Transcoded-From": f"{fmt} {subtype}",
                },
            )
    return FileResponse(
        path,
        media_type=AUDIO_MEDIA_TYPES.get(ext, "application/octet-stream"),
        filename=f"{call_id}.{ext}",
        content_disposition_type="inline",
    )


def _dashboard(runtime: RuntimeDep) -> dict[str, object]:
    return runtime.store.dashboard_counts(now=datetime.now(UTC), tz=runtime.timezone)


@router.get(
    "/v1/dashboard",
    response_model=DashboardOut,
    summary="Calls per day by outcome, prank and ghost share, weekday x hour, incident types",
    responses=error_responses(401, 403, 413, 503),
)
def dashboard(principal: DashboardDep, runtime: RuntimeDep) -> DashboardOut:
    """Over the calls started in the last 30 days; dates and hours in the centre's time
    zone (``CALLSIFT_TIMEZONE``), else in each call's own offset."""
    return DashboardOut.model_validate({**_dashboard(runtime), "advisory": SERVICE_ADVISORY})


@router.get(
    "/v1/dashboard/plots/{name}.png",
    summary="One dashboard plot as PNG",
    response_class=Response,
    responses={
        200: {"content": {_PNG: {}}},
        **error_responses(401, 403, (404, "unknown plot"), 413, 503),
    },
)
async def dashboard_plot(name: str, principal: DashboardDep, runtime: RuntimeDep) -> Response:
    """``name``: calls_per_day, share_over_time, heatmap or incident_types."""
    from api.dashboard import PLOT_NAMES, render_plot

    if name not in PLOT_NAMES:
        raise HTTPException(
            status_code=404,
            detail=f"unknown plot {name!r}; expected one of {', '.join(PLOT_NAMES)}",
        )
    data = await run_in_threadpool(_dashboard, runtime)
    png = await run_in_threadpool(render_plot, name, data)
    return Response(png, media_type=_PNG, headers=_PLOT_HEADERS)


def _model_folder(loaded: LoadedModel) -> Path | None:
    """The serving model's folder; None for a registry model (downloaded, then deleted)."""
    if loaded.source == "default":
        return DEFAULT_MODEL_DIR
    if loaded.source.startswith("dir:"):
        return Path(loaded.source.removeprefix("dir:"))
    return None


def _report_plots(folder: Path | None) -> dict[str, Path]:
    report = folder / "report" if folder is not None else None
    if report is None or not report.is_dir():
        return {}
    return {
        p.stem: p
        for p in sorted(report.glob("*.png"))
        if _REPORT_PLOT.match(p.stem) and p.is_file()
    }


@router.get(
    "/v1/model/report",
    response_model=ModelReportOut,
    summary="The serving model's card, evaluation report and plot names",
    responses=error_responses(401, 413, (503, "no usable model, or the database down")),
)
def model_report(principal: AnyRoleDep, runtime: RuntimeDep) -> ModelReportOut:
    loaded = runtime.models.get()
    folder = _model_folder(loaded)
    report_md = folder / "report" / "report.md" if folder is not None else None
    return ModelReportOut(
        version=loaded.version,
        card=loaded.model.card,
        report_md=report_md.read_text(encoding="utf-8")
        if report_md is not None and report_md.is_file()
        else None,
        plots=list(_report_plots(folder)),
    )


@router.get(
    "/v1/model/report/{name}.png",
    summary="One plot of the serving model's evaluation report",
    response_class=FileResponse,
    responses={
        200: {"content": {_PNG: {}}},
        **error_responses(
            401, (404, "no such plot"), 413, (503, "no usable model, or the database down")
        ),
    },
)
def model_report_plot(name: str, principal: AnyRoleDep, runtime: RuntimeDep) -> FileResponse:
    # Only names listed by /v1/model/report are served: no path ever comes from the URL.
    plots = _report_plots(_model_folder(runtime.models.get())) if _REPORT_PLOT.match(name) else {}
    path = plots.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"the model report has no plot {name!r}")
    return FileResponse(path, media_type=_PNG)
