"""Routed changes (outbox events): published as-is to the topic the connector names.

A routed :class:`~connectors.base.Change` carries its topic, a string key, its value schema
and datum, and headers. Its topic gets the hub's topic policy on first use; its subjects
follow TopicNameStrategy: ``<topic>-key`` is the Avro ``"string"`` schema, ``<topic>-value``
the change's value schema.
"""

from __future__ import annotations

from typing import Any

from connectors.base import Change
from hub.config import KafkaSettings
from hub.errors import SourceDataError
from hub.kafka.admin import KafkaAdmin
from hub.kafka.topics import spec_for
from hub.registry import key_subject, value_subject
from hub.serde import AvroSerde, Writer, canonical_text

KEY_SCHEMA: dict[str, Any] = {"type": "string"}


class RoutedOutputs:
    """Topics and registered writers of routed changes, made the first time each is seen."""

    def __init__(self, kafka: KafkaSettings, serde: AvroSerde) -> None:
        self.kafka = kafka
        self.serde = serde
        self._topics: set[str] = set()
        self._writers: dict[tuple[str, str], tuple[Writer, Writer]] = {}

    def encode(self, change: Change) -> tuple[str, bytes, bytes]:
        """The change's topic, key and value in Confluent wire format.

        SourceDataError when the change lacks a topic, key or schema; SerializationError
        when its value does not fit its schema (both go to the dead-letter topic).
        """
        topic, schema = change.topic, change.value_schema
        if not topic or change.key is None or schema is None:
            raise SourceDataError(
                f"{change.table}: routed change {change.position} has no "
                f"{'topic' if not topic else 'key' if change.key is None else 'value schema'}"
            )
        if topic not in self._topics:
            KafkaAdmin(self.kafka).ensure_topics([spec_for(topic, self.kafka.topic_partitions)])
            self._topics.add(topic)
        cache_key = (topic, canonical_text(schema))
        writers = self._writers.get(cache_key)
        if writers is None:
            writers = (
                self.serde.writer(key_subject(topic), KEY_SCHEMA),
                self.serde.writer(value_subject(topic), schema),
            )
            self._writers[cache_key] = writers
        key_writer, value_writer = writers
        return topic, key_writer.encode(change.key), value_writer.encode(change.after)
