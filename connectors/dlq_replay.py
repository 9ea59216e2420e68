"""``unsilo dlq replay`` for a source's dead letters: the change encoded again, as it is now.

A letter holds the change with its masked values (see :mod:`connectors.dead_letters`); the
replayer reads the table's current shape from the source (without capturing anything),
applies the current config (masks, key) and registers the schema if it changed, then
returns the change's records for the raw topic. :mod:`hub.dlq` publishes them and marks
the letter in one transaction.
"""

from __future__ import annotations

from pathlib import Path

from connectors.base import Change
from connectors.dead_letters import read_body
from connectors.offsets import load_position
from connectors.runner import ConnectorRunner
from hub.config import Settings, SourceSettings
from hub.dlq import DeadLetter, Output
from hub.envelope import TableSchema
from hub.errors import SourceDataError


def replayer_for(settings: Settings, stage: str, mappings: Path | None = None) -> SourceReplayer | None:
    """The replayer of the source named ``stage``; None for other stages."""
    for source in settings.sources:
        if source.name == stage:
            return SourceReplayer(settings, source)
    return None


class SourceReplayer:
    """Re-encodes a source's dead letters with the current config and table schemas."""

    def __init__(self, settings: Settings, source: SourceSettings) -> None:
        self.settings = settings
        self.source = source
        self.runner = ConnectorRunner(settings, source)
        self._schemas: dict[str, TableSchema] | None = None

    def replay(self, letter: DeadLetter) -> list[Output]:
        dead = read_body(letter.body)
        table = letter.table
        if dead.truncated:
            raise SourceDataError(
                f"{table}: this dead letter keeps only a truncated copy of {', '.join(dead.truncated)}",
                hint=f"after the fix, read the table again: unsilo snapshot {self.source.name}.{table}",
            )
        schema = self._tables().get(table)
        if schema is None:
            raise SourceDataError(
                f"table {table!r} is not captured by source {self.source.name} any more",
                hint="add it back under the source's tables in unsilo.yaml, or leave the letter",
            )
        change = Change(
            table,
            dead.op,  # type: ignore[arg-type]  # one of c/u/d/r/t, as it was dead-lettered
            dead.before,
            dead.after,
            letter.position,
            dead.ts_ms,
            snapshot=dead.snapshot,
            txid=dead.txid,
        )
        topic, records = self.runner.encode_change(change, schema, dead.masked)
        return [(topic, key, value, []) for key, value in records]

    def close(self) -> None:
        self.runner.connector.close()

    def _tables(self) -> dict[str, TableSchema]:
        """The tables' current schemas (from the source; read once per replay)."""
        if self._schemas is None:
            connector = self.runner.connector
            describe = getattr(connector, "describe_tables", None)
            if describe is not None:
                tables: list[TableSchema] = describe()
            else:
                connector.open(load_position(self.settings.kafka, self.source.name))
                tables = connector.tables()
                connector.close()
            self._schemas = {schema.table: schema for schema in tables}
        return self._schemas
