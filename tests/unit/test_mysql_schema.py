"""MySQL column layouts, type mapping, key queries and URLs, without a server."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal
from types import SimpleNamespace

import pytest
import structlog

from connectors.mysql_schema import (
    LATIN1_CODEC,
    Layout,
    MysqlColumn,
    decode_key,
    encode_key,
    key_after,
    quote,
    truncated_table,
)
from connectors.mysql_server import MysqlServer, label
from hub.config import SourceSettings, TableSettings
from hub.errors import ConfigError


def settings(url: str = "mysql://app@db.example:3307/hr", **extra: object) -> SourceSettings:
    return SourceSettings(name="hr", system="hr", kind="mysql", url=url, tables=["people"], **extra)


def layout(*columns: MysqlColumn, key: list[str] | None = None) -> Layout:
    return Layout(settings(), TableSettings(name="people"), list(columns), key if key is not None else ["id"])


ID = MysqlColumn("id", "int(11)", None, False)


@pytest.mark.parametrize(
    ("column_type", "charset", "avro"),
    [
        ("tinyint(1)", None, "int"),
        ("int(10) unsigned", None, "long"),
        (
            "bigint(20) unsigned",
            None,
            {"type": "bytes", "logicalType": "decimal", "precision": 20, "scale": 0},
        ),
        ("decimal(12,2)", None, {"type": "bytes", "logicalType": "decimal", "precision": 12, "scale": 2}),
        ("bit(1)", None, "boolean"),
        ("bit(12)", None, "long"),
        ("time(3)", None, "string"),
        ("longtext", "utf8mb4", "string"),
        ("varbinary(16)", None, "bytes"),
        ("varchar(10)", "binary", "bytes"),
        ("enum('a','b')", "utf8mb4", "string"),
        ("datetime(6)", None, {"type": "long", "logicalType": "timestamp-micros"}),
        ("date", None, {"type": "int", "logicalType": "date"}),
    ],
)
def test_declared_types_map_to_avro_types_that_keep_their_meaning(
    column_type: str, charset: str | None, avro: object
) -> None:
    """Each MySQL type becomes the Avro type that keeps its values exact (TINYINT(1) stays a number)."""
    schema = layout(ID, MysqlColumn("c", column_type, charset, True)).schema

    field = schema.value_schema["fields"][0]["type"][1]["fields"][1]

    assert field["type"] == ["null", avro]


def test_unknown_type_is_a_string_and_logged_once() -> None:
    """A type the connector does not know (MariaDB's INET6) becomes a string, with one warning."""
    with structlog.testing.capture_logs() as logs:
        first = layout(ID, MysqlColumn("ip", "inet6", None, True))
        layout(ID, MysqlColumn("ip2", "inet6", None, True))

    assert first.schema.value_schema["fields"][0]["type"][1]["fields"][1]["type"] == ["null", "string"]
    assert [e["event"] for e in logs].count("mysql_unknown_type_as_string") <= 1


def test_not_null_dates_are_nullable_in_avro_for_zero_dates() -> None:
    """A NOT NULL DATE may hold '0000-00-00', read as None, so its Avro field is nullable."""
    schema = layout(ID, MysqlColumn("d", "date", None, False)).schema

    assert schema.value_schema["fields"][0]["type"][1]["fields"][1]["type"][0] == "null"


def test_snapshot_and_binlog_values_are_normalised_alike() -> None:
    """CHAR padding, zero dates, SET order, BIT, TIME and 4-byte floats read the same from both paths."""
    people = layout(
        ID,
        MysqlColumn("code", "char(5)", "utf8mb4", True),
        MysqlColumn("born", "date", None, False),
        MysqlColumn("tags", "set('a','b','c')", "utf8mb4", True),
        MysqlColumn("bits", "bit(3)", None, True),
        MysqlColumn("took", "time", None, True),
        MysqlColumn("f", "float", None, True),
    )
    f32 = struct.unpack("<f", struct.pack("<f", 1.1))[0]

    snapshot = people.snapshot_row((1, "ab", "0000-00-00", "a,c", b"\x05", dt.timedelta(hours=-1), 1.1))
    binlog = people.binlog_row(
        {"id": 1, "code": "ab  ", "born": None, "tags": {"c", "a"}, "bits": "101",
         "took": dt.timedelta(hours=-1), "f": f32},
        {"born": "out of date range"},
    )  # fmt: skip

    assert snapshot == binlog == {
        "id": 1, "code": "ab", "born": None, "tags": "a,c", "bits": 5, "took": "-01:00:00", "f": 1.1,
    }  # fmt: skip


def test_layout_round_trips_through_a_position() -> None:
    """The layout saved in a position reads back as the same columns and key."""
    people = layout(ID, MysqlColumn("name", "varchar(40)", "latin1", True))

    again = Layout.from_json(people.source, people.settings, people.to_json())

    assert again.same_columns(people) and again.names == ["id", "name"]


def test_table_without_key_is_refused_with_the_fix() -> None:
    """No primary key and none declared: a ConfigError telling how to declare one."""
    with pytest.raises(ConfigError, match="no primary key") as raised:
        layout(ID, key=[])

    assert "key: [...]" in str(raised.value.hint)


def test_binlog_columns_must_match_count_types_and_logged_names() -> None:
    """A TableMap fits a layout only with the same count, compatible type codes and names (if logged)."""
    people = layout(ID, MysqlColumn("name", "varchar(40)", "utf8mb4", True))

    def column(code: int, name: str | None = None) -> SimpleNamespace:
        return SimpleNamespace(type=code, name=name)

    assert people.fits([column(3), column(15)])
    assert not people.fits([column(3)])
    assert not people.fits([column(3), column(246)])
    assert not people.fits([column(3, "id"), column(15, "full_name")])


def test_latin1_codec_is_mysqls_cp1252() -> None:
    """MySQL's latin1 decodes é and € like cp1252, and its five undefined bytes as C1 controls."""
    assert "café €".encode("cp1252").decode(LATIN1_CODEC) == "café €"
    assert b"\x81\x8d\x8f\x90\x9d".decode(LATIN1_CODEC) == "\x81\x8d\x8f\x90\x9d"
    assert len(bytes(range(256)).decode(LATIN1_CODEC)) == 256


def test_identifiers_are_backquoted_and_keys_compared_column_by_column() -> None:
    """Identifiers are escaped; a composite key reads 'after' as an expanded OR, parameters bound."""
    where, params = key_after(["acc`t", "line"], ["b", 3])

    assert quote("odd`name") == "`odd``name`"
    assert where == "(`acc``t` > %s) OR (`acc``t` = %s AND `line` > %s)"
    assert params == ["b", "b", 3]


def test_key_values_survive_json() -> None:
    """Bytes, decimals and dates in a saved key come back as query parameters MySQL compares right."""
    values = [b"\x00\xff", Decimal("1.50"), dt.date(2024, 1, 2), 7, "x"]

    assert decode_key(encode_key(values)) == [b"\x00\xff", "1.50", "2024-01-02", 7, "x"]


def test_url_names_the_server_without_the_password() -> None:
    """host:port and database come from the URL; the password setting wins and is never in ``where``."""
    server = MysqlServer.of(settings("mysql://app:url-pw@db.example:3307/hr", password="setting-pw"))

    assert (server.host, server.port, server.user, server.database) == ("db.example", 3307, "app", "hr")
    assert server.password == "setting-pw"
    assert server.where == "db.example:3307"


def test_url_without_database_is_a_config_error() -> None:
    """A URL that names no database is refused with the expected form."""
    with pytest.raises(ConfigError, match="mysql://user@host:3306/database"):
        MysqlServer.of(settings("mysql://app@db.example"))


@pytest.mark.parametrize(
    ("query", "schema", "table"),
    [
        ("TRUNCATE TABLE customers", "hr", "customers"),
        ("truncate `odd``name`", "hr", "odd`name"),
        ("TRUNCATE TABLE `hr`.`customers`", "other", "customers"),
        ("TRUNCATE TABLE other.customers", "hr", None),
        ("ALTER TABLE customers ADD COLUMN x INT", "hr", None),
    ],
)
def test_truncate_names_its_table_only_in_our_database(query: str, schema: str, table: str | None) -> None:
    """A TRUNCATE of a table in the captured database is recognised, quoted or qualified."""
    assert truncated_table(query, schema, "hr") == table


def test_positions_sort_as_text_across_files_and_offsets() -> None:
    """Change positions compare as strings in binlog order: file number, then offset, then row."""
    positions = [label("bin.000009", 99_999, 2), label("bin.000010", 4, 0), label("bin.000010", 120, 1)]

    assert positions == sorted(positions)
    assert positions[0] == "000009:000000099999:000002"
