"""`up`, `status` and `down` through the real CLI, on a separate state directory and ports."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil
import psycopg2
import pytest

from prodcat.config import Settings
from prodcat.stack import Stack
from prodcat.stack.process import is_port_open
from prodcat.storage import get_s3_client
from tests.conftest import port_overrides
from tests.e2e.platform import settings_for

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def lifecycle_env():
    # Not pytest's tmp_path: PostgreSQL runs as 'postgres' under root and must traverse it.
    state = Path(tempfile.mkdtemp(prefix="prodcat-lifecycle-"))
    state.chmod(0o755)
    env = {**os.environ, **port_overrides(200), "PRODCAT_STATE_DIR": str(state)}
    yield env
    subprocess.run([sys.executable, "-m", "prodcat.cli", "stack", "down"], env=env, cwd=ROOT)
    shutil.rmtree(state, ignore_errors=True)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "prodcat.cli", "stack", *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=900,
    )  # fmt: skip


@pytest.mark.timeout(2400)  # three starts of a whole stack
def test_up_status_down_up_keeps_data_and_leaves_no_process(lifecycle_env):
    up = cli(lifecycle_env, "up")
    assert up.returncode == 0, up.stderr[-3000:]
    assert "Airflow UI" in up.stdout and "login:" in up.stdout

    status = cli(lifecycle_env, "status")
    assert status.returncode == 0, status.stdout
    rows = status.stdout.strip().splitlines()[1:]
    assert len(rows) == 9 and all(row.split()[1] == "healthy" for row in rows)

    again = cli(lifecycle_env, "up")  # idempotent: nothing new is started
    assert again.returncode == 0
    assert again.stderr.count("already running") == 9

    settings = settings_for(lifecycle_env)
    write_marker(settings)
    stack = Stack(settings, ROOT)
    tree = [p for s in stack.services for p in stack.processes(s)]
    assert {p.pid for p in tree} >= {s.pid for s in stack.status()}
    tree.append(psutil.Process(int((stack.paths.run / "supervisord.pid").read_text())))

    down = cli(lifecycle_env, "down")
    assert down.returncode == 0, down.stderr
    assert [p for p in tree if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    ports = [p for s in stack.services for p in s.ports]
    assert [p for p in ports if is_port_open("127.0.0.1", p)] == []
    assert not (stack.paths.run / "supervisor.sock").exists()

    restarted = cli(lifecycle_env, "up", "postgres", "s3")
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert read_marker(settings) == ("kept", b"kept in S3")
    assert cli(lifecycle_env, "down").returncode == 0


def write_marker(settings: Settings) -> None:
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("create table if not exists lifecycle_marker (v text)")
        cur.execute("insert into lifecycle_marker values ('kept')")
    get_s3_client(settings).put_object(
        settings.s3.images_bucket, "lifecycle/marker", io.BytesIO(b"kept in S3"), 10
    )


def read_marker(settings: Settings) -> tuple[str, bytes]:
    with connect(settings) as conn, conn.cursor() as cur:
        cur.execute("select v from lifecycle_marker")
        row = cur.fetchone()[0]
    body = get_s3_client(settings).get_object(settings.s3.images_bucket, "lifecycle/marker").read()
    return row, body


def connect(settings: Settings):
    cfg = settings.postgres
    return psycopg2.connect(
        host=cfg.host, port=cfg.port, dbname=cfg.app_db,
        user=cfg.app_user, password=cfg.app_password.get_secret_value(),
    )  # fmt: skip
