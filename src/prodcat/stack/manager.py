"""`up`, `down`, `status` and `logs` for the native stack."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from prodcat.config import Settings, get_settings
from prodcat.stack.process import (
    ProcessRecord,
    is_port_open,
    spawn_process,
    stop_process,
    tail_file,
    wait_until,
)
from prodcat.stack.services import Service, StackPaths, build_services, resolve_paths

log = logging.getLogger(__name__)


class StackError(RuntimeError):
    """A service could not be set up or started; the message says which and why."""


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    url: str
    pid: int | None
    healthy: bool

    @property
    def state(self) -> str:
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

    def record(self, service: Service) -> ProcessRecord | None:
        return ProcessRecord.load(self.paths.pidfile(service.name))

    def running(self, service: Service) -> bool:
        record = self.record(service)
        return record is not None and record.process() is not None

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
        for directory in (self.paths.run, self.paths.logs):
            directory.mkdir(parents=True, exist_ok=True)
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
            record = spawn_process(
                service.command, self.paths.logfile(service.name), service.env or dict(os.environ),
                self.paths.root, user=service.user,
            )  # fmt: skip
            record.save(self.paths.pidfile(service.name))
        self._wait_healthy(service)

    def _wait_healthy(self, service: Service) -> None:
        def died() -> str | None:
            return None if self.running(service) else "exited"

        if not wait_until(service.health, service.start_timeout, abort=died):
            reason = "exited" if died() else f"not healthy after {service.start_timeout:.0f}s"
            logfile = self.paths.logfile(service.name)
            raise StackError(
                f"{service.name} {reason}; last lines of {logfile}:\n{tail_file(logfile)}"
            )

    def down(self, names: list[str] | None = None) -> list[str]:
        """Stop, in reverse start order, exactly the processes this stack started."""
        stopped = []
        for service in reversed(self.select(names)):
            pidfile = self.paths.pidfile(service.name)
            record = ProcessRecord.load(pidfile)
            if record is None:
                continue
            if record.process() is not None:
                log.info("%-22s stopping pid %d", service.name, record.pid)
                if not stop_process(record, service.stop_signal):
                    raise StackError(f"{service.name}: pid {record.pid} did not stop")
                stopped.append(service.name)
            pidfile.unlink(missing_ok=True)
        return stopped

    def status(self, names: list[str] | None = None) -> list[ServiceStatus]:
        """Each service's PID (if running) and health."""
        statuses = []
        for service in self.select(names):
            record = self.record(service)
            alive = record is not None and record.process() is not None
            statuses.append(
                ServiceStatus(
                    name=service.name,
                    url=service.url,
                    pid=record.pid if alive and record else None,
                    healthy=alive and service.health(),
                )
            )
        return statuses

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
    """What `up` prints at the end: where everything is and how to log in."""
    s = settings
    return "\n".join(
        [
            "prodcat is up:",
            f"  Airflow UI   {s.airflow.url}  (login: {s.airflow.admin_user} / "
            f"{s.airflow.admin_password.get_secret_value()})",
            f"  MLflow       {s.mlflow.tracking_uri}",
            f"  API          {s.api.url}/docs",
            f"  Prometheus   {s.prometheus.url}",
            f"  S3           {s.s3.endpoint_url}  (key: {s.s3.access_key})",
            f"  PostgreSQL   {s.postgres.host}:{s.postgres.port}  (db {s.postgres.app_db})",
        ]
    )
