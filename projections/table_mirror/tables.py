"""SQLAlchemy tables of the mirror read model, derived from a raw topic's Avro schemas."""

from __future__ import annotations

import decimal
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Dialect,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    Text,
    Time,
    TypeDecorator,
    Uuid,
)
from sqlalchemy import Column as SqlColumn
from sqlalchemy.types import TypeEngine


class ExactDecimal(TypeDecorator[decimal.Decimal]):
    """DECIMAL that stays exact everywhere: text on SQLite (which has no decimal type)."""

    impl = Numeric
    cache_ok = True

    def __init__(self, precision: int, scale: int) -> None:
        super().__init__(precision=precision, scale=scale, asdecimal=True)
        self.precision = precision
        self.scale = scale

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(64))
        return dialect.type_descriptor(Numeric(self.precision, self.scale))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        return str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> decimal.Decimal | None:
        if value is None:
            return None
        return decimal.Decimal(str(value))


@dataclass(frozen=True)
class MirrorColumn:
    """A column of a mirrored table: SQL name, Avro field name, SQL type, key role."""

    name: str
    field: str
    type: TypeEngine[Any]
    key: bool


def sql_type(avro_type: Any) -> TypeEngine[Any]:
    """The SQL type for an Avro field type (nullable unions unwrapped)."""
    if isinstance(avro_type, list):
        non_null = [t for t in avro_type if t != "null"]
        return sql_type(non_null[0] if non_null else "string")
    if isinstance(avro_type, dict):
        logical = avro_type.get("logicalType")
        if logical == "decimal":
            return ExactDecimal(int(avro_type.get("precision", 38)), int(avro_type.get("scale", 0)))
        if logical == "date":
            return Date()
        if logical in {"timestamp-micros", "timestamp-millis"}:
            return DateTime(timezone=True)
        if logical in {"time-micros", "time-millis"}:
            return Time()
        if logical == "uuid":
            return Uuid(as_uuid=True)
        return sql_type(avro_type.get("type", "string"))
    plain: dict[str, TypeEngine[Any]] = {
        "int": Integer(),
        "long": BigInteger(),
        "float": Float(),
        "double": Float(),
        "boolean": Boolean(),
        "bytes": LargeBinary(),
    }
    return plain.get(str(avro_type), Text())


def mirror_columns(key_schema: dict[str, Any], value_schema: dict[str, Any]) -> list[MirrorColumn]:
    """The columns of a mirrored table from the topic's key and envelope schemas."""
    key_fields = {f["name"] for f in key_schema["fields"]}
    row = next(
        branch
        for field in value_schema["fields"]
        if field["name"] in {"before", "after"}
        for branch in field["type"]
        if isinstance(branch, dict)
    )
    return [
        MirrorColumn(
            name=f.get("unsilo.column", f["name"]),
            field=f["name"],
            type=sql_type(f["type"]),
            key=f["name"] in key_fields,
        )
        for f in row["fields"]
    ]


def mirror_table_name(topic: str) -> str:
    """``unsilo.raw.sales.customers`` -> ``mirror_sales_customers``."""
    parts = topic.split(".")
    return "mirror_" + "_".join(parts[2:] if topic.startswith("unsilo.raw.") else parts)


def mirror_table(metadata: MetaData, name: str, columns: list[MirrorColumn]) -> Table:
    """The SQLAlchemy table for a mirrored topic."""
    return Table(
        name,
        metadata,
        *(SqlColumn(c.name, c.type, primary_key=c.key, autoincrement=False) for c in columns),
        extend_existing=True,
    )
