"""Decoded pgoutput messages to Changes: transactions, row images, and what to skip.

:class:`ChangeDecoder` follows the stream's transactions (each change gets the commit LSN,
commit time and xid of its transaction, and its index in it), builds row images from the
relation's columns (a full before image under REPLICA IDENTITY FULL, the key alone
otherwise), skips the first changes of a transaction that a position taken mid-way says
are in Kafka already, and notes the commit of the snapshot watermark it is waiting for.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from connectors.base import Change
from connectors.pgcatalog import CapturedTable
from connectors.pgoutput import (
    UNCHANGED,
    Begin,
    Commit,
    Decoded,
    Delete,
    Insert,
    Message,
    Relation,
    Truncate,
    TupleValue,
    Update,
    format_lsn,
    parse_lsn,
)
from hub.envelope import Op

WATERMARK_PREFIX = "unsilo.watermark"
RECENT_TRANSACTIONS = 10_000  # xids remembered to check snapshot chunks against


def format_position(lsn: int, index: int) -> str:
    """A change's position: its transaction's commit LSN and its index in it."""
    return f"{format_lsn(lsn)}:{index}"


def position_order(position: str) -> tuple[int, int]:
    """A change position (``0/16B3748:3``) as something that sorts."""
    lsn, _, index = position.partition(":")
    return parse_lsn(lsn), int(index or 0)


@dataclass
class _Txn:
    xid: int
    commit_lsn: int
    ts_ms: int
    skip: int  # its first changes are in Kafka already (a position taken mid-transaction)
    index: int = 0
    tables: set[str] = field(default_factory=set)
    watermark: bool = False


class ChangeDecoder:
    """The stream's state between messages (see module docstring)."""

    def __init__(
        self,
        tables: dict[str, CapturedTable],
        refresh: Callable[[str], CapturedTable],
        lsn: int,
        resume: dict[str, Any] | None,
    ) -> None:
        self.tables = tables  # shared with the connector, which refreshes entries in place
        self.refresh = refresh
        self.by_relname = {(t.namespace, t.relname): name for name, t in tables.items()}
        self.lsn = lsn  # end of the last whole transaction read
        self.resume = (parse_lsn(resume["commit"]), int(resume["done"])) if resume else None
        self.txn: _Txn | None = None
        self.relations: dict[int, tuple[Relation, CapturedTable | None]] = {}
        self.shapes: dict[str, tuple[tuple[str, int], ...]] = {}  # columns and type oids seen
        #: (xid, commit LSN, tables) of recent transactions with captured changes
        self.recent: collections.deque[tuple[int, int, frozenset[str]]] = collections.deque(
            maxlen=RECENT_TRANSACTIONS
        )
        self.wanted: bytes | None = None  # the watermark token waited for
        self.watermark: tuple[int, int] | None = None  # its commit and end LSN, once read

    def in_transaction(self) -> bool:
        return self.txn is not None

    def position_txn(self) -> dict[str, Any] | None:
        """How much of the transaction being read is handed out (None: none of it)."""
        txn = self.txn
        done = max(txn.index, txn.skip) if txn is not None else 0
        return {"commit": format_lsn(txn.commit_lsn), "done": done} if txn and done else None

    def expect_watermark(self, token: str) -> None:
        self.wanted, self.watermark = token.encode("ascii"), None

    def handle(self, message: Decoded | None, changes: list[Change]) -> None:
        """Apply one message; changes it yields are appended to ``changes``."""
        if isinstance(message, Begin):
            skip = 0
            if self.resume is not None and self.resume[0] == message.final_lsn:
                skip = self.resume[1]
            self.txn = _Txn(message.xid, message.final_lsn, message.commit_ts_ms, skip)
        elif isinstance(message, Commit):
            self._commit(message)
        elif isinstance(message, Relation):
            name = self.by_relname.get((message.namespace, message.name))
            self.relations[message.oid] = (message, self._follow(name, message) if name else None)
        elif isinstance(message, (Insert, Update, Delete)):
            relation, table = self.relations[message.oid]
            if table is not None:
                self._change(table, relation, message, changes)
        elif isinstance(message, Truncate):
            for oid in message.oids:
                known = self.relations.get(oid)
                if known is not None and known[1] is not None:
                    self._emit(known[1].name, "t", None, None, changes)
        elif isinstance(message, Message) and self.txn is not None:
            self.txn.watermark |= message.prefix == WATERMARK_PREFIX and message.content == self.wanted

    def _follow(self, name: str, relation: Relation) -> CapturedTable:
        """After DDL (the relation's columns or types changed), read the table's schema again.

        The catalog is read as it is now: a column added and dropped again while the
        connector was behind reads as null in the events between.
        """
        table = self.tables[name]
        shape = tuple((c.name, c.type_oid) for c in relation.columns)
        known = self.shapes.setdefault(name, shape)
        if known == shape and [c.name for c in relation.columns] == table.columns:
            return table
        self.shapes[name] = shape
        return self.refresh(name)

    def _commit(self, message: Commit) -> None:
        txn, self.txn = self.txn, None
        self.lsn = message.end_lsn
        if self.resume is not None and message.commit_lsn >= self.resume[0]:
            self.resume = None
        if txn is None:
            return
        if txn.tables:
            self.recent.append((txn.xid, txn.commit_lsn, frozenset(txn.tables)))
        if txn.watermark:
            self.watermark, self.wanted = (txn.commit_lsn, message.end_lsn), None

    def _change(
        self,
        table: CapturedTable,
        relation: Relation,
        message: Insert | Update | Delete,
        changes: list[Change],
    ) -> None:
        op: Op
        before: dict[str, Any] | None = None
        after: dict[str, Any] | None = None
        if isinstance(message, Insert):
            op, after = "c", _row(table, relation, message.new)
        elif isinstance(message, Update):
            op = "u"
            if message.old is not None:
                before = _row(table, relation, message.old, key_only=message.old_kind == "K")
            after = _row(table, relation, message.new, old=before)
            if before is None:  # key unchanged and not logged: the key alone
                before = {c.name: after.get(c.name) for c in relation.columns if c.key}
        else:
            op = "d"
            before = _row(table, relation, message.old, key_only=message.old_kind == "K")
        self._emit(table.name, op, before, after, changes)

    def _emit(
        self,
        table: str,
        op: Op,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
        changes: list[Change],
    ) -> None:
        """Number the change within its transaction; skip it when already in Kafka."""
        txn = self.txn
        if txn is None:  # a change outside a transaction: not something pgoutput sends
            return
        txn.index += 1
        txn.tables.add(table)
        if txn.index > txn.skip:
            position = format_position(txn.commit_lsn, txn.index)
            changes.append(Change(table, op, before, after, position, txn.ts_ms, txid=txn.xid))


def _row(
    table: CapturedTable,
    relation: Relation,
    values: list[TupleValue],
    *,
    key_only: bool = False,
    old: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A row image from a tuple's text values, parsed by column type."""
    row: dict[str, Any] = {}
    parsers = table.parsers
    for column, value in zip(relation.columns, values, strict=False):
        name = column.name
        if key_only and not column.key:
            continue
        if value is None:
            row[name] = None
        elif value is UNCHANGED:  # TOASTed and untouched: from the old row, if logged
            row[name] = old[name] if old and name in old else table.unavailable.get(name)
        else:
            row[name] = parsers.get(name, str)(value)  # type: ignore[arg-type]
    return row
