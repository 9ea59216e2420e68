"""Decoded log records as projections see them, and the builder protocol they feed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hub.serde import AvroSerde


@dataclass(frozen=True)
class RawEvent:
    """One decoded record of a topic (``value`` None for a tombstone)."""

    topic: str
    partition: int
    offset: int
    key: dict[str, Any] | None
    value: dict[str, Any] | None
    key_schema: dict[str, Any] | None
    value_schema: dict[str, Any] | None


class Builder(Protocol):
    """A read model's plain-code logic: apply events exactly once, report what it applied."""

    def apply(self, events: Sequence[RawEvent]) -> int: ...

    def applied_offsets(self) -> dict[tuple[str, int], int]: ...


def decode(
    serde: AvroSerde, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
) -> RawEvent:
    """A RawEvent from the raw bytes of a record."""
    key_datum, key_schema = serde.decode_with_schema(key) if key else (None, None)
    value_datum, value_schema = serde.decode_with_schema(value) if value else (None, None)
    return RawEvent(topic, partition, offset, key_datum, value_datum, key_schema, value_schema)
