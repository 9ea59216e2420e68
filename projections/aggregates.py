"""Read models made of sums: each canonical record contributes amounts to a few buckets.

A record's contribution (to which buckets, how much) is remembered per record key, so an
update first takes the old contribution back and a delete (tombstone) takes it back for
good. Contributions, bucket sums and the consumed offsets are written in one SQL
transaction, and events at or below the recorded offset are skipped: each event counts
exactly once, whatever is redelivered. Sums are exact (Decimal stored as text on SQLite).
"""

from __future__ import annotations

import decimal
import json
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, Text, and_, bindparam, select
from sqlalchemy.exc import SQLAlchemyError

from hub.errors import ReadModelError
from projections import tracking
from projections.events import RawEvent
from projections.table_mirror.tables import ExactDecimal

log = structlog.get_logger(__name__)

Bucket = tuple[str, ...]


@dataclass(frozen=True)
class Contribution:
    """What one record adds to one bucket of one aggregate table."""

    table: str
    bucket: Bucket
    amounts: dict[str, decimal.Decimal]


Contributor = Callable[[dict[str, Any]], list[Contribution]]


@dataclass(frozen=True)
class AggregateTable:
    """An aggregate table: its bucket columns and its summed measures."""

    name: str
    bucket_columns: tuple[str, ...]
    measures: tuple[str, ...]


class AggregateBuilder(tracking.TrackedBuilder):
    """Applies records of the topics in ``contributors`` to the ``tables`` sums."""

    def __init__(
        self,
        engine: Engine,
        projection: str,
        tables: Sequence[AggregateTable],
        contributors: dict[str, Contributor],
        table_suffix: str = "",
    ) -> None:
        super().__init__(engine, projection)
        self.contributors = contributors
        self.specs = {t.name: t for t in tables}
        self.metadata = MetaData()
        self.tables = {
            t.name: Table(
                t.name + table_suffix,
                self.metadata,
                *(Column(c, String(200), primary_key=True) for c in t.bucket_columns),
                *(Column(m, ExactDecimal(38, 6), nullable=False) for m in t.measures),
            )
            for t in tables
        }
        self._items_name = f"{projection.removesuffix('__rebuild')}_items"
        self.items = Table(
            self._items_name + table_suffix,
            self.metadata,
            Column("topic", String(255), primary_key=True),
            Column("key", String(255), primary_key=True),
            Column("contributions", Text, nullable=False),
        )
        try:
            with engine.begin() as conn, tracking.schema_lock(conn):
                self.metadata.create_all(conn)
                tracking.metadata.create_all(conn)
        except SQLAlchemyError as exc:
            raise ReadModelError(f"cannot prepare read model {projection}: {exc}") from exc

    def table_names(self) -> list[str]:
        """The live (unsuffixed) names of this read model's tables."""
        return [*self.specs, self._items_name]

    def apply_new(self, conn: Connection, events: Sequence[RawEvent]) -> int:
        """Take back each record's previous contribution and add its new one."""
        deltas: dict[tuple[str, Bucket], dict[str, decimal.Decimal]] = defaultdict(
            lambda: defaultdict(decimal.Decimal)
        )
        wanted = [e for e in events if e.topic in self.contributors and e.key is not None]
        current = self._stored(conn, {(e.topic, str(e.key["key"])) for e in wanted if e.key is not None})
        applied = 0
        for event in wanted:
            assert event.key is not None
            contribute = self.contributors[event.topic]
            item = (event.topic, str(event.key["key"]))
            for old in current[item]:
                for measure, amount in old.amounts.items():
                    deltas[(old.table, old.bucket)][measure] -= amount
            new = contribute(event.value) if event.value is not None else []
            for contribution in new:
                for measure, amount in contribution.amounts.items():
                    deltas[(contribution.table, contribution.bucket)][measure] += amount
            current[item] = new
            applied += 1
        self._write_items(conn, current)
        self._write_sums(conn, deltas)
        return applied

    def _stored(
        self, conn: Connection, items: set[tuple[str, str]]
    ) -> dict[tuple[str, str], list[Contribution]]:
        """The recorded contributions of ``items`` (empty for records seen the first time)."""
        found: dict[tuple[str, str], list[Contribution]] = {item: [] for item in items}
        by_topic: dict[str, list[str]] = defaultdict(list)
        for topic, key in items:
            by_topic[topic].append(key)
        for topic, keys in by_topic.items():
            for start in range(0, len(keys), 500):
                rows = conn.execute(
                    select(self.items.c.key, self.items.c.contributions).where(
                        self.items.c.topic == topic, self.items.c.key.in_(keys[start : start + 500])
                    )
                )
                for key, body in rows:
                    found[(topic, key)] = [
                        Contribution(
                            c["table"],
                            tuple(c["bucket"]),
                            {m: decimal.Decimal(a) for m, a in c["amounts"].items()},
                        )
                        for c in json.loads(body)
                    ]
        return found

    def _write_items(self, conn: Connection, current: dict[tuple[str, str], list[Contribution]]) -> None:
        """Replace the recorded contributions of the batch's records, in two bulk statements."""
        if not current:
            return
        items = self.items
        conn.execute(
            items.delete().where(and_(items.c.topic == bindparam("t"), items.c.key == bindparam("k"))),
            [{"t": topic, "k": key} for topic, key in current],
        )
        rows = [
            {
                "topic": topic,
                "key": key,
                "contributions": json.dumps(
                    [
                        {
                            "table": c.table,
                            "bucket": list(c.bucket),
                            "amounts": {m: str(a) for m, a in c.amounts.items()},
                        }
                        for c in contributions
                    ]
                ),
            }
            for (topic, key), contributions in current.items()
            if contributions
        ]
        if rows:
            conn.execute(items.insert(), rows)

    def _write_sums(
        self, conn: Connection, deltas: dict[tuple[str, Bucket], dict[str, decimal.Decimal]]
    ) -> None:
        for (name, bucket), changes in deltas.items():
            spec, table = self.specs[name], self.tables[name]
            where = and_(
                *(table.c[col] == value for col, value in zip(spec.bucket_columns, bucket, strict=True))
            )
            row = conn.execute(select(*(table.c[m] for m in spec.measures)).where(where)).first()
            sums = {
                m: (row[i] if row is not None else decimal.Decimal(0)) for i, m in enumerate(spec.measures)
            }
            for measure, amount in changes.items():
                sums[measure] += amount
            if not any(sums.values()):  # nothing left in the bucket: it disappears
                conn.execute(table.delete().where(where))
            elif row is not None:
                conn.execute(table.update().where(where).values(**sums))
            else:
                conn.execute(
                    table.insert().values(**dict(zip(spec.bucket_columns, bucket, strict=True)), **sums)
                )
