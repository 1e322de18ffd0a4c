"""The native services run under supervisord (the `supervisor` package), as compose's
`restart: unless-stopped` runs containers: a service that dies is started again, with a
back-off that grows while it keeps failing, and `make status` says so.

There is one supervisord per state directory, on a unix socket in its 0700 run directory.
Each program's environment, secrets included, is read from a 0600 file by
`prodcat.launch`, so no secret is on a command line, in a log or in the config file.
"""

from __future__ import annotations

import json
import logging
import shlex
import signal
import subprocess
import sys
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

from prodcat.stack.process import wait_until
from prodcat.stack.service import Service, StackPaths, venv_bin

log = logging.getLogger(__name__)
RUNNING_STATES = {"STARTING", "RUNNING", "BACKOFF", "STOPPING"}

HEADER = """\
[unix_http_server]
file={socket}
chmod=0700

[supervisord]
logfile={logs}/supervisord.log
logfile_maxbytes=10MB
logfile_backups=2
pidfile={run}/supervisord.pid
childlogdir={logs}
directory={root}
identifier=prodcat

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]
serverurl=unix://{socket}
"""

PROGRAM = """
[program:{name}]
command={command}
directory={root}
autostart=false
autorestart=true
startsecs={startsecs}
startretries={retries}
stopsignal={stopsignal}
stopwaitsecs={stopwait}
stopasgroup=true
killasgroup=true
redirect_stderr=true
stdout_logfile={log}
stdout_logfile_maxbytes=20MB
stdout_logfile_backups=2
"""


@dataclass(frozen=True)
class ProgramInfo:
    name: str
    state: str  # supervisord's: STOPPED, STARTING, RUNNING, BACKOFF, STOPPING, EXITED, FATAL
    pid: int | None
    description: str


def write_config(paths: StackPaths, services: list[Service]) -> None:
    """The supervisord config and each service's environment file (both 0600)."""
    paths.run.mkdir(parents=True, exist_ok=True)
    paths.run.chmod(0o700)
    paths.logs.mkdir(parents=True, exist_ok=True)
    text = HEADER.format(socket=paths.supervisor_socket, logs=paths.logs, run=paths.run,
                         root=paths.root)  # fmt: skip
    for service in services:
        text += program_section(paths, service)
        if service.env:
            write_private(paths.envfile(service.name), json.dumps(service.env))
    write_private(paths.supervisor_config, text)


def program_section(paths: StackPaths, service: Service) -> str:
    """One [program:x] section; the command goes through the launcher when it has an env."""
    command = service.command
    if service.env:
        command = [sys.executable, "-m", "prodcat.launch",
                   str(paths.envfile(service.name)), *command]  # fmt: skip
    section = PROGRAM.format(
        name=service.name,
        command=" ".join(shlex.quote(part) for part in command).replace("%", "%%"),
        root=paths.root, startsecs=service.start_seconds, retries=service.start_retries,
        stopsignal=signal.Signals(service.stop_signal).name.removeprefix("SIG"),
        stopwait=int(service.stop_timeout), log=paths.logfile(service.name),
    )  # fmt: skip
    return section + (f"user={service.user}\n" if service.user else "")


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, without a moment where others could."""
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(text)


def connect(paths: StackPaths) -> xmlrpc.client.ServerProxy:
    """supervisord's XML-RPC interface, over its unix socket."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{paths.supervisor_socket}")
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


def is_running(paths: StackPaths) -> bool:
    """Whether this state directory's supervisord answers."""
    if not paths.supervisor_socket.exists():
        return False
    try:
        return connect(paths).supervisor.getState()["statename"] == "RUNNING"
    except (OSError, xmlrpc.client.Error):
        return False


def ensure_running(paths: StackPaths) -> None:
    """Start supervisord with the written config, or make a running one read it again."""
    if is_running(paths):
        added, changed, _ = connect(paths).supervisor.reloadConfig()[0]
        for name in added:
            connect(paths).supervisor.addProcessGroup(name)
        if changed:
            log.warning("changed settings of %s apply when they restart (make down; make up)",
                        ", ".join(changed))  # fmt: skip
        return
    log.info("starting supervisord (config %s)", paths.supervisor_config)
    subprocess.run([venv_bin("supervisord"), "-c", str(paths.supervisor_config)], check=True,
                   cwd=paths.root, capture_output=True)  # fmt: skip
    if not wait_until(lambda: is_running(paths), timeout=30):
        raise RuntimeError(f"supervisord did not start; see {paths.logs / 'supervisord.log'}")


def program_info(paths: StackPaths, name: str) -> ProgramInfo:
    """A program's state and PID as supervisord reports them (STOPPED when it is not up)."""
    if not is_running(paths):
        return ProgramInfo(name, "STOPPED", None, "supervisord is not running")
    try:
        info = connect(paths).supervisor.getProcessInfo(name)
    except xmlrpc.client.Fault:  # not in the config yet
        return ProgramInfo(name, "STOPPED", None, "unknown to supervisord")
    return ProgramInfo(name, info["statename"], info["pid"] or None, info["description"])


def start_program(paths: StackPaths, name: str) -> None:
    """Ask supervisord to start a program, without waiting (health checks decide when)."""
    connect(paths).supervisor.startProcess(name, False)


def stop_program(paths: StackPaths, name: str) -> None:
    """Stop a program and wait until it and its process group are gone."""
    try:
        connect(paths).supervisor.stopProcess(name, True)
    except xmlrpc.client.Fault as fault:
        if "NOT_RUNNING" not in fault.faultString:
            raise


def shut_down(paths: StackPaths) -> None:
    """Stop supervisord itself (every program is stopped first) and wait until it is gone."""
    if not is_running(paths):
        return
    pid = int((paths.run / "supervisord.pid").read_text())
    connect(paths).supervisor.shutdown()
    wait_until(lambda: not _alive(pid), timeout=60)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
