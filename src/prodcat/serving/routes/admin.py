"""Operator actions, behind the bearer token PRODCAT_API__ADMIN_TOKEN."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel

from prodcat.orchestration import AirflowUnavailable, RunNotFound, get_dag_run, trigger_dag
from prodcat.serving.deps import AdminDep
from prodcat.serving.schemas import ErrorResponse

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses={401: {"model": ErrorResponse, "description": "Missing or wrong bearer token"}},
)
RETRAIN_DAG = "ml_pipeline"
AIRFLOW_DOWN = {503: {"model": ErrorResponse, "description": "Airflow cannot be reached"}}


class ReloadResponse(BaseModel):
    reloaded: bool
    model_version: str | None


@router.post("/reload", response_model=ReloadResponse)
async def reload_model(request: Request, _admin: AdminDep) -> ReloadResponse:
    """Load the registry's champion now (off the request path of predictions)."""
    reloaded = await request.app.state.reloader.reload_if_changed(force=True)
    current = request.app.state.models.current
    return ReloadResponse(reloaded=reloaded, model_version=current.version if current else None)


class RetrainRun(BaseModel):
    dag_id: str
    dag_run_id: str
    state: str
    conf: dict | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None


@router.post("/retrain", response_model=RetrainRun, status_code=202, responses=AIRFLOW_DOWN)
async def retrain(request: Request, _admin: AdminDep) -> RetrainRun:
    """Start an ml_pipeline run with reason `manual`: it trains even when the champion looks
    healthy, and the gate still decides. Follow it with GET /admin/retrain/{run_id}."""
    run = await ask_airflow(trigger_dag(request.app.state.settings, RETRAIN_DAG,
                                        {"reason": "manual"}))  # fmt: skip
    return as_retrain_run(run)


@router.get(
    "/retrain/{run_id}",
    response_model=RetrainRun,
    responses={**AIRFLOW_DOWN, 404: {"model": ErrorResponse, "description": "No such run"}},
)
async def get_retrain(run_id: str, request: Request, _admin: AdminDep) -> RetrainRun:
    """The state of an ml_pipeline run (queued, running, success, failed)."""
    try:
        run = await ask_airflow(get_dag_run(request.app.state.settings, RETRAIN_DAG, run_id))
    except RunNotFound as error:
        raise HTTPException(404, detail=f"{RETRAIN_DAG} has no run {run_id!r}") from error
    return as_retrain_run(run)


async def ask_airflow(call) -> dict:
    """Await an Airflow call; 503 saying why when Airflow is down or refuses us."""
    try:
        return await call
    except AirflowUnavailable as error:
        raise HTTPException(503, detail=f"{error}: retraining cannot be started or followed "
                                        "until Airflow is back; retry later",
                            headers={"Retry-After": "30"}) from error  # fmt: skip


def as_retrain_run(run: dict) -> RetrainRun:
    return RetrainRun(dag_id=run["dag_id"], dag_run_id=run["dag_run_id"], state=run["state"],
                      conf=run.get("conf"), start_date=run.get("start_date"),
                      end_date=run.get("end_date"))  # fmt: skip
