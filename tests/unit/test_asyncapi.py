"""The AsyncAPI document of the catalog is valid AsyncAPI 3.0.0 and describes each topic."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator

from hub.asyncapi import AVRO_FORMAT, document, json_schema
from hub.avro_types import Column
from hub.canonical_schemas import canonical_schema
from hub.catalog import Owner, SchemaInfo, TopicEntry
from hub.config import KafkaSettings, RegistrySettings, Settings
from hub.envelope import TableSchema
from hub.retention_guard import findings_for

SPEC = Path(__file__).resolve().parent.parent / "data" / "asyncapi-3.0.0.schema.json"
CANONICAL_KEY = {"type": "record", "name": "EntityKey", "fields": [{"name": "key", "type": "string"}]}


@pytest.fixture(scope="module")
def validator() -> Draft7Validator:
    return Draft7Validator(json.loads(SPEC.read_text(encoding="utf-8")))


def entry(topic: str, kind: str, key: Any, value: Any, config: dict[str, str] | None = None) -> TopicEntry:
    config = config or {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
    return TopicEntry(
        topic=topic,
        kind=kind,
        owner=Owner(system="sales", table="customers") if kind == "raw" else Owner(entity="customer"),
        read_models=["customer_360"] if kind == "canonical" else [],
        key=SchemaInfo(f"{topic}-key", 1, 11, [1], key) if key is not None else None,
        value=SchemaInfo(f"{topic}-value", 2, 12, [1, 2], value) if value is not None else None,
        partitions=3,
        replication_factor=1,
        retention_ms=int(config["retention.ms"]),
        retention_bytes=int(config["retention.bytes"]),
        cleanup_policy=config["cleanup.policy"],
        offsets=10,
        last_event_ms=1_700_000_000_000,
        retention_risk=findings_for(topic, config),
    )


def catalog() -> list[TopicEntry]:
    table = TableSchema(
        "sales",
        "customers",
        [
            Column("id", "INTEGER", nullable=False, primary_key=True),
            Column("name", "TEXT", nullable=False),
            Column("balance", "DECIMAL(12,2)"),
            Column("born", "DATE"),
            Column("updated", "TIMESTAMP"),
        ],
        ["id"],
    )
    return [
        entry("unsilo.raw.sales.customers", "raw", table.key_schema, table.value_schema),
        entry("unsilo.canonical.customer", "canonical", CANONICAL_KEY, canonical_schema("Customer")),
        entry("unsilo.outbox.order", "outbox", "string", None),
        entry(
            "unsilo.dlq.shop",
            "dlq",
            None,
            None,
            {"retention.ms": "604800000", "retention.bytes": "-1", "cleanup.policy": "compact,delete"},
        ),
    ]


def settings() -> Settings:
    return Settings(
        kafka=KafkaSettings(bootstrap_servers="kafka-1:9092,kafka-2:9092"),
        registry=RegistrySettings(url="http://registry:8081/apis/ccompat/v7"),
    )


def errors(validator: Draft7Validator, doc: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in validator.iter_errors(doc)]


def test_document_is_valid_asyncapi_3(validator: Draft7Validator) -> None:
    """The generated document passes the official AsyncAPI 3.0.0 JSON Schema."""
    doc = document(catalog(), settings())

    assert doc["asyncapi"] == "3.0.0"
    assert errors(validator, doc) == []


def test_the_schema_check_catches_a_broken_avro_payload(validator: Draft7Validator) -> None:
    """The validation really looks into the Avro payload: a record without fields is refused."""
    doc = copy.deepcopy(document(catalog(), settings()))
    doc["components"]["messages"]["unsilo.raw.sales.customers"]["payload"]["schema"] = {
        "type": "record",
        "fields": "none",
    }

    assert errors(validator, doc) != []


def test_one_channel_and_one_receive_operation_per_topic() -> None:
    """Each topic is a channel addressed by its name, received by one operation, with its partitions."""
    doc = document(catalog(), settings())

    addresses = {cid: c["address"] for cid, c in doc["channels"].items()}
    assert sorted(addresses.values()) == sorted(e.topic for e in catalog())
    for cid, channel in doc["channels"].items():
        operation = doc["operations"][f"receive.{cid}"]
        assert operation["action"] == "receive"
        assert operation["channel"] == {"$ref": f"#/channels/{cid}"}
        assert channel["bindings"]["kafka"]["partitions"] == 3
    assert doc["servers"]["kafka"]["host"] == "kafka-1:9092,kafka-2:9092"
    assert doc["servers"]["kafka"]["bindings"]["kafka"]["schemaRegistryUrl"].endswith("/ccompat/v7")


def test_payload_is_the_latest_avro_value_schema_and_the_key_is_described() -> None:
    """A raw topic's message carries its Avro envelope as payload and its Avro key schema."""
    doc = document(catalog(), settings())
    raw = doc["components"]["messages"]["unsilo.raw.sales.customers"]

    assert raw["payload"]["schemaFormat"] == AVRO_FORMAT
    assert raw["payload"]["schema"]["name"] == "Envelope"
    key = raw["bindings"]["kafka"]["key"]
    assert key["properties"] == {"id": {"type": "integer"}} and key["required"] == ["id"]
    avro_key = doc["components"]["schemas"]["unsilo.raw.sales.customers.key"]
    assert avro_key["schema"]["fields"][0]["name"] == "id"


def test_retention_settings_appear_in_the_channel_binding() -> None:
    """A topic's cleanup policy and retention are in its channel's Kafka binding."""
    doc = document(catalog(), settings())

    config = doc["channels"]["unsilo.dlq.shop"]["bindings"]["kafka"]["topicConfiguration"]
    assert config == {
        "cleanup.policy": ["compact", "delete"],
        "retention.ms": 604800000,
        "retention.bytes": -1,
    }


def test_avro_unions_and_logical_types_become_json_schema() -> None:
    """A nullable decimal becomes anyOf null or a string with format decimal."""
    avro = {
        "type": "record",
        "name": "K",
        "fields": [
            {"name": "n", "type": ["null", {"type": "bytes", "logicalType": "decimal"}], "default": None}
        ],
    }

    assert json_schema(avro) == {
        "type": "object",
        "properties": {"n": {"anyOf": [{"type": "null"}, {"type": "string", "format": "decimal"}]}},
        "required": [],
    }


def test_a_registry_password_is_not_published() -> None:
    """A registry URL with user:password@ appears in the document without the password."""
    secret = Settings(registry=RegistrySettings(url="http://reader:s3cr3t-pw@127.0.0.1:8081/apis/ccompat/v7"))

    text = json.dumps(document(catalog(), secret))

    assert "s3cr3t-pw" not in text and "127.0.0.1:8081/apis/ccompat/v7" in text
