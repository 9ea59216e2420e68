"""has_data: whether a read of the kept binlog connection would return at once (a local socket pair)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from connectors.mysql_server import has_data


@pytest.fixture
def pair() -> Iterator[tuple[Any, socket.socket]]:
    """A PyMySQL-like connection (its socket and buffered reader) and the server's end."""
    ours, server = socket.socketpair()
    ours.settimeout(7.5)  # PyMySQL's read_timeout
    conn = SimpleNamespace(_sock=ours, _rfile=ours.makefile("rb"))
    yield conn, server
    conn._rfile.close()
    ours.close()
    server.close()


def test_nothing_sent_means_a_read_would_wait(pair: tuple[Any, socket.socket]) -> None:
    """With nothing sent, has_data is False and the socket keeps its read timeout."""
    conn, _ = pair

    assert has_data(conn) is False
    assert conn._sock.gettimeout() == 7.5


def test_bytes_on_the_socket_can_be_read(pair: tuple[Any, socket.socket]) -> None:
    """Bytes sent by the server are there to read, and reading them returns them all."""
    conn, server = pair
    server.sendall(b"0123456789")

    assert has_data(conn) is True
    assert conn._rfile.read(10) == b"0123456789"
    assert has_data(conn) is False


def test_bytes_already_in_the_reader_buffer_count(pair: tuple[Any, socket.socket]) -> None:
    """A packet read partly leaves the rest in PyMySQL's buffer, though the socket itself is empty."""
    conn, server = pair
    server.sendall(b"0123456789")
    assert conn._rfile.read(4) == b"0123"  # the buffered reader took all ten bytes off the socket

    assert has_data(conn) is True
    assert conn._rfile.read(6) == b"456789"


def test_a_connection_closed_by_the_server_reads_at_once(pair: tuple[Any, socket.socket]) -> None:
    """When the server has closed the connection the next read fails at once: has_data says so."""
    conn, server = pair
    server.close()

    assert has_data(conn) is True
    assert conn._rfile.read(1) == b""


def test_a_connection_closed_by_pymysql_reads_at_once() -> None:
    """After PyMySQL dropped a broken connection (no socket) a read raises at once."""
    assert has_data(SimpleNamespace(_sock=None, _rfile=None)) is True
