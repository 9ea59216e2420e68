"""The canonical entities' Avro schemas, shipped as ``.avsc`` files in the ``schemas`` package.

Canonical records live in the namespace ``io.unsilo.canonical``, one topic per entity
(``unsilo.canonical.<entity>``), each record and field documented. The files are read
through :mod:`importlib.resources`, so they are found wherever the package is installed.
:func:`backward_problems` says why a new version could not read what the previous one
wrote (the registry's BACKWARD rule), before the registry is asked.
"""

from __future__ import annotations

import json
from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import fastavro
from fastavro.types import Schema as ParsedSchema

from hub.errors import SchemaError

PACKAGE = "schemas"
CANONICAL_NAMESPACE = "io.unsilo.canonical"
_PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}
_NAMED = {"record", "enum", "fixed"}


def schema_files() -> list[Traversable]:
    """Every ``.avsc`` file of the installed ``schemas`` package, by file name."""
    files = [entry for entry in resources.files(PACKAGE).iterdir() if entry.name.endswith(".avsc")]
    return sorted(files, key=lambda entry: entry.name)


def load_schemas() -> dict[str, dict[str, Any]]:
    """Every shipped schema by full name (``io.unsilo.canonical.Customer``)."""
    found: dict[str, dict[str, Any]] = {}
    for entry in schema_files():
        try:
            schema = json.loads(entry.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise SchemaError(f"schema file {entry.name} is not valid JSON: {exc}") from exc
        name = full_name(schema)
        if name in found:
            raise SchemaError(f"schema {name} is defined twice (again in {entry.name})")
        found[name] = schema
    return found


def canonical_schemas() -> dict[str, dict[str, Any]]:
    """The canonical entities' schemas by entity name (``Customer``, ``OrderLine``...)."""
    return {
        schema["name"]: schema
        for name, schema in load_schemas().items()
        if name.startswith(CANONICAL_NAMESPACE + ".")
    }


def list_schemas() -> list[str]:
    """The full names of every shipped schema, sorted."""
    return sorted(load_schemas())


def canonical_schema(entity: str) -> dict[str, Any]:
    """The schema of one canonical entity; SchemaError naming the known ones otherwise."""
    schemas = canonical_schemas()
    if entity not in schemas:
        raise SchemaError(
            f"no canonical schema for entity {entity!r}",
            hint=f"known entities: {', '.join(sorted(schemas))}",
        )
    return schemas[entity]


def full_name(schema: dict[str, Any]) -> str:
    """``namespace.name`` of a named schema (or its name when it is already dotted)."""
    name = str(schema.get("name", ""))
    namespace = schema.get("namespace")
    return name if "." in name or not namespace else f"{namespace}.{name}"


def parse(schema: dict[str, Any]) -> ParsedSchema:
    """``schema`` parsed by fastavro; SchemaError saying what is wrong otherwise."""
    try:
        return fastavro.parse_schema(schema, named_schemas={})
    except (fastavro.schema.SchemaParseException, fastavro.schema.UnknownType, ValueError, TypeError) as exc:
        raise SchemaError(f"schema {full_name(schema) or '?'} is not valid Avro: {exc}") from exc


def undocumented(schema: Any, path: str = "") -> list[str]:
    """Paths of the records and fields in ``schema`` that have no ``doc``."""
    missing: list[str] = []
    if isinstance(schema, list):
        for branch in schema:
            missing += undocumented(branch, path)
    elif isinstance(schema, dict) and schema.get("type") == "record":
        here = path or full_name(schema)
        if not str(schema.get("doc", "")).strip():
            missing.append(here)
        for field in schema.get("fields", []):
            field_path = f"{here}.{field.get('name')}"
            if not str(field.get("doc", "")).strip():
                missing.append(field_path)
            missing += [p for p in undocumented(field.get("type"), field_path) if p != field_path]
    elif isinstance(schema, dict) and schema.get("type") in ("array", "map"):
        missing += undocumented(schema.get("items", schema.get("values")), path)
    return missing


def backward_problems(new: Any, old: Any) -> list[str]:
    """Why ``new`` cannot read data written with ``old`` (empty: BACKWARD compatible).

    Avro's resolution rules: a field the new version adds needs a default; a field it
    keeps must read the old type (same type, a numeric or string/bytes promotion, or a
    union holding one); fields it drops are ignored. Changing a logical type (a decimal's
    scale, say) is refused too, because the bytes would still decode to a different value.
    """
    return _read_problems(new, old, _path(new))


def is_backward_compatible(new: Any, old: Any) -> bool:
    return not backward_problems(new, old)


def _path(schema: Any) -> str:
    return full_name(schema) if isinstance(schema, dict) and schema.get("name") else "value"


def _read_problems(reader: Any, writer: Any, path: str) -> list[str]:
    if isinstance(writer, list):
        return [problem for branch in writer for problem in _read_problems(reader, branch, path)]
    if isinstance(reader, list):
        if any(not _read_problems(branch, writer, path) for branch in reader):
            return []
        return [f"{path}: the new union {_describe(reader)} cannot hold the old {_describe(writer)}"]
    r, w = _as_dict(reader), _as_dict(writer)
    kind_r, kind_w = r["type"], w["type"]
    if kind_r != kind_w:
        if kind_r in _PROMOTIONS.get(kind_w, set()) and "logicalType" not in r and "logicalType" not in w:
            return []
        return [f"{path}: type changed from {_describe(writer)} to {_describe(reader)}"]
    logical = ("logicalType", "precision", "scale")
    if any(r.get(attribute) != w.get(attribute) for attribute in logical):
        return [f"{path}: logical type changed from {_describe(writer)} to {_describe(reader)}"]
    if kind_r in _NAMED and str(r.get("name", "")).split(".")[-1] != str(w.get("name", "")).split(".")[-1]:
        return [f"{path}: named type changed from {w.get('name')} to {r.get('name')}"]
    if kind_r == "record":
        return _record_problems(r, w, path)
    if kind_r == "enum":
        extra = [s for s in w.get("symbols", []) if s not in r.get("symbols", [])]
        return [f"{path}: symbols {extra} missing in the new enum"] if extra and "default" not in r else []
    if kind_r == "fixed" and r.get("size") != w.get("size"):
        return [f"{path}: fixed size changed from {w.get('size')} to {r.get('size')}"]
    if kind_r in ("array", "map"):
        part = "items" if kind_r == "array" else "values"
        return _read_problems(r[part], w[part], f"{path}[]")
    return []


def _record_problems(reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
    old_fields = {field["name"]: field for field in writer.get("fields", [])}
    problems: list[str] = []
    for field in reader.get("fields", []):
        names = [field["name"], *field.get("aliases", [])]
        match = next((old_fields[name] for name in names if name in old_fields), None)
        field_path = f"{path}.{field['name']}"
        if match is not None:
            problems += _read_problems(field["type"], match["type"], field_path)
        elif "default" not in field:
            problems.append(f"{field_path}: added without a default, so old records cannot be read")
    return problems


def _as_dict(schema: Any) -> dict[str, Any]:
    if isinstance(schema, dict):
        inner = schema.get("type")
        return _as_dict(inner) if isinstance(inner, dict) else schema  # {"type": {"type": ...}}
    return {"type": schema}


def _describe(schema: Any) -> str:
    if isinstance(schema, list):
        return "[" + ", ".join(_describe(branch) for branch in schema) + "]"
    if isinstance(schema, dict):
        if schema.get("logicalType") == "decimal":
            return f"decimal({schema.get('precision')},{schema.get('scale')})"
        return str(schema.get("logicalType") or schema.get("name") or schema.get("type"))
    return str(schema)
