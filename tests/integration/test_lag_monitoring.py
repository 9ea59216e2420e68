"""Consumer lag of real groups on the broker: `unsilo lag`, Burrow statuses, the API's health and metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from hub.api import create_app
from hub.api.app import Sampler
from hub.config import ApiSettings, RegistrySettings, Settings
from hub.kafka.admin import KafkaAdmin
from hub.kafka.topics import TopicSpec
from hub.lag import Status
from hub.lag_monitor import LagMonitor
from tests.support import free_ports, unique, wait_for, write_config

pytestmark = pytest.mark.integration

FAST = ApiSettings(lag_window=3, lag_interval_s=0.5)  # STOP after 1.5 s of silence, STALL after 3 samples


def fast(settings: Settings, **api: Any) -> Settings:
    return settings.model_copy(update={"api": FAST.model_copy(update=api)})


def produce(settings: Settings, topic: str, count: int) -> None:
    KafkaAdmin(settings.kafka).ensure_topics([TopicSpec(topic, 1)])
    producer = Producer(settings.kafka.client_config())
    for i in range(count):
        producer.produce(topic, key=str(i).encode(), value=f"record {i}".encode())
    assert producer.flush(30) == 0


def consumer(settings: Settings, group: str) -> Consumer:
    return Consumer(
        {
            **settings.kafka.client_config(),
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )


def consume_and_commit(settings: Settings, topic: str, group: str, count: int) -> Consumer:
    """A group member that consumed ``count`` records and committed after them (still open)."""
    member = consumer(settings, group)
    member.subscribe([topic])
    seen = 0
    while seen < count:
        message = member.poll(1.0)
        if message is not None and message.error() is None:
            seen += 1
            if seen == count:
                member.commit(message=message, asynchronous=False)
    return member


@pytest.fixture
def stopped_group(settings: Settings) -> Iterator[tuple[str, str]]:
    """A group that consumed 5 of 20 records, committed, and went away."""
    topic, group = unique("lagt"), unique("lagg")
    produce(settings, topic, 20)
    consume_and_commit(settings, topic, group, 5).close()
    yield topic, group


def unsilo(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hub.cli", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


def lag_json(config: Path, group: str) -> dict[str, Any]:
    result = unsilo(config, "lag", group, "--json")
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data["groups"][0]


def test_lag_command_shows_lag_then_stop_once_commits_stop(
    settings: Settings, stopped_group: tuple[str, str], tmp_path: Path
) -> None:
    """`unsilo lag` shows committed/log-end/lag and age; with no more commits the group turns ERR (STOP)."""
    topic, group = stopped_group
    config = write_config(fast(settings), tmp_path / "unsilo.yaml")

    first = lag_json(config, group)

    partition = first["partitions"][0]
    assert (partition["topic"], partition["committed_offset"], partition["log_end_offset"]) == (topic, 5, 20)
    assert partition["lag"] == 15 and partition["lag_seconds"] is not None and partition["lag_seconds"] >= 0
    assert first["status"] == "OK"  # one observation cannot say it stopped
    stopped = wait_for(
        lambda: (g := lag_json(config, group))["status"] == "ERR" and g,
        timeout_s=60,
        what="group to turn ERR",
    )
    assert stopped["worst"] == "STOP" and stopped["partitions"][0]["status"] == "STOP"
    table = unsilo(config, "lag", group)
    assert group in table.stdout and "ERR" in table.stdout and "STOP" in table.stdout


def test_live_member_that_stops_progressing_is_stall(settings: Settings) -> None:
    """A member still in the group that keeps its offset while lag grows is STALL (the group ERR)."""
    topic, group = unique("lagt"), unique("lagg")
    produce(settings, topic, 30)
    member = consume_and_commit(settings, topic, group, 10)
    member.pause(member.assignment())
    stop = threading.Event()
    polling = threading.Thread(
        target=lambda: [member.poll(0.2) for _ in iter(stop.is_set, True)], daemon=True
    )
    polling.start()
    monitor = LagMonitor(fast(settings))
    try:

        def stalled() -> Any:
            report = monitor.sample([group])
            return report.groups[group] if report.groups[group].worst is Status.STALL else None

        found = wait_for(stalled, timeout_s=60, interval_s=0.5, what="STALL")
    finally:
        stop.set()
        polling.join(5)
        member.close()
        monitor.close()

    assert found.status is Status.ERR
    assert found.partitions[0].lag == 20 and found.partitions[0].member is not None


def test_unknown_group_exits_2_and_says_so(settings: Settings, tmp_path: Path) -> None:
    """`unsilo lag no-such-group` names the group, says it is unknown and exits with status 2."""
    config = write_config(settings, tmp_path / "unsilo.yaml")
    name = unique("nosuch")

    result = unsilo(config, "lag", name)

    assert result.returncode == 2
    assert f"unknown consumer group '{name}'" in result.stderr
    assert "Traceback" not in result.stderr


def test_ready_is_503_naming_the_registry_on_a_closed_port(settings: Settings) -> None:
    """With the registry URL on a closed port /health/ready answers 503 and names that URL; live stays 200."""
    (port,) = free_ports(1)
    url = f"http://127.0.0.1:{port}/apis/ccompat/v7"
    broken = settings.model_copy(update={"registry": RegistrySettings(url=url)})

    with TestClient(create_app(broken, background=False)) as client:
        ready = client.get("/health/ready")
        live = client.get("/health/live")
        status = client.get("/status").json()

    assert ready.status_code == 503
    assert any(url in line and line.startswith("registry") for line in ready.json()["down"])
    assert live.status_code == 200
    registry = next(c for c in status["components"] if c["name"] == "registry")
    assert registry["up"] is False and registry["address"] == url


def test_ready_is_200_when_broker_and_registry_answer(settings: Settings) -> None:
    """/health/ready is 200 when both the broker and the registry answer."""
    with TestClient(create_app(settings, background=False)) as client:
        assert client.get("/health/ready").status_code == 200


def test_metrics_and_lag_endpoints_show_a_real_group(
    settings: Settings, stopped_group: tuple[str, str]
) -> None:
    """/metrics has kafka-lag-exporter's names for a real group; /lag/<group> its partitions; unknown: 404."""
    topic, group = stopped_group

    with TestClient(create_app(settings, background=False)) as client:
        metrics = client.get("/metrics")
        lag = client.get(f"/lag/{group}")
        missing = client.get(f"/lag/{unique('nosuch')}")

    assert metrics.status_code == 200 and metrics.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, s.labels.get("group"), s.labels.get("topic")): (s.labels, s.value)
        for family in text_string_to_metric_families(metrics.text)
        for s in family.samples
    }
    labels, value = samples[("kafka_consumergroup_group_lag", group, topic)]
    assert value == 15 and labels["partition"] == "0" and labels["cluster_name"] == settings.api.cluster_name
    assert samples[("kafka_consumergroup_group_offset", group, topic)][1] == 5
    assert samples[("kafka_consumergroup_group_max_lag", group, None)][1] == 15
    assert samples[("kafka_consumergroup_group_sum_lag", group, None)][1] == 15
    assert samples[("kafka_partition_latest_offset", None, topic)][1] == 20
    assert ("kafka_consumergroup_group_lag_seconds", group, topic) in samples
    assert lag.status_code == 200 and lag.json()["partitions"][0]["lag"] == 15
    assert missing.status_code == 404 and "unknown consumer group" in missing.json()["detail"]


