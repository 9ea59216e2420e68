"""An AsyncAPI 3.0.0 document of the hub's topics, generated from the catalog.

One server (the Kafka bootstrap, with the schema registry in its Kafka binding); one
channel per topic (address = the topic name, Kafka binding with partitions and the
retention settings); one ``receive`` operation per channel, as downstream systems
consume. A message's payload is the latest value schema in Avro (a Multi Format Schema
Object, ``application/vnd.apache.avro;version=1.9.0``), its key the latest key schema,
referenced from the Kafka message binding. Wire format: Confluent's (magic byte, 4-byte
schema id, Avro binary), subjects by TopicNameStrategy.
"""

from __future__ import annotations

import re
from typing import Any

from hub.catalog import SchemaInfo, TopicEntry
from hub.config import Settings
from hub.redact import without_password

ASYNCAPI_VERSION = "3.0.0"
AVRO_FORMAT = "application/vnd.apache.avro;version=1.9.0"
KAFKA_BINDING = "0.5.0"
_ID_UNSAFE = re.compile(r"[^\w.\-]")

_DESCRIPTION = {
    "raw": "Every change captured from {system}.{table}: a Debezium-style envelope "
    "(before, after, op, ts_ms, source). A delete is followed by a tombstone (null value).",
    "canonical": "The canonical entity {entity}, mapped from the raw topics and identity-resolved. "
    "Headers: unsilo.op, unsilo.source.ts_ms, unsilo.source.topic, unsilo.source.offset. "
    "A source delete is a tombstone (null value).",
    "outbox": "Domain events of aggregate type {entity} from a transactional outbox table; "
    "de-duplicate on the unsilo.event_id header.",
    "dlq": "Records that could not be processed, with the reason in the unsilo.error header.",
    "quarantine": "Events whose new schema the registry refused, kept until the schema is fixed.",
}


def channel_id(topic: str) -> str:
    """A channel id for ``topic`` (topic names are valid ids; anything else becomes _)."""
    return _ID_UNSAFE.sub("_", topic)


def document(catalog: list[TopicEntry], settings: Settings, *, version: str = "0.1.0") -> dict[str, Any]:
    """The AsyncAPI 3.0.0 document (a JSON-ready dict) describing ``catalog``."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for entry in catalog:
        cid = channel_id(entry.topic)
        message = _message(entry, cid, schemas)
        messages[cid] = message
        channels[cid] = _channel(entry, cid)
        operations[f"receive.{cid}"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{cid}"},
            "summary": f"Consume {entry.topic}",
            "messages": [{"$ref": f"#/channels/{cid}/messages/{cid}"}],
        }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "Unsilo topics",
            "version": version,
            "description": "Change events captured from legacy systems and the canonical entities "
            "built from them. Values and keys are Avro in Confluent's wire format; subjects follow "
            "TopicNameStrategy (<topic>-key, <topic>-value). Read with isolation.level=read_committed.",
        },
        "defaultContentType": "application/vnd.apache.avro+binary",
        "servers": {
            "kafka": {
                "host": settings.kafka.bootstrap_servers,
                "protocol": "kafka",
                "description": "The hub's Kafka cluster (bootstrap servers).",
                "bindings": {
                    "kafka": {
                        "schemaRegistryUrl": without_password(settings.registry.url),
                        "schemaRegistryVendor": "confluent",
                        "bindingVersion": KAFKA_BINDING,
                    }
                },
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


def _channel(entry: TopicEntry, cid: str) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if entry.cleanup_policy:
        config["cleanup.policy"] = [p.strip() for p in entry.cleanup_policy.split(",")]
    if entry.retention_ms is not None:
        config["retention.ms"] = entry.retention_ms
    if entry.retention_bytes is not None:
        config["retention.bytes"] = entry.retention_bytes
    binding: dict[str, Any] = {"partitions": max(entry.partitions, 1), "bindingVersion": KAFKA_BINDING}
    if entry.replication_factor >= 1:
        binding["replicas"] = entry.replication_factor
    if config:
        binding["topicConfiguration"] = config
    channel: dict[str, Any] = {
        "address": entry.topic,
        "messages": {cid: {"$ref": f"#/components/messages/{cid}"}},
        "bindings": {"kafka": binding},
    }
    described = _describe(entry)
    if described:
        channel["description"] = described
    return channel


def _message(entry: TopicEntry, cid: str, schemas: dict[str, Any]) -> dict[str, Any]:
    message: dict[str, Any] = {"name": cid, "title": f"{entry.topic} record"}
    if entry.value is not None:
        message["payload"] = _avro(entry.value)
        message["contentType"] = "application/vnd.apache.avro+binary"
    else:
        message["contentType"] = "application/octet-stream"
    binding: dict[str, Any] = {"bindingVersion": KAFKA_BINDING}
    if entry.key is not None:
        # The binding's key must be an AsyncAPI (JSON) schema: a $ref there matches both branches
        # of the spec's oneOf. So: the key as JSON Schema, and the Avro key schema alongside.
        schemas[f"{cid}.key"] = _avro(entry.key)
        binding["key"] = {
            **json_schema(entry.key.schema),
            "description": f"Avro, subject {entry.key.subject}",
        }
        binding["x-avro-key-schema"] = {"$ref": f"#/components/schemas/{cid}.key"}
    if entry.key is not None or entry.value is not None:
        binding.update(
            schemaIdLocation="payload", schemaIdPayloadEncoding="4", schemaLookupStrategy="TopicNameStrategy"
        )
    message["bindings"] = {"kafka": binding}
    return message


def _avro(info: SchemaInfo) -> dict[str, Any]:
    return {"schemaFormat": AVRO_FORMAT, "schema": info.schema}


def _describe(entry: TopicEntry) -> str:
    template = _DESCRIPTION.get(entry.kind, "")
    owner = entry.owner
    text = template.format(system=owner.system or "?", table=owner.table or "?", entity=owner.entity or "?")
    if entry.read_models:
        text += f" Read by: {', '.join(entry.read_models)}."
    return text.strip()


_JSON_TYPES = {
    "string": "string",
    "bytes": "string",
    "fixed": "string",
    "enum": "string",
    "int": "integer",
    "long": "integer",
    "float": "number",
    "double": "number",
    "boolean": "boolean",
    "null": "null",
}


def json_schema(avro: Any) -> dict[str, Any]:
    """A JSON Schema of the JSON form of an Avro ``avro`` schema (records, primitives, unions)."""
    if isinstance(avro, list):
        return {"anyOf": [json_schema(branch) for branch in avro]}
    if isinstance(avro, str):
        return {"type": _JSON_TYPES[avro]} if avro in _JSON_TYPES else {}
    if not isinstance(avro, dict):
        return {}
    kind = avro.get("type")
    if kind == "record":
        fields = avro.get("fields", [])
        return {
            "type": "object",
            "properties": {f["name"]: json_schema(f["type"]) for f in fields},
            "required": [f["name"] for f in fields if "default" not in f],
        }
    if kind == "array":
        return {"type": "array", "items": json_schema(avro.get("items"))}
    if kind == "map":
        return {"type": "object", "additionalProperties": json_schema(avro.get("values"))}
    found = json_schema(kind)
    if "logicalType" in avro:
        found["format"] = str(avro["logicalType"])
    return found
