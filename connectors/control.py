"""Commands to running connectors (pause, resume, re-snapshot a table) through Kafka.

``unsilo pause|resume|snapshot`` append a command to ``_unsilo.control`` keyed by source;
each runner reads its commands from where it last committed (its own consumer group) and
commits after applying one, so a command sent while a connector is down is applied when
it starts.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Literal

import structlog
from confluent_kafka import OFFSET_END, Consumer, KafkaException, Producer, TopicPartition

from hub.config import KafkaSettings
from hub.kafka.admin import KafkaAdmin
from hub.kafka.errors import translate
from hub.kafka.topics import CONTROL_TOPIC, spec_for

log = structlog.get_logger(__name__)

CommandName = Literal["pause", "resume", "snapshot"]


@dataclass(frozen=True)
class Command:
    command: CommandName
    table: str | None = None
    id: str = ""


def send_command(settings: KafkaSettings, source: str, command: CommandName, table: str | None = None) -> str:
    """Append a command for ``source``; returns its id."""
    KafkaAdmin(settings).ensure_topics([spec_for(CONTROL_TOPIC)])
    command_id = uuid.uuid4().hex
    body = {"command": command, "table": table, "id": command_id, "ts_ms": int(time.time() * 1000)}
    producer = Producer({**settings.client_config(), "acks": "all", "enable.idempotence": True})
    try:
        producer.produce(CONTROL_TOPIC, key=source.encode("utf-8"), value=json.dumps(body).encode("utf-8"))
        if producer.flush(15) != 0:
            raise translate(None, settings.bootstrap_servers, f"sending {command} to {source}")
    except KafkaException as exc:
        raise translate(exc, settings.bootstrap_servers, f"sending {command} to {source}") from exc
    return command_id


class ControlChannel:
    """The commands addressed to one source, read without blocking the capture loop."""

    def __init__(self, settings: KafkaSettings, source: str) -> None:
        self.source = source.encode("utf-8")
        KafkaAdmin(settings).ensure_topics([spec_for(CONTROL_TOPIC)])
        self._consumer = Consumer(
            {
                **settings.client_config(),
                "group.id": f"unsilo-control-{source}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
        partition = TopicPartition(CONTROL_TOPIC, 0)
        committed = self._consumer.committed([partition], timeout=10)[0].offset
        partition.offset = committed if committed >= 0 else OFFSET_END
        self._consumer.assign([partition])

    def poll(self) -> list[Command]:
        """Commands for this source that arrived since the last call (applied = committed)."""
        found: list[Command] = []
        for message in self._consumer.consume(num_messages=50, timeout=0):
            if message.error() is not None or message.key() != self.source:
                continue
            try:
                raw = json.loads(message.value() or b"{}")
                found.append(Command(raw["command"], raw.get("table"), raw.get("id", "")))
            except (ValueError, KeyError):
                log.warning("control_command_unreadable", offset=message.offset())
        return found

    def commit(self) -> None:
        """Record that the commands returned so far were applied."""
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            if exc.args[0].code() != -168:  # _NO_OFFSET: nothing consumed yet
                log.warning("control_commit_failed", error=str(exc))

    def close(self) -> None:
        self._consumer.close()
