"""The whole loop from an empty state, driven as a user's scripts would drive it.

`prodcat stack up` (what `make up` runs) starts a platform on its own state directory and
ports, with the quick-start switch on (PRODCAT_DATA__CATCH_UP) and the `fast` profile. The
source is the real designations file cut to its first 8,000 rows. From then on the test only
talks to Airflow's REST API v2, the prediction API and MLflow's REST API:
1. the scheduler loads the data and trains the first champion by itself; the API serves it;
2. the shop's file grows by real listings of half the categories only (a category shift); a
   prepare_data run loads them and a drift_detection run finds drift and triggers ml_pipeline
   with reason `drift`; the gate's decision is in the new version's MLflow tags;
3. an ml_pipeline run with the `rollback` parameter moves the champion back; the API follows.
No DAG run may fail on the way. Every StatsD packet the platform sends meanwhile is recorded,
then checked against monitoring/statsd/mapping.yml and the Grafana dashboards.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pandas as pd
import pytest

from prodcat.config import Settings
from tests.conftest import port_overrides

from ..monitoring import (
    DROPPED,
    PROMETHEUS_OWN,
    alert_expressions,
    dashboard_expressions,
    mapped_name,
    series_in,
)
from .platform import (
    Airflow,
    StatsdRecorder,
    make_state_with_slice,
    mlflow_version,
    settings_for,
    wait_for,
)

# Whichever test comes first starts the stack and drives the whole loop (the module fixtures):
# far more than the global 900 s.
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(3600)]
ROOT = Path(__file__).resolve().parents[2]
DAG_IDS = ("prepare_data", "reset_data", "ml_pipeline", "drift_detection", "batch_predict")
SOURCE_ROWS = 8000
LOGS = ROOT / ".state-e2e-logs"  # 2,000 held out for evaluation, 6,000 to train on
ENV = {
    "PRODCAT_DATA__CATCH_UP": "true",
    "PRODCAT_TRAINING__PROFILE": "fast",
    "PRODCAT_TRAINING__MIN_ROWS": "4000",
    # Only drift may start the second training: not the backlog, not the F1 on new rows.
    "PRODCAT_TRAINING__F1_THRESHOLD": "0",
    "PRODCAT_API__RELOAD_INTERVAL_SECONDS": "2",
    "PRODCAT_AIRFLOW__DAGS_PAUSED_AT_CREATION": "false",
}


@pytest.fixture(scope="module")
def platform():
    state, raw, source = make_state_with_slice("prodcat-hands-off-", SOURCE_ROWS,
                                               Settings().data.raw_dir)  # fmt: skip
    env = {**os.environ, **port_overrides(300), **ENV, "PRODCAT_STATE_DIR": str(state),
           "PRODCAT_DATA__RAW_DIR": str(raw)}  # fmt: skip
    settings = settings_for(env)
    recorder = StatsdRecorder(settings.statsd.host, settings.statsd.port)
    up = subprocess.run([sys.executable, "-m", "prodcat.cli", "stack", "up"], env=env, cwd=ROOT,
                        capture_output=True, text=True, timeout=900)  # fmt: skip
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        yield {"settings": settings, "raw": raw, "source": source, "statsd": recorder}
    finally:
        recorder.close()
        subprocess.run([sys.executable, "-m", "prodcat.cli", "stack", "down"], env=env,
                       cwd=ROOT, capture_output=True)  # fmt: skip
        # The services' logs outlive the run (CI prints them when a test failed).
        shutil.rmtree(LOGS, ignore_errors=True)
        shutil.copytree(state / "logs", LOGS, dirs_exist_ok=True)
        shutil.copytree(state / "airflow" / "logs", LOGS / "airflow", dirs_exist_ok=True)
        (LOGS / "statsd-names.txt").write_text(
            "".join(f"{name} {kind}\n" for name, kind in sorted(recorder.kinds.items()))
        )
        shutil.rmtree(state, ignore_errors=True)


def api(settings: Settings, method: str, path: str, **kwargs) -> httpx.Response:
    return httpx.request(method, f"{settings.api.url}{path}", timeout=30, **kwargs)


def served_version(settings: Settings) -> str | None:
    ready = api(settings, "GET", "/ready")
    return ready.json()["model_version"] if ready.status_code == 200 else None


def answered(settings: Settings) -> dict | None:
    """The last of four answers in a row from /predict/ (either worker may take each), or
    None unless all four were 200."""
    body = {"title": "Figurine Pop Star Wars Vador"}
    answers = [api(settings, "POST", "/predict/", json=body) for _ in range(4)]
    return answers[-1].json() if all(a.status_code == 200 for a in answers) else None


def category_shift(source: pd.DataFrame) -> pd.DataFrame:
    """Real listings after the first rows, of half the categories only."""
    later = source.iloc[SOURCE_ROWS:]
    kept = sorted(later["prdtypecode"].unique())[::2]
    return later[later["prdtypecode"].isin(kept)].head(4000)


@pytest.fixture(scope="module")
def loop(platform) -> dict:
    """The whole loop, driven once whichever test asks first; each step checks its outcome."""
    settings, airflow = platform["settings"], Airflow(platform["settings"])
    first = wait_for_first_champion(settings)
    drift_run = feed_shifted_listings(platform, airflow)
    retrain_run = airflow.wait_for_run("ml_pipeline", f"drift__{drift_run}", timeout=900)
    second = mlflow_version(settings, "champion")
    wait_for(lambda: served_version(settings) == second["version"], 120, "the API to follow")
    rollback = airflow.trigger("ml_pipeline", {"rollback": True})
    airflow.wait_for_run("ml_pipeline", rollback)
    wait_for(lambda: served_version(settings) == first, 120, "the API to roll back")
    return {"airflow": airflow, "first": first, "second": second, "drift_run": drift_run,
            "retrain_run": retrain_run, "runs": airflow.runs()}  # fmt: skip


def wait_for_first_champion(settings: Settings) -> str:
    """Hands off: the first champion comes by itself, and the API serves it."""
    first = wait_for(lambda: served_version(settings), 900, "the first champion in the API")
    # /ready answered from one worker; each worker loads the champion on its own poll.
    answer = wait_for(lambda: answered(settings), 60, "every worker to serve it")
    assert answer["model_version"] == first
    assert mlflow_version(settings, "champion")["tags"]["gate.decision"] == "promoted"
    return first


def feed_shifted_listings(platform: dict, airflow: Airflow) -> str:
    """The shop's file grows by a category shift; prepare_data, then drift_detection, run."""
    category_shift(platform["source"]).to_csv(platform["raw"] / "designations.csv", mode="a",
                                              header=False, index=False)  # fmt: skip
    airflow.wait_for_run("prepare_data", airflow.trigger("prepare_data"))
    drift_run = airflow.trigger("drift_detection")
    airflow.wait_for_run("drift_detection", drift_run)
    return drift_run


