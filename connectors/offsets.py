"""Connector source positions in the compacted ``_unsilo.offsets`` topic.

The position record is written in the same Kafka transaction as the data it follows, so
the latest committed position always matches the data that is in the log.
"""

from __future__ import annotations

import json

from connectors.base import Position
from hub.config import KafkaSettings
from hub.kafka.consumer import read_to_end
from hub.kafka.topics import OFFSETS_TOPIC


def position_key(connector: str) -> bytes:
    return connector.encode("utf-8")


def encode_position(position: Position) -> bytes:
    return json.dumps(position, sort_keys=True, default=str).encode("utf-8")


def load_position(settings: KafkaSettings, connector: str) -> Position | None:
    """The last committed position of ``connector``, or None if it never committed one."""
    wanted = position_key(connector)
    latest: Position | None = None
    for message in read_to_end(settings, OFFSETS_TOPIC):
        if message.key() == wanted:
            value = message.value()
            latest = json.loads(value) if value else None
    return latest
