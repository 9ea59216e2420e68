"""Helpers shared by the test tiers: free ports, deadlines, reading topics."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from confluent_kafka import Message

from hub.config import KafkaSettings, Settings, SourceSettings
from hub.kafka.consumer import read_to_end

T = TypeVar("T")


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports that were free on 127.0.0.1 a moment ago."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def unique(prefix: str) -> str:
    """A name no other test uses (topics, groups, sources)."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def wait_for(check: Callable[[], T], timeout_s: float = 60.0, interval_s: float = 0.25, what: str = "") -> T:
    """Poll ``check`` until it returns something truthy; fail with ``what`` after the deadline."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what or check}: last={last!r}")


def topic_messages(settings: KafkaSettings, topic: str) -> list[Message]:
    """Every committed record of ``topic`` readable now, in offset order per partition.

    Not waiting for transactions still open (``stable=False``): tests poll this until what
    they wait for is there, and a killed connector's transaction stays open until it restarts.
    """
    return list(read_to_end(settings, topic, stable=False))


def write_config(settings: Settings, path: Path) -> Path:
    """``settings`` as an unsilo.yaml a CLI subprocess can load (tests hold no secrets)."""
    import yaml

    data = settings.model_dump(mode="json", exclude_none=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def sqlite_source(name: str, system: str, db: Path, tables: list[str], **extra: Any) -> SourceSettings:
    """A SQLite source for ``tables`` of the database file ``db``."""
    return SourceSettings(name=name, system=system, kind="sqlite", url=str(db), tables=tables, **extra)


def run_sql(db: Path, statement: str, params: tuple[Any, ...] = ()) -> None:
    """Run one statement on the SQLite file ``db`` in its own committed transaction."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute(statement, params)
    finally:
        conn.close()


def query(db: Path, statement: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The rows of one query on the SQLite file ``db``."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return conn.execute(statement, params).fetchall()
    finally:
        conn.close()


def confluent_deserializer(registry_url: str) -> Any:
    """confluent-kafka's own AvroDeserializer, as a downstream consumer would configure it.

    TopicNameStrategy explicitly: confluent-kafka 2.16's default strategy first asks the
    registry for subject associations, an endpoint Apicurio's ccompat API sometimes leaves
    unanswered; and a timeout, so such a hang fails instead of stalling.
    """
    from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
    from confluent_kafka.schema_registry.avro import AvroDeserializer

    client = SchemaRegistryClient({"url": registry_url, "timeout": 20})
    return AvroDeserializer(client, conf={"subject.name.strategy": topic_subject_name_strategy})