def test_drift_in_new_listings_triggers_retraining_with_reason_drift(platform, loop):
    states = loop["airflow"].task_states("drift_detection", loop["drift_run"])
    assert states["trigger_ml_pipeline"] == "success"
    windows = {
        w["window_name"]: w for w in api(platform["settings"], "GET", "/drift").json()["windows"]
    }
    assert windows["new_data"]["status"] == "drift" and windows["new_data"]["report_key"]
    assert windows["new_data"]["columns"]["label"]["drifted"]
    assert loop["retrain_run"]["conf"]["reason"] == "drift"
    states = loop["airflow"].task_states("ml_pipeline", loop["retrain_run"]["dag_run_id"])
    assert states["train"] == "success" and states["promote"] == "success"


def test_the_gate_promoted_the_better_challenger_and_the_rollback_undid_it(platform, loop):
    second, first = loop["second"], loop["first"]
    assert second["version"] != first and second["tags"]["gate.decision"] == "promoted"
    assert float(second["tags"]["gate.challenger_f1"]) > float(second["tags"]["gate.champion_f1"])
    settings = platform["settings"]
    assert mlflow_version(settings, "champion")["version"] == first  # after the rollback
    assert mlflow_version(settings, "previous")["version"] == second["version"]
    assert served_version(settings) == first


def test_no_dag_run_failed_on_the_way(loop):
    assert {r["dag_id"] for r in loop["runs"]} == set(DAG_IDS) - {"reset_data"}
    assert [(r["dag_id"], r["dag_run_id"]) for r in loop["runs"] if r["state"] == "failed"] == []


def exposed_series(settings: Settings) -> set[str]:
    """Metric names the prediction API's /metrics really exposes."""
    text = api(settings, "GET", "/metrics").text
    names = {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line[:1].isalpha()}
    return {re.sub(r"_(bucket|sum|count|created)$", "", n) for n in names}


def test_every_statsd_packet_is_mapped_and_every_query_reads_a_real_series(platform, loop):
    names = platform["statsd"].names
    assert {n.split(".")[0] for n in names} == {"airflow", "prodcat"}
    assert sorted(n for n in names if mapped_name(n) is None) == []
    mapped = {mapped_name(n) for n in names} - {DROPPED}
    ids = set(DAG_IDS) | {t for d in loop["airflow"].dag_tasks().values() for t in d}
    with_ids = [m for m in mapped if m.startswith("airflow_")
                and any(re.search(rf"(^|_){re.escape(i)}(_|$)", m) for i in ids)]  # fmt: skip
    assert with_ids == []  # DAG and task ids are labels, never part of a metric's name
    produced = mapped | exposed_series(platform["settings"]) | PROMETHEUS_OWN
    for where, expr in dashboard_expressions() + alert_expressions():
        missing = series_in(expr) - produced
        assert not missing, f"{where}: nothing sent or exposed {sorted(missing)}"
