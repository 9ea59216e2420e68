"""Declarative mappings from raw source tables to canonical entities.

A mapping file (YAML; the estate's is ``deploy/demo/mappings.yaml``) names a key prefix per
legacy system and, per mapping, where the rows come from and how each canonical field is
made of them::

    version: 1
    systems:
      finance: {prefix: fin}
    mappings:
      - entity: Invoice                   # a canonical schema (schemas/*.avsc)
        system: finance                   # the source's system, as in unsilo.yaml
        table: AR_INVOICE
        key: [INV_NO]                     # -> "fin:240017"; several columns join with "/"
        fields:
          invoice_no: INV_NO              # a rename
          customer_key: {ref: [CUST_NO]}  # a key in this system: "fin:000042"
          invoice_date: {column: INV_DATE, convert: date}
          amount: {column: AMOUNT, convert: decimal}
          status: {column: STATUS, codes: {O: OPEN, P: PAID, V: VOID}}
          reference_key: {ref: [CRM_REF], system: sales}   # a key in another system
          kind: {value: SHOP}             # a constant

Every canonical record gets ``key`` and ``system`` from the mapping itself. Conversions
(:data:`hub.conversions.CONVERSIONS`) run in order and skip nulls; a code table applies to
the converted value. Schema fields a mapping leaves out take their default.
:func:`load_mappings` checks a file against the canonical schemas, :func:`validate_mapping`
against a source's actual columns, and :func:`apply_mapping` raises
:class:`~hub.errors.MappingError` with the reason when a row cannot be mapped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hub.canonical_schemas import canonical_schemas
from hub.conversions import CONVERSIONS, show
from hub.errors import ConfigError, MappingError

__all__ = [
    "CONVERSIONS",
    "DEMO_MAPPINGS",
    "EntityMapping",
    "FieldMapping",
    "apply_mapping",
    "load_mappings",
    "mappings_for",
    "validate_mapping",
]

DEMO_MAPPINGS = Path(__file__).resolve().parent.parent / "deploy" / "demo" / "mappings.yaml"
_FIELD_KEYS = {"column", "ref", "system", "value", "convert", "codes"}

# The conversion a field of a logical type must end with, so the value fits the schema.
_LOGICAL_CONVERSIONS = {"decimal": {"decimal", "cents"}, "date": {"date", "yyyymmdd"}}
_LOGICAL_CONVERSIONS["timestamp-micros"] = {"timestamp"}


@dataclass(frozen=True)
class FieldMapping:
    """How one canonical field is made: from a column, as a key reference, or a constant."""

    name: str
    column: str | None = None
    ref: tuple[str, ...] = ()
    ref_prefix: str = ""
    value: Any = None
    convert: tuple[str, ...] = ()
    codes: Mapping[str, str] | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        return ((self.column,) if self.column else ()) + self.ref


@dataclass(frozen=True)
class EntityMapping:
    """Rows of one source table become records of one canonical entity."""

    entity: str
    system: str
    table: str
    prefix: str
    key: tuple[str, ...]
    fields: tuple[FieldMapping, ...]
    required: frozenset[str] = frozenset()
    defaults: Mapping[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return f"{self.system}.{self.table}->{self.entity}"

    def columns(self) -> list[str]:
        """Every source column the mapping reads, key first, each once."""
        return list(dict.fromkeys([*self.key, *(c for f in self.fields for c in f.columns)]))


def load_mappings(
    source: str | Path | Mapping[str, Any], schemas: Mapping[str, dict[str, Any]] | None = None
) -> list[EntityMapping]:
    """The mappings of a YAML file (or its parsed content), checked against ``schemas``.

    ``schemas`` defaults to the shipped canonical schemas. A malformed mapping, a field the
    entity's schema lacks, a schema field left unmapped without a default, or a logical type
    reached without its conversion (a date without ``date``/``yyyymmdd``) is a ConfigError.
    """
    where = str(source) if not isinstance(source, Mapping) else "the mapping"
    document = source if isinstance(source, Mapping) else _read_yaml(Path(source))
    if not isinstance(document, Mapping) or not isinstance(document.get("mappings"), list):
        raise ConfigError(f"{where}: expected a 'mappings' list", hint="see hub/mapping.py for the format")
    systems = document.get("systems") or {}
    prefixes = {str(name): str((spec or {}).get("prefix", name)) for name, spec in systems.items()}
    known = canonical_schemas() if schemas is None else schemas
    return [
        _mapping(entry, prefixes, known, f"{where}, mapping {n}")
        for n, entry in enumerate(document["mappings"], 1)
    ]


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the mapping file {path}: {exc}") from exc


def _mapping(
    entry: Any, prefixes: dict[str, str], schemas: Mapping[str, dict[str, Any]], where: str
) -> EntityMapping:
    if not isinstance(entry, Mapping) or not {"entity", "system", "table", "key", "fields"} <= set(entry):
        raise ConfigError(f"{where}: needs entity, system, table, key and fields")
    entity, system, table = str(entry["entity"]), str(entry["system"]), str(entry["table"])
    where = f"{where} ({system}.{table}->{entity})"
    if system not in prefixes:
        raise ConfigError(f"{where}: system {system!r} has no prefix", hint="add it under 'systems:'")
    if entity not in schemas:
        raise ConfigError(
            f"{where}: no canonical schema {entity!r}", hint=f"known: {', '.join(sorted(schemas))}"
        )
    if not isinstance(entry["fields"], Mapping):
        raise ConfigError(f"{where}: fields must map canonical field names to columns or specs")
    fields = tuple(_field(str(name), spec, system, prefixes, where) for name, spec in entry["fields"].items())
    schema_fields = {f["name"]: f for f in schemas[entity]["fields"]}
    produced = {"key", "system"} | {f.name for f in fields}
    for unknown in sorted(produced - set(schema_fields)):
        raise ConfigError(f"{where}: the {entity} schema has no field {unknown!r}")
    for spec in fields:
        _check_logical_type(spec, schema_fields[spec.name]["type"], where)
    unmapped = [name for name in schema_fields if name not in produced]
    for name in unmapped:
        if "default" not in schema_fields[name]:
            raise ConfigError(f"{where}: {entity} field {name!r} is not mapped and has no default")
    return EntityMapping(
        entity=entity,
        system=system,
        table=table,
        prefix=prefixes[system],
        key=_names(entry["key"], where),
        fields=fields,
        required=frozenset(name for name, f in schema_fields.items() if not _nullable(f["type"])),
        defaults={name: schema_fields[name]["default"] for name in unmapped},
    )


def _field(name: str, spec: Any, system: str, prefixes: dict[str, str], where: str) -> FieldMapping:
    if isinstance(spec, str):
        return FieldMapping(name, column=spec)
    if not isinstance(spec, Mapping) or len({"column", "ref", "value"} & set(spec)) != 1:
        raise ConfigError(f"{where}: field {name!r} needs exactly one of column, ref or value")
    unknown = sorted(set(spec) - _FIELD_KEYS)
    if unknown:
        raise ConfigError(f"{where}: field {name!r} has unknown settings {unknown}")
    convert = _names(spec.get("convert", []), where)
    for conversion in convert:
        if conversion not in CONVERSIONS:
            raise ConfigError(
                f"{where}: field {name!r}: unknown conversion {conversion!r}",
                hint=f"known conversions: {', '.join(CONVERSIONS)}",
            )
    target = str(spec.get("system", system))
    if "ref" in spec and target not in prefixes:
        raise ConfigError(f"{where}: field {name!r} refers to system {target!r}, which has no prefix")
    codes = spec.get("codes")
    if codes is not None and not isinstance(codes, Mapping):
        raise ConfigError(f"{where}: field {name!r}: codes must map source codes to canonical values")
    return FieldMapping(
        name,
        column=str(spec["column"]) if "column" in spec else None,
        ref=_names(spec["ref"], where) if "ref" in spec else (),
        ref_prefix=prefixes.get(target, "") if "ref" in spec else "",
        value=spec.get("value"),
        convert=convert,
        codes={str(k): str(v) for k, v in codes.items()} if codes is not None else None,
    )


def _names(value: Any, where: str) -> tuple[str, ...]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{where}: expected a name or a list of names, got {value!r}")
    return tuple(items)


def _nullable(avro_type: Any) -> bool:
    return isinstance(avro_type, list) and "null" in avro_type


def _check_logical_type(spec: FieldMapping, avro_type: Any, where: str) -> None:
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    for branch in branches:
        logical = branch.get("logicalType") if isinstance(branch, dict) else None
        needed = _LOGICAL_CONVERSIONS.get(str(logical))
        if needed and spec.column and (not spec.convert or spec.convert[-1] not in needed):
            ending = " or ".join(sorted(needed))
            raise ConfigError(
                f"{where}: field {spec.name!r} is a {logical}: end its conversions with {ending}"
            )


def validate_mapping(mapping: EntityMapping, raw_columns_by_table: Mapping[str, Iterable[str]]) -> None:
    """Fail with the missing column's name when the mapping reads a column the table lacks.

    ``raw_columns_by_table`` maps ``system.table`` (or just ``table``) to the table's columns.
    """
    columns = raw_columns_by_table.get(f"{mapping.system}.{mapping.table}")
    if columns is None:
        columns = raw_columns_by_table.get(mapping.table)
    if columns is None:
        raise ConfigError(
            f"mapping {mapping.name}: table {mapping.table!r} is not captured from system {mapping.system!r}",
            hint="add the table to the source in unsilo.yaml, or fix the mapping's system and table",
        )
    present = set(columns)
    missing = [column for column in mapping.columns() if column not in present]
    if missing:
        names = ", ".join(repr(column) for column in missing)
        raise ConfigError(
            f"mapping {mapping.name}: column {names} not in {mapping.system}.{mapping.table}",
            hint=f"its columns are {', '.join(sorted(present))}; fix the mapping or the table",
        )


def apply_mapping(mapping: EntityMapping, row: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical record for one source row; MappingError with the reason when it has none."""
    record: dict[str, Any] = {"key": _key(mapping, mapping.prefix, mapping.key, row, required=True)}
    record["system"] = mapping.system
    for spec in mapping.fields:
        if spec.ref:
            record[spec.name] = _key(mapping, spec.ref_prefix, spec.ref, row, required=False, field=spec.name)
        elif spec.column is None:
            record[spec.name] = spec.value
        else:
            record[spec.name] = _convert(mapping, spec, _get(mapping, row, spec.column, spec.name))
        if record[spec.name] is None and spec.name in mapping.required:
            raise MappingError("is null, and the canonical field is required", mapping=mapping.name,
                               field=spec.name, column=spec.column or ",".join(spec.ref))  # fmt: skip
    for name, default in mapping.defaults.items():
        record[name] = default
    return record


