"""The serving model: what it is, and switching it without dropping requests."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from api.deps import AnyRoleDep, DataScientistDep, RuntimeDep
from api.drift import DriftMonitor
from api.schemas import DriftOut, ModelOut, ReloadIn, ReloadOut, error_responses
from api.service import LoadedModel, ModelReloadError
from api.store import StoreUnavailableError

router = APIRouter(prefix="/v1/model", tags=["model"])


def _describe(loaded: LoadedModel | None) -> dict[str, str] | None:
    if loaded is None:
        return None
    return {"version": loaded.version, "source": loaded.source}


@router.get(
    "",
    response_model=ModelOut,
    summary="The serving model: version, card, metrics and drift of its recent calls",
    responses=error_responses(401, 413, (503, "no usable model, or the database down")),
)
def model_info(principal: AnyRoleDep, runtime: RuntimeDep, request: Request) -> ModelOut:
    """The model, its card, and the drift of the calls it scored lately against its
    training reference (docs/api.md, "Drift")."""
    loaded = runtime.models.get()
    card = loaded.model.card
    metrics = card.get("metrics")
    drift: DriftMonitor = request.app.state.drift
    return ModelOut(
        version=loaded.version,
        source=loaded.source,
        loaded_at=loaded.loaded_at,
        metrics=metrics if isinstance(metrics, dict) else None,
        card=card,
        drift=DriftOut.model_validate(drift.report(runtime.store, loaded)),
    )


@router.post(
    "/reload",
    response_model=ReloadOut,
    summary="Load a model and switch to it; requests in flight finish on the old one",
    responses=error_responses(
        400,
        401,
        403,
        (409, "the new model cannot be loaded; the old one keeps serving"),
        413,
        422,
        (503, "no model could be loaded, or the change cannot be audited"),
    ),
)
async def reload_model(
    principal: DataScientistDep,
    runtime: RuntimeDep,
    body: Annotated[ReloadIn | None, Body()] = None,
) -> ReloadOut:
    """Reload the configured model (e.g. after ``callsift promote``), or switch to a
    registry alias or version. The change is written to the audit log before the new
    model serves; a model that fails to load never replaces the serving one."""
    ref = body.registry_ref if body is not None else None

    def audit(previous: LoadedModel | None, new: LoadedModel) -> None:
        runtime.store.audit(
            actor=principal.actor,
            action="model.reload",
            target_type="model",
            target_id=new.version,
            before=_describe(previous),
            after=_describe(new),
        )

    try:
        previous, new = await run_in_threadpool(
            runtime.models.reload, registry_ref=ref, before_swap=audit
        )
    except ModelReloadError as exc:
        current = runtime.models.current
        try:
            await run_in_threadpool(
                runtime.store.audit,
                actor=principal.actor,
                action="model.reload_failed",
                target_type="model",
                target_id=ref or "configured",
                before=_describe(current),
                after={"error": str(exc)},
            )
        except StoreUnavailableError:
            pass  # the refusal itself changed nothing
        raise HTTPException(status_code=409 if current else 503, detail=str(exc)) from exc
    except StoreUnavailableError as exc:
        raise HTTPException(
            status_code=503,
            detail="database unavailable: the model change cannot be audited, so it was not made",
        ) from exc
    runtime.metrics.set_model(new.version)
    return ReloadOut(
        previous_version=previous.version if previous else None,
        version=new.version,
        source=new.source,
        loaded_at=new.loaded_at,
    )
