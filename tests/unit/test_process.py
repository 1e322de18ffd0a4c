"""supervisord keeps the native services alive: the config it gets, and what it does with a
service that dies (real supervisord processes, a throwaway state directory, no real service)."""

import json
import os
import signal
import sys

import psutil
import pytest

from prodcat.config import Settings
from prodcat.stack import supervisor
from prodcat.stack.manager import ServiceStatus, Stack
from prodcat.stack.process import is_port_open, tail_file, wait_until
from prodcat.stack.service import Service, StackPaths


def test_no_secret_is_on_a_command_line_or_in_the_config(tmp_path):
    settings = Settings(state_dir=tmp_path, postgres={"mlflow_password": "s3cret%pw"},
                        airflow={"jwt_secret": "jwt-s3cret"})  # fmt: skip
    stack = Stack(settings, tmp_path)
    supervisor.write_config(stack.paths, stack.services)
    config = stack.paths.supervisor_config.read_text()
    assert "s3cret" not in config
    assert all("s3cret" not in " ".join(s.command) for s in stack.services)
    for service in stack.services:
        if service.env:
            envfile = stack.paths.envfile(service.name)
            assert envfile.stat().st_mode & 0o777 == 0o600
    mlflow_env = json.loads(stack.paths.envfile("mlflow").read_text())
    assert "s3cret%25pw@" in mlflow_env["MLFLOW_BACKEND_STORE_URI"]  # URL-encoded
    assert "jwt-s3cret" in stack.paths.envfile("airflow-scheduler").read_text()
    assert stack.paths.supervisor_config.stat().st_mode & 0o777 == 0o600
    assert stack.paths.run.stat().st_mode & 0o777 == 0o700


def crasher(paths: StackPaths, retries: int) -> Service:
    # Exits at once: far less than start_seconds, so every try is a failed start.
    return Service(name="crasher", url="-", command=[sys.executable, "-c", "raise SystemExit(3)"],
                   health=lambda: False, env=dict(os.environ), start_seconds=20,
                   start_retries=retries)  # fmt: skip


def sleeper() -> Service:
    return Service(name="sleeper", url="-", command=["sleep", "600"], health=lambda: True,
                   env={"PATH": os.environ["PATH"]}, stop_signal=signal.SIGTERM)  # fmt: skip


@pytest.fixture
def paths(tmp_path):
    paths = StackPaths(root=tmp_path, state=tmp_path / "state")
    yield paths
    supervisor.shut_down(paths)


def status_of(paths: StackPaths, service: Service) -> str:
    info = supervisor.program_info(paths, service.name)
    alive = info.state in supervisor.RUNNING_STATES and info.pid is not None
    return ServiceStatus(service.name, "-", info.pid if alive else None, False, info.state).state


def test_a_killed_service_is_started_again(paths):
    service = sleeper()
    supervisor.write_config(paths, [service])
    supervisor.ensure_running(paths)
    supervisor.start_program(paths, service.name)

    def running_pid() -> int | None:
        info = supervisor.program_info(paths, "sleeper")
        return info.pid if info.state == "RUNNING" else None

    first_pid = wait_until(running_pid, timeout=30) and running_pid()
    assert first_pid and psutil.Process(first_pid).cmdline()[:2] == ["sleep", "600"]
    os.kill(first_pid, signal.SIGKILL)
    assert wait_until(lambda: running_pid() not in (None, first_pid), timeout=60)
    assert psutil.Process(running_pid()).cmdline()[:2] == ["sleep", "600"]
    supervisor.stop_program(paths, "sleeper")
    assert supervisor.program_info(paths, "sleeper").state == "STOPPED"


def test_status_shows_a_service_that_keeps_failing_as_restarting_then_failed(paths):
    keeps, gives_up = crasher(paths, 50), crasher(paths, 1)
    gives_up.name = "quitter"
    supervisor.write_config(paths, [keeps, gives_up])
    supervisor.ensure_running(paths)
    supervisor.start_program(paths, "crasher")
    supervisor.start_program(paths, "quitter")
    assert wait_until(lambda: status_of(paths, gives_up) == "failed", timeout=60)
    assert "crasher" in tail_file(paths.logs / "supervisord.log", 200)
    assert wait_until(lambda: status_of(paths, keeps) == "restarting", timeout=30)


def test_supervisord_is_gone_after_shut_down(paths):
    supervisor.write_config(paths, [sleeper()])
    supervisor.ensure_running(paths)
    pid = int((paths.run / "supervisord.pid").read_text())
    supervisor.shut_down(paths)
    assert not supervisor.is_running(paths)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_port_probe_and_wait_until_give_up():
    assert not is_port_open("127.0.0.1", 1)
    polls = []
    # It returns False rather than waiting on (pytest's timeout would fail a hang).
    assert wait_until(lambda: polls.append(1) or False, timeout=0.3, interval=0.05) is False
    assert polls  # it did poll


def test_tail_file_returns_last_lines(tmp_path):
    log = tmp_path / "x.log"
    log.write_text("\n".join(str(i) for i in range(100)))
    assert tail_file(log, 3) == "97\n98\n99"
    assert tail_file(tmp_path / "none.log") == ""
