"""Liveness, readiness and Prometheus metrics (no authentication)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.deps import RuntimeDep

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="Readiness: database writable within CALLSIFT_DB_TIMEOUT_S and a model loaded",
    responses={503: {"description": "not ready, with the reasons"}},
)
def readyz(runtime: RuntimeDep) -> JSONResponse:
    """200 when a write to the main tables could start now and a model serves; else 503
    with ``database`` (``unreachable``, ``timeout``: a table locked or a statement hung,
    ``error``) and ``detail``. Answers within ``CALLSIFT_DB_TIMEOUT_S`` and a little."""
    reasons: list[str] = []
    database, problem = runtime.store.readiness()
    if problem is not None:
        reasons.append(problem)
    current = runtime.models.current
    model: dict[str, Any] = (
        {"status": "ok", "version": current.version}
        if current is not None
        else {"status": "unavailable", "error": runtime.models.error}
    )
    if current is None:
        reasons.append(f"model unavailable: {runtime.models.error}")
    body: dict[str, Any] = {
        "status": "ready" if not reasons else "not ready",
        "database": database,
        "model": model,
    }
    if reasons:
        body["detail"] = "; ".join(reasons)
    return JSONResponse(body, status_code=200 if not reasons else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(runtime: RuntimeDep) -> Response:
    return Response(generate_latest(runtime.metrics.registry), media_type=CONTENT_TYPE_LATEST)
