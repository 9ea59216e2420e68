"""Topic names and the topic policy of DESIGN.md.

Raw and outbox topics keep history forever (the audit trail); ``_unsilo.offsets`` is compacted
(only the latest source position per connector matters); DLQ topics keep everything.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

OFFSETS_TOPIC = "_unsilo.offsets"
STATUS_TOPIC = "_unsilo.status"
CONTROL_TOPIC = "_unsilo.control"
CHAIN_TOPIC = "_unsilo.chain"  # HMAC-signed chain-head checkpoints, one key per topic-partition
DLQ_REPLAYED_TOPIC = "_unsilo.dlq_replayed"  # what `unsilo dlq replay` did with each dead letter
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")

KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
COMPACTED = {"cleanup.policy": "compact", "min.compaction.lag.ms": "0", "segment.ms": "3600000"}


def topic_part(name: str) -> str:
    """``name`` made safe for a topic name (Kafka allows letters, digits, . _ -)."""
    return _UNSAFE.sub("_", name)


def raw_topic(system: str, table: str) -> str:
    return f"unsilo.raw.{topic_part(system)}.{topic_part(table)}"


def canonical_topic(entity: str) -> str:
    return f"unsilo.canonical.{topic_part(entity)}"


def dlq_topic(stage: str) -> str:
    return f"unsilo.dlq.{topic_part(stage)}"


def outbox_topic(aggregate_type: str) -> str:
    """Domain events of one aggregate type, routed from transactional outbox tables."""
    return f"unsilo.outbox.{topic_part(aggregate_type)}"


def quarantine_topic(source: str) -> str:
    """Events of a source's tables whose new schema the registry refused (kept, not lost)."""
    return f"unsilo.quarantine.{topic_part(source)}"


@dataclass(frozen=True)
class TopicSpec:
    """A topic as the hub wants it: partitions and configs."""

    name: str
    partitions: int = 1
    config: dict[str, str] = field(default_factory=dict)


def spec_for(name: str, partitions: int = 1) -> TopicSpec:
    """The policy for ``name``, decided by its prefix."""
    if name in (OFFSETS_TOPIC, STATUS_TOPIC, CHAIN_TOPIC, DLQ_REPLAYED_TOPIC):
        return TopicSpec(name, 1, dict(COMPACTED))
    if name.startswith(
        ("unsilo.raw.", "unsilo.canonical.", "unsilo.outbox.", "unsilo.dlq.", "unsilo.quarantine.")
    ):
        return TopicSpec(name, partitions, dict(KEEP_FOREVER))
    return TopicSpec(name, partitions, {})
