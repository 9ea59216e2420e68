"""The dashboard with API tokens set, in headless Chromium: the operator's link works, others don't."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from hub.config import KafkaSettings, Settings
from tests.e2e.test_dashboard import api_process
from tests.e2e.test_dashboard import browser as browser  # the module's Chromium fixture
from tests.support import free_ports

pytestmark = pytest.mark.e2e


def test_operator_opens_the_dashboard_once_with_the_token_then_by_cookie(
    settings: Settings, tmp_path: Path, browser: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/dashboard?token=<operator> shows live data, drops the token from the address, survives a
    reload; without a token it is 401, with the subscriber's 403; no token value reaches the log."""
    operator, subscriber = f"op-{uuid.uuid4().hex}", f"sub-{uuid.uuid4().hex}"
    monkeypatch.setenv("UNSILO_API__OPERATOR_TOKEN", operator)  # the api process reads them
    monkeypatch.setenv("UNSILO_API__SUBSCRIBER_TOKEN", subscriber)
    (port,) = free_ports(1)  # no broker there: the first snapshot is quick, and says DOWN
    down = settings.model_copy(update={"kafka": KafkaSettings(bootstrap_servers=f"127.0.0.1:{port}")})

    with api_process(down, tmp_path) as base:
        page = browser.new_page()
        anonymous = page.goto(f"{base}/dashboard")
        refused = page.goto(f"{base}/dashboard?token={subscriber}")
        page.context.clear_cookies()
        opened = page.goto(f"{base}/dashboard?token={operator}")
        page.locator('[data-component="broker"] [data-status="DOWN"]').wait_for(timeout=60_000)
        address_after = page.url
        reloaded = page.reload()
        page.locator('[data-component="broker"] [data-status="DOWN"]').wait_for(timeout=60_000)
        banner_shown = page.locator("#banner").is_visible()
        page.close()
    log = (tmp_path / "api.log").read_text()

    assert anonymous is not None and anonymous.status == 401
    assert refused is not None and refused.status == 403
    assert opened is not None and opened.status == 200
    assert "token" not in address_after
    assert reloaded is not None and reloaded.status == 200
    assert not banner_shown
    assert operator not in log and subscriber not in log
