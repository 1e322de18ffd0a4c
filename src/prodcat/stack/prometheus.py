"""Prometheus for the native stack: scrapes itself and the prediction API, with our alert rules."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from prodcat.config import Settings
from prodcat.stack.service import Service, StackPaths, http_ok


def build_service(settings: Settings, paths: StackPaths, env: dict[str, str]) -> Service:
    cfg = settings.prometheus
    config_file = paths.state / "prometheus" / "prometheus.yml"

    def prepare() -> None:
        write_prometheus_config(settings, config_file, paths.root / "monitoring")
        check = subprocess.run(
            ["promtool", "check", "config", str(config_file)], capture_output=True, text=True
        )
        if check.returncode != 0:
            raise RuntimeError(f"invalid Prometheus config:\n{check.stdout}{check.stderr}")

    command = [
        "prometheus",
        f"--config.file={config_file}",
        f"--storage.tsdb.path={paths.state / 'prometheus' / 'data'}",
        f"--web.listen-address={cfg.host}:{cfg.port}",
        "--storage.tsdb.retention.time=15d",
    ]
    return Service(
        name="prometheus",
        url=cfg.url,
        command=command,
        health=lambda: http_ok(f"{cfg.url}/-/ready"),
        requires=[
            ("prometheus", "apt-get install prometheus"),
            ("promtool", "apt-get install prometheus"),
        ],
        env=env,
        ports=[cfg.port],
        prepare=prepare,
    )


def write_prometheus_config(settings: Settings, path: Path, monitoring_dir: Path) -> None:
    """Native Prometheus config: scrape itself and the prediction API, with our alert rules."""
    rules = monitoring_dir / "prometheus" / "alerts.yml"
    config = {
        "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
        "rule_files": [str(rules)] if rules.exists() else [],
        "scrape_configs": [
            {
                "job_name": "prometheus",
                "static_configs": [
                    {"targets": [f"{settings.prometheus.host}:{settings.prometheus.port}"]}
                ],
            },
            {
                "job_name": "prodcat-api",
                "metrics_path": "/metrics",
                "static_configs": [{"targets": [f"{settings.api.host}:{settings.api.port}"]}],
            },
        ],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2))  # JSON is valid YAML