def test_lag_seconds_is_the_age_of_the_oldest_unconsumed_record(settings: Settings) -> None:
    """Lag in seconds is read from the log: the Kafka timestamp of the first record after the commit."""
    topic, group = unique("lagt"), unique("lagg")
    produce(settings, topic, 3)
    KafkaAdmin(settings.kafka)  # topic exists; commit offset 1 without consuming
    member = consumer(settings, group)
    member.commit(offsets=[TopicPartition(topic, 0, 1)], asynchronous=False)
    member.close()
    monitor = LagMonitor(settings)
    try:
        report = monitor.sample([group])
    finally:
        monitor.close()

    partition = report.groups[group].partitions[0]
    assert partition.lag == 2
    assert partition.lag_seconds is not None and 0 <= partition.lag_seconds < 120


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return


def test_webhook_gets_one_alert_when_a_group_stops(
    settings: Settings, stopped_group: tuple[str, str]
) -> None:
    """A real webhook endpoint receives one STOP alert for the stopped group, however many samples see it."""
    _, group = stopped_group
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    sampler = Sampler(fast(settings, webhook_url=url))
    try:

        def alerted() -> list[dict[str, Any]]:
            sampler.tick()
            sampler.alerter.flush()
            return [b for b in _Hook.received if b["subject"] == f"group:{group}"]

        first = wait_for(alerted, timeout_s=60, interval_s=0.5, what="a webhook alert")
        for _ in range(3):
            sampler.tick()
        sampler.alerter.flush()
    finally:
        sampler.stop()
        server.shutdown()

    mine = [b for b in _Hook.received if b["subject"] == f"group:{group}"]
    assert [b["status"] for b in mine] == ["STOP"] == [b["status"] for b in first]
    assert mine[0]["state"] == "firing" and group in mine[0]["text"]


def test_lag_command_asks_the_running_api(
    settings: Settings, stopped_group: tuple[str, str], tmp_path: Path
) -> None:
    """With `unsilo api` running, `unsilo lag` shows the API's latest report (no Kafka reads of its
    own); an unknown group still exits 2; --direct samples Kafka from the command itself."""
    topic, group = stopped_group
    (port,) = free_ports(1)
    config = write_config(fast(settings, port=port), tmp_path / "unsilo.yaml")
    api = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "-c", str(config), "api"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(
            lambda: group in unsilo(config, "lag").stdout and "from the API" in unsilo(config, "lag").stdout,
            timeout_s=60,
            what="the API to answer with the group",
        )
        via_api = unsilo(config, "lag", group, "--json")
        missing = unsilo(config, "lag", unique("nosuch"))
        direct = unsilo(config, "lag", group, "--direct")
    finally:
        api.terminate()
        api.wait(30)

    body = json.loads(via_api.stdout)
    assert body["source"] == f"http://127.0.0.1:{port}"
    partition = body["groups"][0]["partitions"][0]
    assert (partition["topic"], partition["committed_offset"], partition["lag"]) == (topic, 5, 15)
    assert missing.returncode == 2 and "unknown consumer group" in missing.stderr
    assert direct.returncode == 0 and group in direct.stdout and "from the API" not in direct.stdout
