"""The native stack with the Celery executor, before anything runs: which services it has, in
what order, what Airflow is told, and the Redis config (started once, for real, on a free port)."""

import json
import socket
import subprocess

import pytest

from prodcat.config import Settings
from prodcat.stack import supervisor
from prodcat.stack.airflow import worker_answers, worker_hostname
from prodcat.stack.manager import Stack
from prodcat.stack.process import wait_until
from prodcat.stack.redis import redis_answers, write_redis_config


def celery_stack(tmp_path, workers: int = 2, **groups) -> Stack:
    airflow = {"executor": "celery", "celery_workers": workers, **groups.pop("airflow", {})}
    return Stack(Settings(state_dir=tmp_path, airflow=airflow, **groups), tmp_path)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_the_local_executor_has_neither_redis_nor_workers(tmp_path):
    stack = Stack(Settings(state_dir=tmp_path, airflow={"executor": "local"}), tmp_path)
    names = [s.name for s in stack.services]
    assert "redis" not in names and not any(n.startswith("airflow-worker") for n in names)
    scheduler = stack.select(["airflow-scheduler"])[0]
    assert scheduler.env["AIRFLOW__CORE__EXECUTOR"] == "LocalExecutor"
    assert not any(key.startswith("AIRFLOW__CELERY") for key in scheduler.env)


def test_redis_starts_before_airflow_and_each_worker_after_the_triggerer(tmp_path):
    names = [s.name for s in celery_stack(tmp_path, workers=3).services]
    assert names.index("mlflow") < names.index("redis") < names.index("airflow-api-server")
    triggerer = names.index("airflow-triggerer")
    assert names[triggerer + 1 : triggerer + 4] == [f"airflow-worker-{i}" for i in (1, 2, 3)]


def test_each_worker_has_its_own_celery_hostname_and_reads_the_shared_logs(tmp_path):
    workers = celery_stack(tmp_path).select(["airflow-worker-1", "airflow-worker-2"])
    hostnames = [w.command[w.command.index("-H") + 1] for w in workers]
    assert hostnames == [worker_hostname(1), worker_hostname(2)]
    assert len(set(hostnames)) == 2
    for worker in workers:
        assert worker.command[1:3] == ["celery", "worker"]
        assert "--skip-serve-logs" in worker.command  # on one host the api-server reads the file


def test_airflow_is_told_the_broker_results_database_and_concurrency(tmp_path):
    stack = celery_stack(tmp_path, airflow={"celery_worker_concurrency": 3},
                         redis={"password": "p@ss/w:rd", "port": 6390})  # fmt: skip
    for name in ("airflow-scheduler", "airflow-api-server", "airflow-worker-2"):
        env = stack.select([name])[0].env
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://:p%40ss%2Fw%3Ard@127.0.0.1:6390/0"
        assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == "db+" + stack.settings.postgres.url(
            "airflow"
        )
        assert env["AIRFLOW__CELERY__WORKER_CONCURRENCY"] == "3"


def test_the_redis_password_is_on_no_command_line_and_in_no_shared_file(tmp_path):
    stack = celery_stack(tmp_path, redis={"password": "r3dis-s3cret"})
    supervisor.write_config(stack.paths, stack.services)
    stack.select(["redis"])[0].prepare()
    assert "r3dis-s3cret" not in stack.paths.supervisor_config.read_text()
    assert all("r3dis-s3cret" not in " ".join(s.command) for s in stack.services)
    redis_conf = stack.paths.run / "redis.conf"
    assert redis_conf.stat().st_mode & 0o777 == 0o600
    assert 'requirepass "r3dis-s3cret"' in redis_conf.read_text()
    worker_env = json.loads(stack.paths.envfile("airflow-worker-1").read_text())
    assert "r3dis-s3cret" in worker_env["AIRFLOW__CELERY__BROKER_URL"]


def test_redis_started_with_its_config_serves_only_the_password(tmp_path):
    import redis

    password = 'a "quoted" \\ pass word'
    settings = Settings(redis={"port": free_port(), "password": password})
    config = tmp_path / "redis.conf"
    write_redis_config(settings, config, tmp_path / "data")
    server = subprocess.Popen(["redis-server", str(config)], stdout=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: redis_answers(settings), timeout=20)
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=settings.redis.port).ping()
        client = redis.Redis(port=settings.redis.port, password=password)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("save") == {"save": ""}
        client.close()
        assert (tmp_path / "data" / "appendonlydir").is_dir()
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert not redis_answers(settings)


def test_health_checks_fail_when_nothing_listens():
    settings = Settings(redis={"port": free_port()})
    assert not redis_answers(settings)
    assert not worker_answers(settings, f"celery@{worker_hostname(1)}")
