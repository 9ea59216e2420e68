"""The identity resolver's Kafka adapter: canonical customers, employees and commands in,
``unsilo.canonical.identity`` out, exactly once (the canonical layer's transactional loop).

It keeps no local store: at start it replays its input topics from the beginning up to the
committed offsets to rebuild the resolver (nothing is produced for them), then continues.
A source key whose party changed gets a new IdentityLink; a key whose record was deleted
gets a tombstone. ``send_command`` appends a manual link/unlink to the commands topic (one
partition, so commands keep their order).
"""

from __future__ import annotations

import getpass
import time
import uuid
from collections.abc import Sequence

import structlog
from confluent_kafka import Message

from hub.config import Settings
from hub.errors import ConfigError, UnsiloError
from hub.kafka.admin import KafkaAdmin
from hub.kafka.producer import TransactionalProducer
from hub.kafka.topics import TopicSpec, spec_for
from hub.registry import ConfluentRegistry, key_subject, value_subject
from hub.serde import AvroSerde
from projections.canonical.contract import (
    ENTITY_KEY_SCHEMA,
    HEADER_SOURCE_TS,
    IDENTITY_COMMAND_SCHEMA,
    IDENTITY_LINK_SCHEMA,
    CanonicalTopics,
)
from projections.canonical.loop import Out, TransactionalLoop
from projections.identity.resolver import Facts, IdentityResolver

log = structlog.get_logger(__name__)

ENTITIES = ("Customer", "Employee")


class IdentityStage:
    """The resolver as a :class:`~projections.canonical.loop.Stage`."""

    name = "identity"
    rebuild_from_log = True

    def __init__(self, settings: Settings, topics: CanonicalTopics) -> None:
        self.topics = topics
        self.serde = AvroSerde(ConfluentRegistry(settings.registry))
        self.entity_of = {topics.entity(entity): entity for entity in ENTITIES}
        self.resolver = IdentityResolver()
        self._key = self.serde.writer(key_subject(topics.identity), ENTITY_KEY_SCHEMA)
        self._value = self.serde.writer(value_subject(topics.identity), IDENTITY_LINK_SCHEMA)

    def inputs(self) -> list[str]:
        return [*self.entity_of, self.topics.commands]

    def start(self) -> None:
        self.resolver = IdentityResolver()

    def replay(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self._apply(message)
        self.resolver.emitted = self.resolver.links()

    def process(self, messages: Sequence[Message]) -> list[Out]:
        ts_ms = max((self._apply(message) for message in messages), default=0) or int(time.time() * 1000)
        changed, gone = self.resolver.changes()
        outputs = [
            Out(
                self.topics.identity,
                self._key.encode({"key": link.source_key}),
                self._value.encode(
                    {
                        "source_key": link.source_key,
                        "entity": link.entity,
                        "party_id": link.party_id,
                        "rule": link.rule,
                        "members": list(link.members),
                        "ts_ms": ts_ms,
                    }
                ),
            )
            for link in changed
        ]
        outputs += [Out(self.topics.identity, self._key.encode({"key": key}), None) for key in gone]
        if changed or gone:
            log.info("identity_links_changed", links=len(changed), removed=len(gone))
        return outputs

    def _apply(self, message: Message) -> int:
        """Apply one input record; its time (source commit or command time), 0 if unknown."""
        topic = message.topic() or ""
        try:
            if topic == self.topics.commands:
                command = self.serde.decode(message.value())
                if command is None:
                    return 0
                self.resolver.command(str(command["command"]), [str(k) for k in command["keys"]])
                return int(command["ts_ms"])
            key = self.serde.decode(message.key())
            value = self.serde.decode(message.value())
        except (UnsiloError, ValueError, KeyError, TypeError) as exc:
            if isinstance(exc, UnsiloError) and exc.retriable:  # the registry is away: retry, never skip
                raise
            log.warning("identity_input_skipped", topic=topic, offset=message.offset(), error=str(exc))
            return 0
        if value is None:
            if key is not None:
                self.resolver.remove(str(key["key"]))
        else:
            self.resolver.upsert(Facts.of(self.entity_of[topic], value))
        headers = dict(message.headers() or [])
        return int(headers.get(HEADER_SOURCE_TS) or 0)


def prepare(settings: Settings, topics: CanonicalTopics, *, batch_size: int = 2000) -> TransactionalLoop:
    """Create the identity topics and build the resolver's loop."""
    admin = KafkaAdmin(settings.kafka)
    admin.ensure_reachable()
    partitions = settings.kafka.topic_partitions
    admin.ensure_topics(
        [spec_for(topics.entity(entity), partitions) for entity in ENTITIES]
        + [spec_for(topics.identity, partitions), commands_spec(topics)]
    )
    return TransactionalLoop(
        settings, IdentityStage(settings, topics), topics.group("identity"), batch_size=batch_size
    )


def commands_spec(topics: CanonicalTopics) -> TopicSpec:
    """The commands topic: one partition (commands keep their order), kept forever."""
    return spec_for(topics.commands, 1)


def send_command(
    settings: Settings, topics: CanonicalTopics, command: str, keys: Sequence[str], by: str | None = None
) -> None:
    """Append a manual ``link`` or ``unlink`` of ``keys`` to the identity commands topic."""
    if command not in ("link", "unlink"):
        raise ConfigError(f"unknown identity command {command!r}", hint="use link or unlink")
    if not keys or any(":" not in key for key in keys):
        raise ConfigError(
            f"not canonical keys: {', '.join(keys) or '(none)'}",
            hint="give keys like fin:000042 or sales:C-00042",
        )
    admin = KafkaAdmin(settings.kafka)
    admin.ensure_reachable()
    admin.ensure_topics([commands_spec(topics)])
    serde = AvroSerde(ConfluentRegistry(settings.registry))
    key = serde.writer(key_subject(topics.commands), ENTITY_KEY_SCHEMA).encode({"key": keys[0]})
    value = serde.writer(value_subject(topics.commands), IDENTITY_COMMAND_SCHEMA).encode(
        {"command": command, "keys": list(keys), "by": by or _user(), "ts_ms": int(time.time() * 1000)}
    )
    producer = TransactionalProducer(
        settings.kafka, f"unsilo-identity-command-{uuid.uuid4().hex[:12]}", audit=settings.audit
    )
    producer.init()
    try:
        producer.begin()
        producer.send(topics.commands, key, value)
        producer.commit()
    finally:
        producer.close()
    log.info("identity_command_sent", command=command, keys=list(keys))


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"
