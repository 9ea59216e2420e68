"""Where each captured table's events go, and what happens when its schema changes.

A table's key and value schemas are registered once; when the connector reports a new
shape (a column added, dropped, renamed or widened), the new value schema is checked
against the registry's compatibility rule *before* the first event that needs it. If the
registry would refuse it, the table is stopped with the reason and the fix, and its
events go to the source's quarantine topic (with their position) so nothing is lost;
the source's other tables go on.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import structlog

from hub.envelope import TableSchema
from hub.errors import IncompatibleSchemaError
from hub.kafka.topics import raw_topic
from hub.raw_rows import RawRowEncoder
from hub.registry import ConfluentRegistry, key_subject, value_subject
from hub.serde import AvroSerde, Writer, canonical_text

log = structlog.get_logger(__name__)


@dataclass
class TableOut:
    """A table's topic and registered writers for its current schema."""

    schema: TableSchema
    topic: str
    key: Writer
    value: Writer
    _raw: tuple[TableSchema, RawRowEncoder | None] | None = field(default=None, repr=False)

    def raw(self) -> RawRowEncoder | None:
        """The source-row encoder for the current schema (None: convert every row first)."""
        if self._raw is None or self._raw[0] is not self.schema:
            self._raw = (self.schema, RawRowEncoder.for_table(self.schema, self.key, self.value))
        return self._raw[1]


@dataclass(frozen=True)
class StoppedTable:
    """Why a table's events go to quarantine, and what the user can do about it."""

    reason: str
    fix: str


class TableOutputs:
    """The TableOut of each table, re-registered (after a compatibility check) on change."""

    def __init__(self, system: str, serde: AvroSerde, registry: ConfluentRegistry) -> None:
        self.system = system
        self.serde = serde
        self.registry = registry
        self._outs: dict[str, TableOut] = {}
        self.stopped: dict[str, StoppedTable] = {}

    def topics(self, schemas: list[TableSchema]) -> list[str]:
        return sorted({raw_topic(self.system, s.table) for s in schemas})

    def get(self, schema: TableSchema) -> TableOut:
        """The TableOut for ``schema``; IncompatibleSchemaError when the registry refuses it."""
        current = self._outs.get(schema.table)
        if current is not None and (current.schema is schema or _same_shape(current.schema, schema)):
            current.schema = schema
            return current
        stopped = self.stopped.get(schema.table)
        if stopped is not None:
            raise IncompatibleSchemaError(stopped.reason, hint=stopped.fix)
        topic = raw_topic(self.system, schema.table)
        if current is not None:
            self._preflight(topic, schema)
        out = TableOut(
            schema,
            topic,
            self.serde.writer(key_subject(topic), schema.key_schema),
            self.serde.writer(value_subject(topic), schema.value_schema),
        )
        if current is not None:
            log.info("table_schema_evolved", table=schema.table, topic=topic, schema_id=out.value.schema_id)
        self._outs[schema.table] = out
        return out

    def _preflight(self, topic: str, schema: TableSchema) -> None:
        for subject, candidate in (
            (key_subject(topic), schema.key_schema),
            (value_subject(topic), schema.value_schema),
        ):
            if self.registry.is_compatible(subject, candidate):
                continue
            stopped = StoppedTable(
                reason=f"the registry refuses the new schema of {schema.table} for {subject} "
                "under its compatibility rule",
                fix="make the change compatible (new columns nullable or with a default), or relax "
                f"the rule for {subject} in the registry, then restart the connector; the events "
                "meanwhile are in the quarantine topic",
            )
            self.stopped[schema.table] = stopped
            log.error("table_stopped", table=schema.table, subject=subject, reason=stopped.reason)
            raise IncompatibleSchemaError(stopped.reason, hint=stopped.fix)


def _same_shape(old: TableSchema, new: TableSchema) -> bool:
    return canonical_text(old.value_schema) == canonical_text(new.value_schema) and canonical_text(
        old.key_schema
    ) == canonical_text(new.key_schema)
