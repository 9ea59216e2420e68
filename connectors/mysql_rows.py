"""PyMySQL connections whose result rows are decoded in C (connectors/_mysql_rows.c).

PyMySQL decodes every field of every row in Python; on a MariaDB snapshot that was about
60% of the connector's CPU. :class:`FastRows`, mixed into a PyMySQL connection class, reads
buffered result sets with :class:`FastRowsResult`, whose rows come from the C decoder. Each
column gets a plan entry from its PyMySQL converter: integers, doubles, UTF-8 text and the
ISO dates and datetimes of ``fast_kinds`` are parsed in C, anything else (and any text the
C parsers do not recognise) goes through the PyMySQL converter, so rows are equal to
PyMySQL's (tests/unit/test_mysql_rows.py). Without the extension, PyMySQL reads the rows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import pymysql  # type: ignore[import-untyped]

try:
    from connectors import _mysql_rows  # type: ignore[attr-defined]  # built from connectors/_mysql_rows.c
except ImportError:  # pragma: no cover - the install had no C compiler
    _mysql_rows = None

GENERIC, UTF8, INT, FLOAT, DATETIME, DATE = range(6)
_UTF8 = {"utf8", "utf-8", "utf8mb4"}

PlanEntry = tuple[int, str | None, Callable[[Any], Any] | None]


def available() -> bool:
    """Whether the C decoder was built."""
    return _mysql_rows is not None


def plan_for(
    converters: Iterable[tuple[str | None, Callable[[Any], Any] | None]],
    fast_kinds: dict[Any, int],
) -> tuple[PlanEntry, ...]:
    """A plan entry (kind, encoding, converter) per column of PyMySQL's ``converters``."""
    plan: list[PlanEntry] = []
    for encoding, converter in converters:
        if converter is None:
            kind = UTF8 if encoding is not None and encoding.lower() in _UTF8 else GENERIC
        else:
            kind = fast_kinds.get(converter, GENERIC) if encoding == "ascii" else GENERIC
        plan.append((kind, encoding, converter))
    return tuple(plan)


def decode_row(data: bytes, position: int, plan: tuple[PlanEntry, ...]) -> tuple[Any, ...]:
    """The values of one text-protocol row packet (``data`` from ``position``)."""
    row: tuple[Any, ...] = _mysql_rows.decode_row(data, position, plan)
    return row


class FastRowsResult(pymysql.connections.MySQLResult):  # type: ignore[misc]
    """A buffered result set whose rows are decoded in C."""

    def __init__(self, connection: Any, fast_kinds: dict[Any, int]) -> None:
        super().__init__(connection)
        self._fast_kinds = {int: INT, float: FLOAT, **fast_kinds}
        self._plan: tuple[PlanEntry, ...] | None = None

    def _read_row_from_packet(self, packet: Any) -> tuple[Any, ...]:
        plan = self._plan
        if plan is None:
            plan = self._plan = plan_for(self.converters, self._fast_kinds)
        return decode_row(packet._data, packet._position, plan)


class FastRows:
    """A mixin for a PyMySQL connection class: buffered results read by :class:`FastRowsResult`.

    ``fast_kinds`` maps the connection's own decoders to the C parser that gives the same
    values (for example a ``datetime.fromisoformat`` decoder to ``DATETIME``).
    """

    fast_kinds: ClassVar[dict[Any, int]] = {}
    _result: Any
    server_status: Any

    def _read_query_result(self, unbuffered: bool = False) -> Any:
        if unbuffered or _mysql_rows is None:
            return super()._read_query_result(unbuffered)  # type: ignore[misc]
        self._result = None
        result = FastRowsResult(self, self.fast_kinds)
        result.read()
        self._result = result
        if result.server_status is not None:
            self.server_status = result.server_status
        return result.affected_rows
