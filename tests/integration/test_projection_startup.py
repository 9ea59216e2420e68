"""A projection worker started while the broker is away (restarting) waits for it instead of exiting."""

from __future__ import annotations

from pathlib import Path

import pytest
import structlog

from hub.config import KafkaSettings, ReadStoreSettings, Settings
from hub.errors import LogUnavailableError
from projections.cli import prepare_worker
from tests.support import free_ports

pytestmark = pytest.mark.integration


def test_projection_worker_waits_for_a_broker_that_is_restarting(tmp_path: Path) -> None:
    """With no broker answering, `unsilo project` retries with backoff (logged) rather than exit at once."""
    (port,) = free_ports(1)
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}"),
        read_store=ReadStoreSettings(url=f"sqlite:///{tmp_path / 'read.db'}"),
    )

    with structlog.testing.capture_logs() as logs, pytest.raises(LogUnavailableError):
        prepare_worker(settings, "store_sales", None, max_seconds=12.0)

    waits = [entry for entry in logs if entry["event"] == "projection_waiting"]
    assert waits and waits[0]["projection"] == "store_sales" and waits[0]["backoff_s"] == 0.5
