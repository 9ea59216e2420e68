"""PostgreSQL errors as the hub's: a connection lost mid-stream is retried, a server error is not."""

from __future__ import annotations

import psycopg2
import psycopg2.errors

from connectors.pgcatalog import PostgresSettings, translate
from hub.config import SourceSettings
from hub.errors import SourceError, SourceUnavailableError

SOURCE = SourceSettings(
    name="ledger", system="finance", kind="postgres", url="postgresql://hub@db:5432/ledger", tables=["t"]
)


def test_stream_cut_without_server_message_is_retriable() -> None:
    """A replication stream cut by the network (libpq's bare DatabaseError) is an outage: retried."""
    exc = psycopg2.DatabaseError("error with status PGRES_COPY_BOTH and no message from the libpq")

    error = translate(PostgresSettings.from_source(SOURCE), exc, "reading changes from")

    assert isinstance(error, SourceUnavailableError) and error.retriable
    assert "PGRES_COPY_BOTH" in error.message


def test_server_error_with_sqlstate_is_not_retried() -> None:
    """An error the server reported (it has a SQLSTATE) is not taken for an outage."""
    exc = psycopg2.errors.UndefinedTable('relation "t" does not exist')

    error = translate(PostgresSettings.from_source(SOURCE), exc, "reading")

    assert isinstance(error, SourceError) and not isinstance(error, SourceUnavailableError)
