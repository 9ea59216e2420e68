"""The live dashboard in headless Chromium (Debian's), served by a real `unsilo api` process."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, Producer

from hub.config import ApiSettings, KafkaSettings, Settings
from hub.kafka.admin import KafkaAdmin
from hub.kafka.topics import TopicSpec
from tests.support import free_ports, unique, wait_for, write_config

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian chromium driven by Playwright (no `playwright install`)."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def api_process(settings: Settings, tmp_path: Path) -> Iterator[str]:
    """`unsilo api` on a free port; yields its base URL once it answers."""
    (port,) = free_ports(1)
    config = write_config(settings, tmp_path / "unsilo.yaml")
    log = (tmp_path / "api.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "api", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            assert process.poll() is None, (tmp_path / "api.log").read_text()
            try:
                return httpx.get(f"{base}/health/live", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(answers, timeout_s=60, what="unsilo api to answer")
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@contextmanager
def paused_consumer(settings: Settings, topic: str, group: str) -> Iterator[None]:
    """A group member that consumed 5 of 25 records, committed, paused, and stays in the group."""
    KafkaAdmin(settings.kafka).ensure_topics([TopicSpec(topic, 1)])
    producer = Producer(settings.kafka.client_config())
    for i in range(25):
        producer.produce(topic, value=f"record {i}".encode())
    assert producer.flush(30) == 0
    member = Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    member.subscribe([topic])
    seen = 0
    while seen < 5:
        message = member.poll(1.0)
        if message is not None and message.error() is None:
            seen += 1
    member.commit(message=message, asynchronous=False)
    member.pause(member.assignment())
    stop = threading.Event()
    polling = threading.Thread(
        target=lambda: [member.poll(0.2) for _ in iter(stop.is_set, True)], daemon=True
    )
    polling.start()
    try:
        yield
    finally:
        stop.set()
        polling.join(5)
        member.close()


def test_dashboard_shows_a_paused_consumer_turning_err(
    settings: Settings, tmp_path: Path, browser: Any
) -> None:
    """The page loads, shows the components up, and a paused group turns ERR (STALL or STOP) live."""
    fast = settings.model_copy(update={"api": ApiSettings(lag_window=3, lag_interval_s=0.5)})
    topic, group = unique("dasht"), unique("dashg")
    with api_process(fast, tmp_path) as base, paused_consumer(settings, topic, group):
        page = browser.new_page(viewport={"width": 1400, "height": 1400})
        page.goto(f"{base}/dashboard")
        row = page.locator(f'tr[data-group="{group}"]')
        row.wait_for(timeout=60_000)
        row.locator('[data-status="ERR"]').wait_for(timeout=60_000)
        status_text = row.locator(".badge").first.inner_text()
        broker = page.locator('[data-component="broker"]').inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-stalled-group.png"))
        page.close()

    assert "STALL" in status_text or "STOP" in status_text
    assert "UP" in broker and settings.kafka.bootstrap_servers in broker
    assert (ARTIFACTS / "dashboard-stalled-group.png").stat().st_size > 10_000


def test_broker_down_shows_down_with_address_not_a_blank_page(
    settings: Settings, tmp_path: Path, browser: Any
) -> None:
    """With no broker at the configured address the dashboard lists the broker DOWN with that address."""
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    down = settings.model_copy(update={"kafka": KafkaSettings(bootstrap_servers=address)})
    with api_process(down, tmp_path) as base:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{base}/dashboard")
        card = page.locator('[data-component="broker"]')
        card.locator('[data-status="DOWN"]').wait_for(timeout=60_000)
        text = card.inner_text()
        errors = page.locator("#errors").inner_text()
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "dashboard-broker-down.png"))
        page.close()

    assert address in text
    assert "broker down" in errors and address in errors


def test_status_command_with_broker_down_names_the_address(settings: Settings, tmp_path: Path) -> None:
    """`unsilo status` with no broker shows it DOWN with the address tried, exits 1, prints no traceback."""
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    config = write_config(
        settings.model_copy(update={"kafka": KafkaSettings(bootstrap_servers=address)}),
        tmp_path / "unsilo.yaml",
    )

    result = subprocess.run(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "status"],
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 1
    assert "DOWN" in result.stdout and address in result.stdout
    assert settings.registry.url in result.stdout  # the registry row, up, with its address
    assert "Traceback" not in result.stdout + result.stderr
