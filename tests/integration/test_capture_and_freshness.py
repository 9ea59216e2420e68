"""Capture lag per source table and freshness per read model, read from real topics and a real read store."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import Producer
from sqlalchemy import create_engine, text

from hub.config import ApiSettings, Settings
from hub.kafka.admin import KafkaAdmin
from hub.kafka.topics import STATUS_TOPIC, TopicSpec, raw_topic, spec_for
from hub.overview import Observer
from hub.registry import ConfluentRegistry, value_subject
from hub.serde import AvroSerde
from hub.status import SourceStatus
from tests.support import sqlite_source, unique, wait_for

pytestmark = pytest.mark.integration

ENVELOPE = {  # the part of the change envelope capture lag reads: source.ts_ms
    "type": "record",
    "name": "Envelope",
    "namespace": "test.capture",
    "fields": [
        {"name": "op", "type": "string"},
        {
            "name": "source",
            "type": {"type": "record", "name": "Source", "fields": [{"name": "ts_ms", "type": "long"}]},
        },
    ],
}


def publish_changes(settings: Settings, topic: str, commit_ms: list[int]) -> None:
    KafkaAdmin(settings.kafka).ensure_topics([spec_for(topic)])
    writer = AvroSerde(ConfluentRegistry(settings.registry)).writer(value_subject(topic), ENVELOPE)
    producer = Producer(settings.kafka.client_config())
    for ms in commit_ms:
        producer.produce(topic, key=b"k", value=writer.encode({"op": "u", "source": {"ts_ms": ms}}))
    assert producer.flush(30) == 0


def publish_status(settings: Settings, status: SourceStatus) -> None:
    KafkaAdmin(settings.kafka).ensure_topics([spec_for(STATUS_TOPIC)])
    producer = Producer(settings.kafka.client_config())
    producer.produce(STATUS_TOPIC, key=status.source.encode(), value=status.encode())
    assert producer.flush(30) == 0


def test_capture_lag_is_kafka_time_minus_source_commit_and_status_follows_the_connector(
    settings: Settings, tmp_path: Path
) -> None:
    """A table whose newest event was committed 1.5 s before it reached Kafka shows ~1.5 s; stopped is ERR."""
    name, system = unique("cap"), unique("sys")
    source = sqlite_source(name, system, tmp_path / "shop.db", ["sales", "stock"])
    configured = settings.model_copy(update={"sources": [source]})
    now = int(time.time() * 1000)
    publish_changes(settings, raw_topic(system, "sales"), [now - 60_000, now - 1_500])
    status = SourceStatus(name, system, "sqlite", state="running", events=2)
    status.table("sales").state = "streaming"
    status.table("stock").state = "stopped"
    status.table("stock").reason = "the registry refused the new schema of stock"
    publish_status(settings, status)
    observer = Observer(configured)
    try:
        snap = wait_for(
            lambda: (
                (s := observer.snapshot(lag=False))
                and any(c.source == name and c.state != "unknown" for c in s.capture)
                and s
            ),
            timeout_s=60,
            what="the source's status",
        )
    finally:
        observer.close()

    rows = {c.table: c for c in snap.capture if c.source == name}
    sales, stock = rows["sales"], rows["stock"]
    assert sales.status == "OK" and sales.topic == raw_topic(system, "sales")
    assert sales.capture_lag_s is not None and 1.4 <= sales.capture_lag_s < 30
    assert sales.last_event_age_s is not None and sales.last_event_age_s >= 0
    assert stock.status == "ERR" and "refused" in (stock.reason or "")
    assert stock.capture_lag_s is None  # nothing captured yet


def test_read_model_freshness_compares_applied_offsets_with_the_log_end(settings: Settings) -> None:
    """A read model 3 records behind shows 3 behind and their age; once it applied them it is caught up."""
    topic = raw_topic(unique("sys"), "sales")
    KafkaAdmin(settings.kafka).ensure_topics([TopicSpec(topic, 1)])
    producer = Producer(settings.kafka.client_config())
    for i in range(5):
        producer.produce(topic, value=f"{i}".encode())
    assert producer.flush(30) == 0
    engine = create_engine(settings.read_store.url)
    with engine.begin() as conn:  # the table projections/tracking.py keeps, created here by its name
        conn.execute(
            text(
                "CREATE TABLE unsilo_projection_positions (projection VARCHAR(200), topic VARCHAR(255), "
                '"partition" INTEGER, "offset" BIGINT, PRIMARY KEY (projection, topic, "partition"))'
            )
        )
        conn.execute(
            text("INSERT INTO unsilo_projection_positions VALUES ('store_sales', :t, 0, 1)"), {"t": topic}
        )
    observer = Observer(settings.model_copy(update={"api": ApiSettings(lag_window=3, lag_interval_s=0.5)}))
    try:
        behind = observer.pipeline.freshness()
        with engine.begin() as conn:
            conn.execute(text('UPDATE unsilo_projection_positions SET "offset" = 4'))
        caught_up = observer.pipeline.freshness()
    finally:
        observer.close()

    assert [(f.read_model, f.behind) for f in behind] == [("store_sales", 3)]
    assert behind[0].age_s >= 0 and behind[0].partitions[0]["applied_offset"] == 1
    assert [(f.read_model, f.behind, f.age_s, f.status) for f in caught_up] == [("store_sales", 0, 0.0, "OK")]
