"""`up`, `down`, `status` and `logs` for the native stack, with supervisord keeping each service
alive (see supervisor.py)."""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from prodcat.config import Settings, get_settings
from prodcat.stack import airflow, api, mlflow, postgres, prometheus, redis, s3, supervisor
from prodcat.stack.process import is_port_open, tail_file, wait_until
from prodcat.stack.service import Service, StackPaths, resolve_paths, service_env

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A service could not be set up or started; the message says which and why."""


def build_services(settings: Settings, paths: StackPaths) -> list[Service]:
    """All services, in start order; Redis and Celery workers only with the Celery executor."""
    env = service_env(settings, paths)
    celery = settings.airflow.executor == "celery"
    return [
        postgres.build_service(settings, paths),
        s3.build_service(settings, paths, env),
        mlflow.build_service(settings, paths, env),
        *([redis.build_service(settings, paths)] if celery else []),
        *airflow.build_services(settings, paths, env),
        *(airflow.build_workers(settings, paths, env) if celery else []),
        prometheus.build_service(settings, paths, env),
        api.build_service(settings, paths, env),
    ]


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    url: str
    pid: int | None
    healthy: bool
    supervisor_state: str = "STOPPED"

    @property
    def state(self) -> str:
        if self.supervisor_state == "FATAL":
            return "failed"  # supervisord gave up after the service's start_retries: see its log
        if self.supervisor_state in ("BACKOFF", "STARTING") and not self.healthy:
            return "restarting"
        if self.pid is None:
            return "stopped"
        return "healthy" if self.healthy else "unhealthy"


class Stack:
    """The native services of one state directory."""

    def __init__(self, settings: Settings | None = None, root: Path | None = None):
        self.settings = settings or get_settings()
        self.paths: StackPaths = resolve_paths(self.settings, root)
        self.services: list[Service] = build_services(self.settings, self.paths)

    def select(self, names: list[str] | None) -> list[Service]:
        if not names:
            return self.services
        unknown = set(names) - {s.name for s in self.services}
        if unknown:
            raise StackError(f"unknown service(s): {', '.join(sorted(unknown))}")
        return [s for s in self.services if s.name in names]

    def running(self, service: Service) -> bool:
        return supervisor.program_info(self.paths, service.name).state in supervisor.RUNNING_STATES

    def check_installed(self, services: list[Service]) -> None:
        """Fail at once, naming every missing component and how to install it."""
        missing = {}
        for service in services:
            for executable, hint in service.requires:
                found = Path(executable).exists() if "/" in executable else shutil.which(executable)
                if not found:
                    missing[executable] = f"{service.name}: {executable} not found; install: {hint}"
        if missing:
            raise StackError("missing components:\n  " + "\n  ".join(missing.values()))

    def up(self, names: list[str] | None = None) -> list[ServiceStatus]:
        """Start every selected service not yet running and wait until all are healthy."""
        services = self.select(names)
        self.check_installed(services)
        supervisor.write_config(self.paths, self.services)
        supervisor.ensure_running(self.paths)
        for service in services:
            started = time.monotonic()
            try:
                self._start(service)
                if service.after_start:
                    service.after_start()
            except StackError:
                raise
            except Exception as error:  # any set-up failure becomes one clear message
                raise StackError(f"{service.name}: {error}") from error
            log.info("%-22s healthy after %.1fs", service.name, time.monotonic() - started)
        return self.status(names)

    def _start(self, service: Service) -> None:
        if self.running(service):
            log.info("%-22s already running", service.name)
        else:
            busy = [p for p in service.ports if is_port_open("127.0.0.1", p)]
            if busy:
                raise StackError(
                    f"{service.name}: port(s) {busy} already in use by a process this stack did "
                    f"not start; stop it or change the port in PRODCAT_* settings"
                )
            if service.prepare:
                log.info("%-22s preparing", service.name)
                service.prepare()
            log.info("%-22s starting", service.name)
            supervisor.start_program(self.paths, service.name)
        self._wait_healthy(service)

    def _wait_healthy(self, service: Service) -> None:
        def failed() -> str | None:
            state = supervisor.program_info(self.paths, service.name).state
            return state if state in ("FATAL", "STOPPED", "EXITED") else None

        if not wait_until(service.health, service.start_timeout, abort=failed):
            reason = "failed" if failed() else f"not healthy after {service.start_timeout:.0f}s"
            logfile = self.paths.logfile(service.name)
            raise StackError(
                f"{service.name} {reason}; last lines of {logfile}:\n{tail_file(logfile)}"
            )

    def down(self, names: list[str] | None = None) -> list[str]:
        """Stop, in reverse start order, the selected services; all of them stops supervisord."""
        stopped = []
        if not supervisor.is_running(self.paths):
            return stopped
        for service in reversed(self.select(names)):
            if self.running(service):
                log.info("%-22s stopping", service.name)
                supervisor.stop_program(self.paths, service.name)
                stopped.append(service.name)
        if not names:
            supervisor.shut_down(self.paths)
        return stopped

    def status(self, names: list[str] | None = None) -> list[ServiceStatus]:
        """Each service's supervisord state, PID and health."""
        statuses = []
        for service in self.select(names):
            info = supervisor.program_info(self.paths, service.name)
            alive = info.state in supervisor.RUNNING_STATES and info.pid is not None
            statuses.append(ServiceStatus(service.name, service.url, info.pid if alive else None,
                                          alive and service.health(), info.state))  # fmt: skip
        return statuses

    def processes(self, service: Service) -> list[psutil.Process]:
        """A running service's process and all its descendants (none when it is stopped)."""
        pid = supervisor.program_info(self.paths, service.name).pid
        try:
            leader = psutil.Process(pid) if pid else None
            return [leader, *leader.children(recursive=True)] if leader else []
        except psutil.Error:
            return []

    def logs(self, name: str | None = None, lines: int = 40) -> str:
        """The last lines of one service's log, or of every log."""
        names = [name] if name else [s.name for s in self.services]
        self.select(names)
        chunks = []
        for service_name in names:
            logfile = self.paths.logfile(service_name)
            chunks.append(f"==> {logfile} <==\n{tail_file(logfile, lines)}")
        return "\n\n".join(chunks)


