"""PostgreSQL 15 for the native stack: one cluster, with a database and role per component."""

from __future__ import annotations

import logging
import os
import pwd
import signal
import subprocess
from pathlib import Path

import psycopg2
from psycopg2 import sql

from prodcat.config import Settings
from prodcat.stack.service import Service, StackPaths

log = logging.getLogger(__name__)
INSTALL_HINT = "apt-get install postgresql-15 (make up does it when run as root)"


def build_service(settings: Settings, paths: StackPaths) -> Service:
    cfg = settings.postgres
    data_dir, socket_dir = paths.state / "postgres" / "data", paths.state / "postgres" / "run"
    os_user = "postgres" if os.geteuid() == 0 else None
    command = [
        str(cfg.bin_dir / "postgres"), "-D", str(data_dir),
        "-p", str(cfg.port), "-k", str(socket_dir),
        "-c", f"listen_addresses={cfg.host}",
        "-c", "max_connections=200",
    ]  # fmt: skip
    return Service(
        name="postgres",
        url=f"postgresql://{cfg.host}:{cfg.port}",
        command=command,
        health=lambda: _accepts_connections(settings, socket_dir),
        requires=[(command[0], INSTALL_HINT), (str(cfg.bin_dir / "initdb"), INSTALL_HINT)],
        user=os_user,
        stop_signal=signal.SIGINT,  # "fast" shutdown: rolls back open transactions
        ports=[cfg.port],
        start_timeout=60,
        prepare=lambda: _init_cluster(settings, data_dir, socket_dir, os_user),
        after_start=lambda: _set_up_databases(settings, socket_dir),
    )


def _set_up_databases(settings: Settings, socket_dir: Path) -> None:
    from prodcat.db import upgrade_database

    ensure_databases(settings, socket_dir)
    upgrade_database(settings)


def _init_cluster(
    settings: Settings, data_dir: Path, socket_dir: Path, os_user: str | None
) -> None:
    socket_dir.mkdir(parents=True, exist_ok=True)
    # Local socket logins are trusted (the stack sets up roles with them), so only the
    # server's own OS user (and root) may reach the socket: a 0700 folder.
    socket_dir.chmod(0o700)
    if os_user:
        _check_traversable(data_dir.parent, os_user)
        uid, gid = pwd.getpwnam(os_user).pw_uid, pwd.getpwnam(os_user).pw_gid
        os.chown(data_dir.parent, uid, gid)
        os.chown(socket_dir, uid, gid)
    if (data_dir / "PG_VERSION").exists():
        return
    log.info("initialising PostgreSQL cluster in %s", data_dir)
    command = [
        str(settings.postgres.bin_dir / "initdb"), "-D", str(data_dir),
        "-U", settings.postgres.superuser, "-E", "UTF8", "--no-locale",
        "--auth-local=trust", "--auth-host=scram-sha-256",
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, user=os_user, group=os_user)
    if result.returncode != 0:
        raise RuntimeError(f"initdb failed:\n{result.stdout}{result.stderr}")


def _check_traversable(path: Path, os_user: str) -> None:
    """initdb runs as the postgres user, so every parent of the state dir must let it through."""
    for parent in [path, *path.parents]:
        if parent.exists() and not os.stat(parent).st_mode & 0o001:
            raise RuntimeError(
                f"{parent} is not traversable by the '{os_user}' user; "
                f"chmod o+x it or set PRODCAT_STATE_DIR elsewhere"
            )


def _connect_superuser(settings: Settings, socket_dir: Path, dbname: str = "postgres"):
    return psycopg2.connect(
        host=str(socket_dir),
        port=settings.postgres.port,
        user=settings.postgres.superuser,
        dbname=dbname,
        connect_timeout=2,
    )


def _accepts_connections(settings: Settings, socket_dir: Path) -> bool:
    try:
        with _connect_superuser(settings, socket_dir) as conn, conn.cursor() as cur:
            cur.execute("select 1")
        conn.close()
        return True
    except psycopg2.Error:
        return False


def ensure_databases(settings: Settings, socket_dir: Path) -> None:
    """Create (or update the password of) the app, Airflow and MLflow roles and databases."""
    cfg = settings.postgres
    conn = _connect_superuser(settings, socket_dir)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for role in ("app", "airflow", "mlflow"):
                db, user = getattr(cfg, f"{role}_db"), getattr(cfg, f"{role}_user")
                password = getattr(cfg, f"{role}_password").get_secret_value()
                cur.execute("select 1 from pg_roles where rolname = %s", (user,))
                verb = "alter" if cur.fetchone() else "create"
                cur.execute(
                    sql.SQL(verb + " role {} with login password %s").format(sql.Identifier(user)),
                    (password,),
                )
                cur.execute("select 1 from pg_database where datname = %s", (db,))
                if not cur.fetchone():
                    log.info("creating database %s owned by %s", db, user)
                    cur.execute(
                        sql.SQL("create database {} owner {}").format(
                            sql.Identifier(db), sql.Identifier(user)
                        )
                    )
    finally:
        conn.close()
