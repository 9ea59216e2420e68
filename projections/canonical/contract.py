"""Names and schemas of the canonical layer's topics: the contract read models build on.

See the package docstring (:mod:`projections.canonical`) for the contract in words. A
``namespace`` (empty in production) moves every topic, group and transactional id of one
deployment aside, so tests and side-by-side estates never share a topic.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from hub.kafka.topics import topic_part

BASE = "unsilo.canonical"
HEADER_OP = "unsilo.op"
HEADER_SOURCE_TS = "unsilo.source.ts_ms"
HEADER_SOURCE_TOPIC = "unsilo.source.topic"
HEADER_SOURCE_OFFSET = "unsilo.source.offset"
HEADER_ERROR = "unsilo.error"
HEADER_ERROR_CLASS = "unsilo.error.class"
HEADER_MAPPING = "unsilo.mapping"

_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

ENTITY_KEY_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "EntityKey",
    "namespace": "io.unsilo.canonical",
    "doc": "The Kafka key of canonical and identity records: one entity's canonical key.",
    "fields": [
        {"name": "key", "type": "string", "doc": "system prefix, a colon and the source key, e.g. fin:000042"}
    ],
}

IDENTITY_LINK_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "IdentityLink",
    "namespace": "io.unsilo.canonical",
    "doc": "Which party (real customer or employee) one source key belongs to, and why.",
    "fields": [
        {"name": "source_key", "type": "string", "doc": "the canonical key of the source record"},
        {"name": "entity", "type": "string", "doc": "Customer or Employee"},
        {"name": "party_id", "type": "string", "doc": "'party:' and the smallest member key"},
        {
            "name": "rule",
            "type": "string",
            "doc": "how this key joined its party: reference, tax_id, email, manual, or self (alone)",
        },
        {
            "name": "members",
            "type": {"type": "array", "items": "string"},
            "doc": "every source key of the party, sorted",
        },
        {"name": "ts_ms", "type": "long", "doc": "time of the latest input that led to this link"},
    ],
}

IDENTITY_COMMAND_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "IdentityCommand",
    "namespace": "io.unsilo.canonical",
    "doc": "A manual identity correction, made with `unsilo link` or `unsilo unlink`.",
    "fields": [
        {"name": "command", "type": "string", "doc": "link (keys are one party) or unlink (split keys out)"},
        {"name": "keys", "type": {"type": "array", "items": "string"}, "doc": "the source keys"},
        {"name": "by", "type": "string", "doc": "who asked (user name)"},
        {"name": "ts_ms", "type": "long", "doc": "when, ms since epoch"},
    ],
}


def snake_case(entity: str) -> str:
    """``OrderLine`` -> ``order_line``."""
    return _CAMEL.sub("_", entity).lower()


@dataclass(frozen=True)
class CanonicalTopics:
    """Topic names, group ids and transactional ids of one canonical deployment."""

    namespace: str = ""

    @property
    def _base(self) -> str:
        return f"{BASE}.{topic_part(self.namespace)}" if self.namespace else BASE

    def _suffix(self, sep: str) -> str:
        return f"{sep}{topic_part(self.namespace)}" if self.namespace else ""

    def entity(self, entity: str) -> str:
        """``unsilo.canonical.<entity in snake_case>``."""
        return f"{self._base}.{snake_case(entity)}"

    @property
    def identity(self) -> str:
        return f"{self._base}.identity"

    @property
    def commands(self) -> str:
        return f"{self._base}.identity_commands"

    @property
    def dlq(self) -> str:
        return f"unsilo.dlq.canonical{self._suffix('.')}"

    @property
    def status_key(self) -> str:
        return f"canonical{self._suffix('.')}"

    def group(self, stage: str) -> str:
        """Consumer group (and transactional id) of ``stage``: canonicalizer or identity."""
        return f"unsilo-{stage}{self._suffix('-')}"