def format_status(statuses: list[ServiceStatus]) -> str:
    """A fixed-width table of services, URLs, PIDs and health."""
    rows = [("SERVICE", "STATE", "PID", "URL")]
    rows += [(s.name, s.state, str(s.pid or "-"), s.url) for s in statuses]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}" for r in rows
    )


def format_welcome(settings: Settings) -> str:
    """What `up` prints at the end: where everything is and who logs in (never a password)."""
    s = settings
    celery_lines = []
    if s.airflow.executor == "celery":
        celery_lines = [
            f"  Celery       {s.airflow.celery_workers} worker(s) x "
            f"{s.airflow.celery_worker_concurrency} task(s), broker redis://{s.redis.host}:"
            f"{s.redis.port}"
        ]
    return "\n".join(
        [
            "prodcat is up:",
            f"  Airflow UI   {s.airflow.url}  (login: {s.airflow.admin_user}, password: "
            "PRODCAT_AIRFLOW__ADMIN_PASSWORD)",
            f"  MLflow       {s.mlflow.tracking_uri}  (login: {s.mlflow.admin_user}, password: "
            "PRODCAT_MLFLOW__ADMIN_PASSWORD)",
            f"  API          {s.api.url}/docs",
            f"  Prometheus   {s.prometheus.url}",
            f"  S3           {s.s3.endpoint_url}  (key: {s.s3.access_key})",
            f"  PostgreSQL   {s.postgres.host}:{s.postgres.port}  (db {s.postgres.app_db})",
            *celery_lines,
        ]
    )
