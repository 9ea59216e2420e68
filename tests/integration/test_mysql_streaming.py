"""MariaDB streaming over one kept binlog connection: no reconnect per poll, a lost one noticed."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest

import connectors.mysql
from connectors.mysql import MysqlConnector
from hub.config import SourceSettings
from hub.errors import SourceUnavailableError
from tests.connector_contract import BATCH, changes_of, drain
from tests.fixtures_mysql import MysqlDatabase

pytestmark = pytest.mark.integration

COM_BINLOG_DUMP = 0x12


class BinlogStallingProxy:
    """Forwards ``127.0.0.1:<port>`` to a MySQL server; can go silent on binlog dumps only.

    It watches what clients send for COM_BINLOG_DUMP; after :meth:`stall_binlog` the server's
    bytes on those connections are held back (no events, no heartbeats: a half-open TCP
    connection, or a frozen server), while other connections (queries) work on.
    """

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.dumps = 0
        self.stalled = threading.Event()
        self.closed = threading.Event()
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, name="binlog-proxy", daemon=True).start()

    def stall_binlog(self) -> None:
        self.stalled.set()

    def close(self) -> None:
        self.closed.set()
        for sock in [self.listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self._sockets += [client, upstream]
            dump = threading.Event()
            threading.Thread(target=self._requests, args=(client, upstream, dump), daemon=True).start()
            threading.Thread(target=self._replies, args=(upstream, client, dump), daemon=True).start()

    def _requests(self, src: socket.socket, dst: socket.socket, dump: threading.Event) -> None:
        pending = b""
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                pending += data
                while len(pending) >= 4 and len(pending) >= 4 + int.from_bytes(pending[:3], "little"):
                    size, seq = int.from_bytes(pending[:3], "little"), pending[3]
                    if seq == 0 and size and pending[4] == COM_BINLOG_DUMP:  # a command, not a handshake
                        self.dumps += 1
                        dump.set()
                    pending = pending[4 + size :]
                dst.sendall(data)

    def _replies(self, src: socket.socket, dst: socket.socket, dump: threading.Event) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                while dump.is_set() and self.stalled.is_set() and not self.closed.is_set():
                    time.sleep(0.05)
                dst.sendall(data)


@pytest.fixture
def customers(mysql_db: MysqlDatabase) -> MysqlDatabase:
    mysql_db.execute("CREATE TABLE customers (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL)")
    mysql_db.execute("INSERT INTO customers VALUES (1, 'customer 1')")
    return mysql_db


@pytest.fixture
def opened() -> Iterator[list[MysqlConnector]]:
    connectors: list[MysqlConnector] = []
    yield connectors
    for connector in connectors:
        connector.close()


def connector_for(url: str, opened: list[MysqlConnector]) -> MysqlConnector:
    settings = SourceSettings(
        name="hr", system="hr", kind="mysql", url=url, tables=["customers"],
        batch_size=BATCH, snapshot_chunk_size=BATCH,
    )  # fmt: skip
    connector = MysqlConnector(settings)
    opened.append(connector)
    return connector


def binlog_dumps(db: MysqlDatabase) -> set[int]:
    """The server's binlog dump sessions (one per reading replica or connector), by id."""
    rows = db.query("SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND = 'Binlog Dump'")
    return {int(session) for (session,) in rows}


def inserted(db: MysqlDatabase, row_id: int) -> None:
    db.execute("INSERT INTO customers VALUES (%s, %s)", (row_id, f"customer {row_id}"))


def test_streaming_across_many_polls_keeps_one_binlog_connection(
    customers: MysqlDatabase, opened: list[MysqlConnector]
) -> None:
    """Twenty transactions polled one at a time all come over one binlog dump session, not one per poll."""
    others = binlog_dumps(customers)
    connector = connector_for(customers.url, opened)
    connector.open(None)
    drain(connector)
    sessions: set[int] = set()
    changes = []

    for row_id in range(2, 22):
        inserted(customers, row_id)
        batch = connector.poll(BATCH)
        assert batch is not None
        changes += batch.changes
        sessions |= binlog_dumps(customers) - others

    assert [(c.op, c.after["id"] if c.after else None) for c in changes] == [("c", i) for i in range(2, 22)]
    assert len(sessions) == 1


def test_a_killed_binlog_connection_is_retriable_and_open_resumes_with_nothing_lost(
    customers: MysqlDatabase, opened: list[MysqlConnector]
) -> None:
    """KILLing the dump session while a poll waits raises SourceUnavailableError; open() loses nothing."""
    others = binlog_dumps(customers)
    connector = connector_for(customers.url, opened)
    connector.open(None)
    resume_at = drain(connector)[-1].position
    (session,) = binlog_dumps(customers) - others
    killer = threading.Timer(0.1, customers.execute, (f"KILL {session}",))

    killer.start()
    with pytest.raises(SourceUnavailableError) as raised:
        for _ in range(40):  # an idle poll waits a moment for changes: the KILL lands in one of them
            connector.poll(BATCH)
    killer.join()
    inserted(customers, 2)  # while disconnected
    connector.open(resume_at)
    changes = changes_of(drain(connector))

    assert raised.value.retriable
    assert [c.after for c in changes] == [{"id": 2, "name": "customer 2"}]


def test_a_binlog_connection_gone_silent_is_retriable_not_a_hang(
    customers: MysqlDatabase, opened: list[MysqlConnector], monkeypatch: Any
) -> None:
    """When the server stops sending on the binlog connection (not even heartbeats), poll gives up after
    the read timeout with SourceUnavailableError instead of waiting forever."""
    monkeypatch.setattr(connectors.mysql, "_READ_TIMEOUT_S", 1.0)
    server = urlsplit(customers.url)
    proxy = BinlogStallingProxy((server.hostname or "127.0.0.1", server.port or 3306))
    try:
        proxied = customers.url.replace(f":{server.port}/", f":{proxy.port}/")
        connector = connector_for(proxied, opened)
        connector.open(None)
        drain(connector)
        assert proxy.dumps == 1

        proxy.stall_binlog()
        started = time.monotonic()
        with pytest.raises(SourceUnavailableError) as raised:
            for _ in range(40):  # idle polls wait up to a quarter second each
                connector.poll(BATCH)
        waited = time.monotonic() - started
    finally:
        proxy.close()

    assert raised.value.retriable
    assert "binlog" in raised.value.message
    assert waited < 5
