"""Changes built in bulk for a snapshot chunk are the changes built one by one."""

from __future__ import annotations

import dataclasses

import pytest

from connectors.base import Change


def test_snapshot_reads_equal_changes_built_one_by_one() -> None:
    rows = [{"id": i, "name": f"row {i}"} for i in range(5)]
    bulk = Change.snapshot_reads("orders", rows, "0/16B3748", 1_700_000_000_000)
    single = [Change("orders", "r", None, row, "0/16B3748", 1_700_000_000_000, snapshot=True) for row in rows]
    assert bulk == single
    assert [change.after for change in bulk] == rows
    assert len({id(change) for change in bulk}) == len(rows)
    with pytest.raises(dataclasses.FrozenInstanceError):
        bulk[0].op = "c"  # type: ignore[misc]
    assert Change.snapshot_reads("orders", [], "0/0", 0) == []
