"""Compose-only monitoring config, checked offline: statsd mapping, PromQL, dashboards."""

import json
import re
import subprocess

import pytest
import yaml

from prodcat.config import Settings
from prodcat.metrics import PIPELINE_METRICS
from prodcat.stack.prometheus import write_prometheus_config

from ..monitoring import DASHBOARDS, MONITORING, dashboard_expressions, mapped_name, series_in


def promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["promtool", *args], capture_output=True, text=True)


def test_compose_prometheus_config_and_rules_are_valid():
    result = promtool("check", "config", str(MONITORING / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout


def test_native_prometheus_config_is_valid(tmp_path):
    path = tmp_path / "prometheus.yml"
    write_prometheus_config(Settings(_env_file=None), path, MONITORING)
    result = promtool("check", "config", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid():
    result = promtool("check", "rules", str(MONITORING / "prometheus" / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_are_well_formed():
    assert len(DASHBOARDS) >= 2
    uids = set()
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        assert board["uid"] not in uids
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == "prometheus"
            assert panel["targets"], f"{path.name}: {panel['title']} has no query"


def test_every_dashboard_query_is_valid_promql(tmp_path):
    # Grafana's range variables are not PromQL; give them a value, then let promtool parse.
    rules = [
        {"record": f"dashboard:query:{i}", "expr": re.sub(r"\$__\w+", "5m", expr)}
        for i, (_, expr) in enumerate(dashboard_expressions())
    ]
    path = tmp_path / "rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_points_at_prometheus_and_the_dashboards():
    sources = yaml.safe_load(
        (MONITORING / "grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    assert sources["datasources"][0]["uid"] == "prometheus"
    providers = yaml.safe_load(
        (MONITORING / "grafana/provisioning/dashboards/prodcat.yml").read_text()
    )
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def sample_name(metric: str) -> str:
    """A StatsD name as the code sends it: the metric, then a value for each of its labels."""
    _, labels = PIPELINE_METRICS[metric]
    return ".".join(["prodcat", metric, *(f"example_{label}" for label in labels)])


@pytest.mark.parametrize("metric", sorted(PIPELINE_METRICS))
def test_every_pipeline_metric_is_mapped(metric):
    sample = sample_name(metric)
    name = mapped_name(sample)
    assert name and re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name), f"{sample} -> {name}"


def test_dashboards_only_query_series_that_something_produces():
    produced = {mapped_name(sample_name(m)) for m in PIPELINE_METRICS}
    for where, expr in dashboard_expressions():
        for series in series_in(expr):
            if series.startswith("prodcat_api_") or not series.startswith("prodcat_"):
                continue  # the API's own /metrics; Airflow's names are checked end to end
            assert series in produced, f"{where}: {series} is produced by nothing"
