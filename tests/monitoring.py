"""Reading the monitoring config as statsd-exporter, Prometheus and Grafana read it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MONITORING = ROOT / "monitoring"
DASHBOARDS = sorted((MONITORING / "grafana" / "dashboards").glob("*.json"))
MAPPING = yaml.safe_load((MONITORING / "statsd" / "mapping.yml").read_text())["mappings"]
ALERTS = yaml.safe_load((MONITORING / "prometheus" / "alerts.yml").read_text())["groups"]
DROPPED = "(dropped)"
# Series Prometheus makes itself, not any exporter.
PROMETHEUS_OWN = {"up", "scrape_duration_seconds", "scrape_samples_scraped"}


def mapped_name(statsd_name: str) -> str | None:
    """The Prometheus name statsd-exporter gives a StatsD name: the first rule that matches
    (a glob's * stands for one dot-free part), DROPPED for a drop rule, None when none does."""
    for rule in MAPPING:
        if rule.get("match_type") == "regex":
            found = re.fullmatch(rule["match"], statsd_name)
        else:
            glob = re.escape(rule["match"]).replace(r"\*", r"([^.]+)")
            found = re.fullmatch(glob, statsd_name)
        if found is None:
            continue
        if rule.get("action") == "drop":
            return DROPPED
        name = rule["name"]
        for i, value in enumerate(found.groups(), start=1):
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
