"""A source's dead letter keeps the change as its events would show it, and gives it back for a replay."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from connectors.base import Change
from connectors.dead_letters import MAX_RECORD_BYTES, TRUNCATED, check_size, letter_body, read_body
from hub.avro_types import Column
from hub.envelope import TableSchema
from hub.errors import RecordTooLargeError

COLUMNS = [
    Column("id", "INTEGER", nullable=False, primary_key=True),
    Column("photo", "BLOB"),
    Column("sal", "NUMERIC(9,2)"),
    Column("nid", "TEXT"),
    Column("iban", "TEXT"),
]


def schema() -> TableSchema:
    return TableSchema("hr", "emp", COLUMNS, ["id"], masks={"nid": "hash", "iban": "drop"}, mask_key=b"k")


def change(**after: object) -> Change:
    row = {"id": 7, "photo": b"\x00\xff", "sal": Decimal("12.50"), "nid": "NID-42", "iban": "FR76", **after}
    return Change("emp", "c", None, row, "17", 1_700_000_000_000, txid=9)


def test_letter_round_trips_bytes_and_decimals_with_masks_applied() -> None:
    """Bytes come back as bytes, a decimal as its text; a hashed column is hashed, a dropped one gone."""
    body = letter_body(change(), schema())
    dead = read_body(body)

    assert dead.after is not None
    assert dead.after["photo"] == b"\x00\xff" and dead.after["sal"] == "12.50"
    assert "iban" not in dead.after and dead.after["nid"] != "NID-42" and dead.masked == ("nid",)
    assert (dead.op, dead.ts_ms, dead.txid, dead.truncated) == ("c", 1_700_000_000_000, 9, ())
    assert b"NID-42" not in body and b"FR76" not in body


def test_premasked_values_are_not_masked_twice_on_replay() -> None:
    """The replayed row holds the hash the letter kept, the same hash a live event carries."""
    dead = read_body(letter_body(change(), schema()))
    live = schema().row(change().after)

    assert schema().row(dead.after, dead.masked) == {
        **(live or {}),
        "photo": b"\x00\xff",
        "sal": Decimal("12.50"),
    }


def test_a_letter_too_large_keeps_small_values_and_notes_the_size_of_large_ones() -> None:
    """A 1.5 MB value becomes {"unsilo.truncated": <bytes>}; the letter stays far below the limit."""
    body = letter_body(change(nid="x" * 1_500_000), None)
    data = json.loads(body)

    assert len(body) < 10_000 and data["truncated"] == ["nid"]
    assert data["after"]["nid"] == {TRUNCATED: 1_500_002} and data["after"]["id"] == 7


def test_an_event_above_the_broker_limit_is_a_record_too_large_error() -> None:
    """check_size names the table and the size; an event below the limit passes."""
    check_size("emp", [(b"k", b"v" * 1000)])
    with pytest.raises(RecordTooLargeError) as too_large:
        check_size("emp", [(b"k", b"v" * MAX_RECORD_BYTES)])

    assert "emp" in too_large.value.message and "maximum message size" in too_large.value.message
