"""Which local model copies the API keeps: the most recently used ones, and downloads that
may still be under way."""

from __future__ import annotations

import os
import time

from prodcat.serving.model_store import prune_copies


def test_pruning_keeps_recent_partial_downloads_and_deletes_old_ones(tmp_path):
    current, older, oldest = (tmp_path / n for n in ("3-c", "2-b", "1-a"))
    for age, copy in enumerate((current, older, oldest)):
        copy.mkdir()
        (copy / "MLmodel").write_text("")
        os.utime(copy, (time.time() - age * 60,) * 2)
    fresh, stale = tmp_path / ".4.aa.partial", tmp_path / ".4.bb.partial"
    fresh.mkdir()
    stale.mkdir()
    os.utime(stale, (time.time() - 7200,) * 2)
    deleted = prune_copies(tmp_path, keep=2, current=current)
    assert sorted(p.name for p in deleted) == [".4.bb.partial", "1-a"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".4.aa.partial", "2-b", "3-c"]
