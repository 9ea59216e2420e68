"""The canonicalizer started while the schema registry is away waits for it instead of exiting."""

from __future__ import annotations

import pytest
import structlog

from hub.config import KafkaSettings, RegistrySettings, Settings
from hub.errors import RegistryUnavailableError
from projections.cli_canonical import run_canonical
from tests.support import free_ports

pytestmark = pytest.mark.integration


def test_canonicalizer_waits_for_a_registry_that_is_restarting() -> None:
    """With no registry answering it keeps retrying with backoff (logged), not exiting at once."""
    (port,) = free_ports(1)
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:9"),
        registry=RegistrySettings(url=f"http://127.0.0.1:{port}/apis/ccompat/v7"),
    )

    with structlog.testing.capture_logs() as logs, pytest.raises(RegistryUnavailableError):
        run_canonical(settings, until_idle=True, max_seconds=15.0)

    waits = [entry for entry in logs if entry["event"] == "canonicalize_waiting"]
    assert len(waits) >= 2 and "did not answer" in waits[0]["error"]
    assert [w["backoff_s"] for w in waits[:2]] == [0.5, 1.0]
