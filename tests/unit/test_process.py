import os
import sys
import time

import psutil

from prodcat.stack.process import (
    ProcessRecord,
    is_port_open,
    spawn_process,
    stop_process,
    tail_file,
    wait_until,
)

CHILDREN = (
    "import subprocess, time; [subprocess.Popen(['sleep', '60']) for _ in range(2)]; time.sleep(60)"
)


def test_spawn_records_identity_and_stop_kills_the_whole_tree(tmp_path):
    record = spawn_process(
        [sys.executable, "-c", CHILDREN], tmp_path / "p.log", dict(os.environ), tmp_path
    )
    record.save(tmp_path / "p.pid")
    loaded = ProcessRecord.load(tmp_path / "p.pid")
    assert loaded == record
    proc = loaded.process()
    assert proc is not None
    assert wait_until(lambda: len(proc.children()) == 2, timeout=10)
    children = proc.children()

    assert stop_process(loaded, timeout=10)
    assert loaded.process() is None
    assert not any(
        child.is_running() and child.status() != psutil.STATUS_ZOMBIE for child in children
    )


def test_a_reused_pid_is_not_mistaken_for_our_process(tmp_path):
    stranger = ProcessRecord(pid=os.getpid(), create_time=time.time() - 3600, command=["x"])
    assert stranger.process() is None
    assert stop_process(stranger)  # nothing of ours to stop; the test process lives on


def test_missing_or_corrupt_pidfile_loads_as_none(tmp_path):
    assert ProcessRecord.load(tmp_path / "absent.pid") is None
    (tmp_path / "bad.pid").write_text("{not json")
    assert ProcessRecord.load(tmp_path / "bad.pid") is None


def test_port_probe_and_wait_until_give_up(tmp_path):
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
