"""The first vertical slice for real: SQLite rows captured into Kafka, read by other clients."""

from __future__ import annotations

import io
import json
import shutil
import sqlite3
import struct
import subprocess
from decimal import Decimal
from pathlib import Path

import avro.io
import avro.schema
import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.serialization import MessageField, SerializationContext

from connectors.runner import ConnectorRunner
from hub.config import Settings
from hub.kafka.topics import raw_topic
from tests.support import confluent_deserializer, sqlite_source, topic_messages, unique

pytestmark = pytest.mark.integration


def make_customers(path: Path, rows: int = 3) -> None:
    conn = sqlite3.connect(path)
    conn.execute(
        "CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT NOT NULL, "
        "balance DECIMAL(12,2), born DATE, updated TIMESTAMP)"
    )
    conn.executemany(
        "INSERT INTO customers VALUES (?, ?, ?, ?, ?)",
        [(i, f"customer {i}", f"{i}.10", "1980-02-29", "2024-05-01 10:00:00") for i in range(1, rows + 1)],
    )
    conn.commit()
    conn.close()


def capture(settings: Settings, db: Path) -> tuple[Settings, str]:
    """Run a fresh SQLite source over ``db`` until idle; return its settings and topic."""
    system = unique("sales")
    source = sqlite_source(unique("shop"), system, db, ["customers"])
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)
    return configured, raw_topic(system, "customers")


def test_confluent_deserializer_reads_hub_events(settings: Settings, tmp_path: Path) -> None:
    """An event the hub wrote is decoded by confluent-kafka's own AvroDeserializer."""
    db = tmp_path / "shop.db"
    make_customers(db)
    _, topic = capture(settings, db)

    deserialize = confluent_deserializer(settings.registry.url)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.bootstrap_servers,
            "group.id": unique("g"),
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    consumer.subscribe([topic])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None
        key = deserialize(message.key(), SerializationContext(topic, MessageField.KEY))
        value = deserialize(message.value(), SerializationContext(topic, MessageField.VALUE))
    finally:
        consumer.close()

    assert key == {"id": 1}
    assert value["op"] == "r"
    assert value["before"] is None
    assert value["after"]["balance"] == Decimal("1.10")
    assert value["after"]["born"].isoformat() == "1980-02-29"
    assert value["source"]["table"] == "customers" and value["source"]["snapshot"] is True


def test_kcat_reads_hub_events(settings: Settings, tmp_path: Path) -> None:
    """kcat, an independent client, reads the hub's events; its bytes decode with the registry's schema."""
    kcat = shutil.which("kcat")
    assert kcat, "kcat is not installed (apt-get install kcat)"
    db = tmp_path / "shop.db"
    make_customers(db, rows=1)
    _, topic = capture(settings, db)
    version = subprocess.run([kcat, "-V"], capture_output=True, text=True, check=True).stdout
    common = [
        kcat,
        "-b",
        settings.kafka.bootstrap_servers,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-c",
        "1",
        "-e",
    ]
    common += ["-X", "isolation.level=read_committed"]

    if "avro" in version:  # kcat built with libserdes decodes Avro itself
        out = subprocess.run(
            [*common, "-s", "value=avro", "-r", settings.registry.url, "-f", "%s"],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout
        after = json.loads(out)["after"]
    else:  # Debian's kcat has no Avro: take its raw bytes and decode them with Apache Avro
        raw = subprocess.run([*common, "-f", "%s"], capture_output=True, check=True, timeout=60).stdout
        assert raw[0] == 0, "not Confluent wire format"
        schema_id = struct.unpack(">I", raw[1:5])[0]
        text = httpx.get(f"{settings.registry.url}/schemas/ids/{schema_id}").json()["schema"]
        reader = avro.io.DatumReader(avro.schema.parse(text))
        after = reader.read(avro.io.BinaryDecoder(io.BytesIO(raw[5:])))["after"]

    assert after["name"] == "customer 1"
    assert Decimal(str(after["balance"])) == Decimal("1.10")


def test_insert_update_delete_arrive_in_order(settings: Settings, tmp_path: Path) -> None:
    """Insert, update and delete of a row arrive as c, u, d then a tombstone, positions increasing."""
    db = tmp_path / "shop.db"
    make_customers(db, rows=0)
    system = unique("sales")
    source = sqlite_source(unique("shop"), system, db, ["customers"])
    configured = settings.model_copy(update={"sources": [source]})
    ConnectorRunner(configured, source).run(until_idle=True)  # empty snapshot, triggers in

    conn = sqlite3.connect(db)
    conn.execute("INSERT INTO customers VALUES (7, 'ada', 10.50, '1990-01-01', NULL)")
    conn.commit()
    conn.execute("UPDATE customers SET name = 'ada lovelace', balance = 11 WHERE id = 7")
    conn.commit()
    conn.execute("DELETE FROM customers WHERE id = 7")
    conn.commit()
    conn.close()
    ConnectorRunner(configured, source).run(until_idle=True)

    from hub.registry import ConfluentRegistry
    from hub.serde import AvroSerde

    serde = AvroSerde(ConfluentRegistry(settings.registry))
    records = [
        (serde.decode(m.key()), serde.decode(m.value()))
        for m in topic_messages(settings.kafka, raw_topic(system, "customers"))
    ]
    assert [value["op"] if value else None for _, value in records] == ["c", "u", "d", None]
    assert all(key == {"id": 7} for key, _ in records)
    create, update, delete, _ = (value for _, value in records)
    assert create["before"] is None and create["after"]["name"] == "ada"
    assert update["before"]["name"] == "ada" and update["after"]["name"] == "ada lovelace"
    assert update["after"]["balance"] == Decimal("11.00")
    assert delete["before"]["name"] == "ada lovelace" and delete["after"] is None
    positions = [int(v["source"]["position"]) for v in (create, update, delete)]
    assert positions == sorted(positions) and len(set(positions)) == 3