def _get(mapping: EntityMapping, row: Mapping[str, Any], column: str, field_name: str) -> Any:
    if column not in row:
        raise MappingError(
            "the row has no such column", mapping=mapping.name, field=field_name, column=column
        )
    return row[column]


def _key(
    mapping: EntityMapping,
    prefix: str,
    columns: tuple[str, ...],
    row: Mapping[str, Any],
    *,
    required: bool,
    field: str = "key",
) -> str | None:
    parts = []
    for column in columns:
        value = _get(mapping, row, column, field)
        text = "" if value is None else str(value).strip()
        if not text:
            if required:
                raise MappingError(
                    "key column is null or blank", mapping=mapping.name, field=field, column=column
                )
            return None
        parts.append(text)
    return f"{prefix}:{'/'.join(parts)}"


def _convert(mapping: EntityMapping, spec: FieldMapping, value: Any) -> Any:
    for conversion in spec.convert:
        if value is None:
            return None
        try:
            value = CONVERSIONS[conversion](value)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise MappingError(
                f"{conversion}: {exc}", mapping=mapping.name, field=spec.name, column=spec.column
            ) from exc
    if spec.codes is None or value is None:
        return value
    code = str(value)
    if code not in spec.codes:
        known = ", ".join(spec.codes)
        raise MappingError(f"unknown code {show(value)} (known: {known})", mapping=mapping.name,
                           field=spec.name, column=spec.column)  # fmt: skip
    return spec.codes[code]


def mappings_for(mappings: Iterable[EntityMapping], system: str, table: str) -> list[EntityMapping]:
    """The mappings that read rows of ``system.table`` (a table may feed several entities)."""
    return [m for m in mappings if m.system == system and m.table == table]
