"""Migrations match the schema; ingestion metrics really leave over StatsD."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
from alembic import command

from prodcat.data.ingest import ingest_next_batch
from prodcat.data.reset import reset_data
from prodcat.db.engine import alembic_config, upgrade_database
from prodcat.metrics import get_statsd

pytestmark = pytest.mark.integration
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "rakuten"


def test_migrations_are_applied_and_match_the_schema(settings):
    upgrade_database(settings)  # idempotent on an up-to-date database
    command.check(alembic_config(settings))  # raises if schema.py and the migrations disagree


def test_ingestion_sends_its_metrics_over_statsd(settings):
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind((settings.statsd.host, settings.statsd.port))
    receiver.settimeout(1)
    get_statsd.cache_clear()
    s = settings.model_copy(
        update={"data": settings.data.model_copy(update={"raw_dir": SHARED, "eval_size": 100,
                                                          "dataset": "rakuten-designations"})}
    )  # fmt: skip
    try:
        reset_data(confirm=True, settings=s)
        result = ingest_next_batch("statsd-probe", settings=s)
        packets, deadline = [], time.monotonic() + 3
        while time.monotonic() < deadline:  # Airflow sends to the same port all the time
            try:
                packets.append(receiver.recv(4096).decode(errors="replace"))
            except TimeoutError:
                break
    finally:
        receiver.close()
    lines = "\n".join(packets).splitlines()
    prefix = settings.statsd.prefix
    assert f"{prefix}.ingest.rows_accepted:{result.rows_accepted}|c" in lines
    assert f"{prefix}.ingest.rows_rejected:{result.rows_rejected}|c" in lines
    assert any(line.startswith(f"{prefix}.ingest.batch_duration:") for line in lines)
