"""``unsilo dlq replay --stage canonical``: raw events that no mapping could take, mapped again.

A canonical dead letter names its mapping and the raw record it came from (source topic
and offset; raw topics keep everything). The replayer reads that record again and runs it
through that one mapping as the mapping file says now; what it produces is published by
:mod:`hub.dlq` with the letter's mark, in one transaction. A letter whose event could not
even be decoded (mapping ``?``) cannot be replayed this way.

Like any replay, the record is delivered now: after newer records with the same key, if
the entity changed since.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, TopicPartition

from hub.canonical_schemas import canonical_schemas
from hub.config import Settings
from hub.dlq import DeadLetter, Output
from hub.errors import MappingError, SourceDataError
from hub.kafka.consumer import consumer_config
from hub.kafka.errors import translate
from hub.mapping import DEMO_MAPPINGS, EntityMapping, load_mappings
from hub.registry import ConfluentRegistry
from hub.serde import AvroSerde
from projections.canonical.contract import HEADER_ERROR, CanonicalTopics
from projections.canonical.transform import Canonicalizer

STAGE = "canonical"


def replayer_for(settings: Settings, stage: str, mappings: Path | None = None) -> CanonicalReplayer | None:
    """The canonical layer's replayer for ``canonical`` or ``canonical.<namespace>``."""
    if stage != STAGE and not stage.startswith(f"{STAGE}."):
        return None
    return CanonicalReplayer(settings, CanonicalTopics(stage.removeprefix(STAGE).lstrip(".")), mappings)


class CanonicalReplayer:
    """Maps a dead-lettered raw event again with the current mapping file."""

    def __init__(self, settings: Settings, topics: CanonicalTopics, mappings: Path | None) -> None:
        self.settings = settings
        self.topics = topics
        self.mappings = {m.name: m for m in load_mappings(mappings or DEMO_MAPPINGS)}
        self.serde = AvroSerde(ConfluentRegistry(settings.registry))
        self.consumer = Consumer(consumer_config(settings.kafka))

    def replay(self, letter: DeadLetter) -> list[Output]:
        mapping = self._mapping(letter.headers.get("unsilo.mapping", "?"))
        topic = letter.headers.get("unsilo.source.topic", "")
        offset = int(letter.headers.get("unsilo.source.offset", "-1"))
        record = self._raw_record(topic, offset, letter.key)
        outputs = Canonicalizer([mapping], self.serde, self.topics, canonical_schemas()).transform_one(record)
        for out in outputs:
            if out.topic == self.topics.dlq:
                reason = dict(out.headers).get(HEADER_ERROR, b"").decode("utf-8", "replace")
                raise MappingError(
                    reason.removeprefix(f"cannot map a row of {mapping.name}: "), mapping=mapping.name
                )
        return [(out.topic, out.key, out.value, list(out.headers)) for out in outputs]

    def close(self) -> None:
        self.consumer.close()

    def _mapping(self, name: str) -> EntityMapping:
        found = self.mappings.get(name)
        if found is None:
            raise SourceDataError(
                f"no mapping {name!r} in the mapping file"
                if name != "?"
                else "the raw event could not be decoded",
                hint="pass the mapping file the canonicalizer runs with: --mappings <file>",
            )
        return found

    def _raw_record(self, topic: str, offset: int, key: bytes | None) -> Message:
        """The raw record at ``offset`` of ``topic`` whose key is ``key`` (its partition is not kept)."""
        metadata = self.consumer.list_topics(topic, timeout=30).topics.get(topic)
        partitions = sorted(metadata.partitions) if metadata is not None and metadata.error is None else []
        for partition in partitions:
            found = self._read_at(TopicPartition(topic, partition, offset))
            if found is not None and found.key() == key:
                return found
        raise SourceDataError(f"the raw record {topic}@{offset} is gone (retention?)")

    def _read_at(self, where: TopicPartition) -> Message | None:
        self.consumer.assign([where])
        try:
            for _ in range(40):
                message: Any = self.consumer.poll(0.5)
                if message is None:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return None
                    raise translate(error, self.settings.kafka.bootstrap_servers, f"reading {where.topic}")
                return message if message.offset() == where.offset else None
            return None
        finally:
            self.consumer.unassign()
