"""Behaviour every connector shows, as a base class each backend's tests subclass once.

A subclass fills in the hooks: ``make_connector`` creates the backend's ``customers``
table (``id`` integer primary key, ``name`` text) holding ``rows`` rows named
``customer <id>`` and returns a connector over it, not yet opened; ``insert``, ``update``
and ``delete`` change the table in their own committed transactions, as another program
would; ``position_order`` turns a change's position into something that sorts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.base import Batch, Change, Connector

BATCH = 2  # smaller than the rows the tests create, so snapshots come in several chunks


def drain(connector: Connector, max_changes: int = BATCH, limit: int = 100) -> list[Batch]:
    """Every batch ``poll`` hands out until it has nothing new (at most ``limit`` polls)."""
    batches = []
    for _ in range(limit):
        batch = connector.poll(max_changes)
        if batch is None:
            return batches
        batches.append(batch)
    raise AssertionError(f"poll still returned batches after {limit} calls")


def changes_of(batches: list[Batch]) -> list[Change]:
    return [change for batch in batches for change in batch.changes]


class ConnectorContract:
    """Snapshot, then stream, from any position handed out; subclass once per backend."""

    # -- hooks -----------------------------------------------------------------------

    def make_connector(self, tmp_path: Path, rows: int) -> Connector:
        raise NotImplementedError

    def insert(self, row_id: int, name: str) -> None:
        raise NotImplementedError

    def update(self, row_id: int, name: str) -> None:
        raise NotImplementedError

    def delete(self, row_id: int) -> None:
        raise NotImplementedError

    def position_order(self, position: str) -> Any:
        return int(position)

    # -- the contract ----------------------------------------------------------------

    def test_snapshot_reads_existing_rows_in_key_order_chunks(self, tmp_path: Path) -> None:
        """Existing rows arrive once each as 'r' reads, at most a batch at a time, in key order."""
        connector = self.make_connector(tmp_path, rows=5)
        connector.open(None)

        batches = drain(connector)

        reads = changes_of(batches)
        assert [c.after["id"] for c in reads if c.after] == [1, 2, 3, 4, 5]
        assert {(c.op, c.snapshot, c.table) for c in reads} == {("r", True, "customers")}
        assert all(c.before is None for c in reads)
        assert reads[0].after == {"id": 1, "name": "customer 1"}
        assert [len(b.changes) for b in batches] == [2, 2, 1]

    def test_changes_after_open_stream_as_create_update_delete(self, tmp_path: Path) -> None:
        """After the snapshot, an insert, update and delete arrive as c, u, d with before/after images."""
        connector = self.make_connector(tmp_path, rows=1)
        connector.open(None)
        drain(connector)

        self.insert(2, "Ada")
        self.update(2, "Ada Lovelace")
        self.delete(1)
        changes = changes_of(drain(connector))

        assert [(c.op, c.before, c.after) for c in changes] == [
            ("c", None, {"id": 2, "name": "Ada"}),
            ("u", {"id": 2, "name": "Ada"}, {"id": 2, "name": "Ada Lovelace"}),
            ("d", {"id": 1, "name": "customer 1"}, None),
        ]
        assert not any(c.snapshot for c in changes)
        positions = [self.position_order(c.position) for c in changes]
        assert positions == sorted(positions)
        assert len(set(positions)) == 3

    def test_nothing_new_means_no_batch(self, tmp_path: Path) -> None:
        """Once everything is handed out, poll returns None until the table changes again."""
        connector = self.make_connector(tmp_path, rows=1)
        connector.open(None)
        drain(connector)

        idle = connector.poll(BATCH)
        self.insert(9, "late")
        woken = connector.poll(BATCH)

        assert idle is None
        assert woken is not None
        assert [(c.op, c.after) for c in woken.changes] == [("c", {"id": 9, "name": "late"})]

    def test_changes_during_snapshot_come_before_the_next_chunk(self, tmp_path: Path) -> None:
        """A row changed mid-snapshot is published as a change before the chunk that reads it."""
        connector = self.make_connector(tmp_path, rows=4)
        connector.open(None)
        first = connector.poll(BATCH)
        assert first is not None
        assert [c.after["id"] for c in first.changes if c.after] == [1, 2]

        self.update(3, "changed while snapshotting")  # not read yet
        self.update(1, "changed after its read")  # already read
        self.insert(10, "inserted while snapshotting")  # more log than one batch
        rest = changes_of(drain(connector))

        ops = [(c.op, (c.after or c.before or {})["id"]) for c in rest]
        assert ops == [("u", 3), ("u", 1), ("c", 10), ("r", 3), ("r", 4), ("r", 10)]
        assert rest[3].after == {"id": 3, "name": "changed while snapshotting"}
        assert rest[5].after == {"id": 10, "name": "inserted while snapshotting"}

    def test_reopening_at_an_earlier_position_replays_from_there(self, tmp_path: Path) -> None:
        """Opening again with a position handed out earlier yields the same changes after it again."""
        connector = self.make_connector(tmp_path, rows=1)
        connector.open(None)
        snapshot = drain(connector)
        resume_at = snapshot[-1].position
        self.insert(2, "two")
        self.insert(3, "three")
        first_time = changes_of(drain(connector))

        connector.open(resume_at)
        second_time = changes_of(drain(connector))

        assert [c.after for c in first_time] == [{"id": 2, "name": "two"}, {"id": 3, "name": "three"}]
        assert second_time == first_time

    def test_rewinding_into_a_snapshot_resumes_the_snapshot(self, tmp_path: Path) -> None:
        """A position taken mid-snapshot resumes reading after the last key it had read."""
        connector = self.make_connector(tmp_path, rows=5)
        connector.open(None)
        first = connector.poll(BATCH)
        assert first is not None
        drain(connector)

        connector.open(first.position)
        replayed = changes_of(drain(connector))

        assert [(c.op, c.after["id"]) for c in replayed if c.after] == [("r", 3), ("r", 4), ("r", 5)]
