"""Reading the monitoring config as statsd-exporter, Prometheus and Grafana read it."""

from __future__ import annotations

import fnmatch
import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
MAPPING = yaml.safe_load((MONITORING / "statsd" / "mapping.yml").read_text())["mappings"]
ALERTS = yaml.safe_load((MONITORING / "prometheus" / "alerts.yml").read_text())["groups"]
# Series Prometheus makes itself, not any exporter.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def mapped_name(statsd_name: str) -> str | None:
    """The Prometheus name statsd-exporter gives a StatsD name (first glob match wins)."""
    for rule in MAPPING:
        pattern = rule["match"]
        if fnmatch.fnmatchcase(statsd_name, pattern) and statsd_name.count(".") == pattern.count(
            "."
        ):
            groups = re.fullmatch(
                re.escape(pattern).replace(r"\*", r"([^.]+)"), statsd_name
            ).groups()
            name = rule["name"]
            for i, value in enumerate(groups, start=1):
                name = name.replace(f"${{{i}}}", value).replace(f"${i}", value)
            return name
    return None


def dashboard_expressions() -> list[tuple[str, str]]:
    """(dashboard: panel title, PromQL) for every query of every dashboard."""
    found = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                found.append((f"{path.name}: {panel['title']}", target["expr"]))
    return found


def alert_expressions() -> list[tuple[str, str]]:
    """(alert name, PromQL) for every alert rule."""
    return [(f"alert {r['alert']}", r["expr"]) for g in ALERTS for r in g["rules"]]


def series_in(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (histogram suffixes removed)."""
    expr = re.sub(r"\{[^}]*\}", "", expr)  # label matchers hold no metric names
    expr = re.sub(r'"[^"]*"', "", expr)
    names = set(re.findall(r"\b(?:prodcat|airflow)_[a-zA-Z0-9_]+", expr))
    names |= {n for n in PROMETHEUS_OWN if re.search(rf"\b{n}\b", expr)}
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in names}
