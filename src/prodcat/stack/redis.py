"""Redis for the native stack: the Celery executor's broker (only with airflow.executor=celery)."""

from __future__ import annotations

from pathlib import Path

import redis

from prodcat.config import Settings
from prodcat.stack.service import HTTP_TIMEOUT, Service, StackPaths
from prodcat.stack.supervisor import write_private


def build_service(settings: Settings, paths: StackPaths) -> Service:
    cfg = settings.redis
    # The password is in this file, so it lives in the 0700 run directory, never on a command line.
    config_file = paths.run / "redis.conf"
    return Service(
        name="redis",
        url=f"redis://{cfg.host}:{cfg.port}/{cfg.db}",
        command=["redis-server", str(config_file)],
        health=lambda: redis_answers(settings),
        requires=[("redis-server", "apt-get install redis-server")],
        ports=[cfg.port],
        prepare=lambda: write_redis_config(settings, config_file, paths.state / "redis"),
    )


def write_redis_config(settings: Settings, path: Path, data_dir: Path) -> None:
    """redis-server's config: loopback only, a password, and an append-only file as its store."""
    cfg = settings.redis
    data_dir.mkdir(parents=True, exist_ok=True)
    lines = [
        f"bind {cfg.host}",
        f"port {cfg.port}",
        "protected-mode yes",
        f"requirepass {quoted(cfg.password.get_secret_value())}",
        f"dir {quoted(str(data_dir))}",
        # Queued tasks survive a restart through the AOF; RDB snapshots would only add forks.
        'save ""',
        "appendonly yes",
        "appendfsync everysec",
        'logfile ""',  # stdout, which supervisord writes to the service's log
        "daemonize no",
    ]
    write_private(path, "\n".join(lines) + "\n")


def quoted(value: str) -> str:
    """A redis.conf string argument (double quotes, backslash escapes)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def redis_answers(settings: Settings) -> bool:
    """True when Redis answers PING to a client that signs in with the password."""
    cfg = settings.redis
    client = redis.Redis(
        host=cfg.host, port=cfg.port, db=cfg.db, password=cfg.password.get_secret_value(),
        socket_timeout=HTTP_TIMEOUT, socket_connect_timeout=HTTP_TIMEOUT,
    )  # fmt: skip
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()
