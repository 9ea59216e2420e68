"""What a source's dead letter holds, and the largest event the broker takes.

A dead letter's value is JSON: ``op``, ``before`` and ``after`` by source column name with
the table's masks applied (a dropped column is left out; a hashed or redacted one holds its
hash or marker and is listed in ``masked``, so a replay does not mask it twice), then
``ts_ms``, ``snapshot`` and ``txid`` of the change (bytes as ``{"unsilo.hex": "..."}``,
decimals and dates as text). The reason and the position are in the
record's headers (see :meth:`connectors.runner.ConnectorRunner._dead_letter`).

An event above the broker's maximum message size is dead-lettered instead of failing the
transaction (which would stop the connector on that row for ever). Its dead letter would
often be too large as well: then each value larger than :data:`KEPT_VALUE_BYTES` is replaced
by ``{"unsilo.truncated": <its size in bytes>}`` and its column listed in ``truncated``.
Such a letter says where the row is (table, position) but cannot be replayed: after the
fix, read the table again with ``unsilo snapshot <source>.<table>``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from connectors.base import Change
from hub.envelope import TableSchema
from hub.errors import RecordTooLargeError, SourceDataError

MAX_RECORD_BYTES = 1_000_000  # the producer's message.max.bytes (hub/kafka/producer.py)
RECORD_OVERHEAD = 2_048  # headers, batch and record framing, kept free below that limit
RECORD_LIMIT = MAX_RECORD_BYTES - RECORD_OVERHEAD  # the most a record's key and value may hold
KEPT_VALUE_BYTES = 4_096  # a too-large letter keeps values up to this size
TRUNCATED = "unsilo.truncated"
HEX = "unsilo.hex"  # a bytes value (BLOB, bytea) in a letter


@dataclass(frozen=True)
class DeadChange:
    """A dead-lettered change as its letter holds it."""

    op: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    ts_ms: int
    snapshot: bool
    txid: int | None
    masked: tuple[str, ...]
    truncated: tuple[str, ...]


def check_size(table: str, records: Sequence[tuple[bytes | None, bytes | None]]) -> None:
    """RecordTooLargeError when one of a change's records is above the broker's limit."""
    limit = RECORD_LIMIT
    size = 0
    for key, value in records:  # a plain loop, no generator: this runs for every record published
        size = max(size, (len(key) if key else 0) + (len(value) if value else 0))
    if size > limit:
        raise RecordTooLargeError(
            f"{table}: the event is {size:,} bytes, above the broker's maximum message size "
            f"({MAX_RECORD_BYTES:,} bytes)",
            hint=f"drop or mask the large column(s) (tables: [{{name: {table}, mask: {{<column>: drop}}}}]),"
            " then read the row again: `unsilo dlq replay` or `unsilo snapshot <source>.<table>`",
        )


def letter_body(change: Change, schema: TableSchema | None) -> bytes:
    """The JSON value of ``change``'s dead letter, masked by ``schema`` and within the limit."""
    before, after = change.before, change.after
    masked: list[str] = []
    if schema is not None:
        before, after = schema.masked(before), schema.masked(after)
        masked = sorted(c for c, rule in schema.masks.items() if rule in ("hash", "redact"))
    data: dict[str, Any] = {
        "op": change.op,
        "before": before,
        "after": after,
        "ts_ms": change.ts_ms,
        "snapshot": change.snapshot,
        "txid": change.txid,
        "masked": masked,
    }
    body = _dumps(data)
    if len(body) <= MAX_RECORD_BYTES - RECORD_OVERHEAD:
        return body
    truncated: set[str] = set()
    for image in ("before", "after"):
        row = data[image]
        if row is None:
            continue
        for column, value in list(row.items()):
            size = len(_dumps(value))
            if size > KEPT_VALUE_BYTES:
                row[column] = {TRUNCATED: size}
                truncated.add(column)
    data["truncated"] = sorted(truncated)
    return _dumps(data)


def read_body(body: bytes | None) -> DeadChange:
    """The change a source's dead letter holds; SourceDataError when it is not one."""
    try:
        data = json.loads(body or b"", object_hook=_unplain)
        return DeadChange(
            op=data["op"],
            before=data.get("before"),
            after=data.get("after"),
            ts_ms=int(data.get("ts_ms") or 0),
            snapshot=bool(data.get("snapshot", False)),
            txid=data.get("txid"),
            masked=tuple(data.get("masked") or ()),
            truncated=tuple(data.get("truncated") or ()),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise SourceDataError("the dead letter does not hold a change (JSON with op/before/after)") from exc


def _dumps(value: Any) -> bytes:
    return json.dumps(value, default=_plain, ensure_ascii=False).encode("utf-8")


def _plain(value: Any) -> Any:
    """Bytes as ``{"unsilo.hex": ...}`` (read back as bytes); decimals, dates and the rest as text."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {HEX: bytes(value).hex()}
    return str(value)


def _unplain(data: dict[str, Any]) -> Any:
    return bytes.fromhex(data[HEX]) if len(data) == 1 and HEX in data else data
