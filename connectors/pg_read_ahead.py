"""Reading the next snapshot chunk while the runner publishes the current one (PostgreSQL).

A chunk is a REPEATABLE READ transaction that notes its snapshot, writes a watermark message
into the WAL and reads up to ``batch_size`` rows; its COMMIT waits for the WAL flush. Done in
line, the query and that flush left the connector idle about 10 ms per chunk (5 of the 27 s of
a 1M-row snapshot). With :class:`ReadAhead` the next chunk's transaction is opened (snapshot
and watermark taken) on a connection of its own as soon as this chunk is handed out, and its
query and commit run in a thread while the runner publishes this chunk to Kafka; psycopg2
releases the GIL while PostgreSQL works, so the two overlap. A read is used only if it is the
one the snapshot asks for next (same table, last key and size); otherwise it is dropped, and
its watermark, which nobody waits for, is passed over by the stream like any other logical
message.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class ReadAhead(Generic[T]):
    """At most one read in the background, on a connection of its own (made by ``connect``)."""

    def __init__(self, connect: Callable[[], Any]) -> None:
        self._connect = connect
        self._conn: Any = None
        self._pool: ThreadPoolExecutor | None = None
        self._pending: tuple[str, Future[T]] | None = None

    def start(self, key: str, begin: Callable[[Any], Any], finish: Callable[[Any, Any], T]) -> None:
        """``begin(connection)`` now, then ``finish(connection, begun)`` in the background, for ``key``.

        ``begin`` runs in the caller's thread so that what the read sees is fixed before this
        returns (a snapshot taken); only ``finish`` overlaps the caller's work.
        """
        self.drop()
        if self._conn is None or self._conn.closed:
            self._conn = self._connect()
        conn = self._conn
        begun = begin(conn)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="snapshot-read-ahead")
        self._pending = (key, self._pool.submit(finish, conn, begun))

    def take(self, key: str) -> T | None:
        """The read started for ``key`` (waiting for it; its error raised), or None if there is none."""
        pending, self._pending = self._pending, None
        if pending is None:
            return None
        if pending[0] != key:
            _wait_out(pending[1])
            return None
        return pending[1].result()

    def drop(self) -> None:
        """Forget the read in flight, if any (after it ends: its connection is then free again)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            _wait_out(pending[1])

    def close(self) -> None:
        self.drop()
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None


def _wait_out(future: Future[Any]) -> None:
    with contextlib.suppress(Exception):  # a dropped read's error matters to no one
        future.result()
