"""An Avro schema resolved into a plain program that both hub encoders run.

Names, namespaces, unions and logical types are resolved once here, so the Python encoder
(:mod:`hub.avro_codec`) and the C encoder (``hub/_avro_native.c``) only walk nested tuples:

==============================  ==============================================================
``("null",)`` ... ``("string",)``  a primitive: null, boolean, int, long, float, double, bytes, string
``("fixed", size)``             ``size`` bytes
``("enum", {symbol: index})``   a symbol's index
``("record", slot, fields)``    ``fields`` is a tuple of ``(name, node)``; ``slot`` numbers the record
``("ref", slot)``               the record of that slot, used by name (recursive schemas)
``("union", null, other, node, hints)``  branch indexes of null (-1 if none) and of the one other
                                branch, that branch's node, and ``{branch name: (index, node)}``
                                for fastavro's ``(name, value)`` hints
``("array", node)``, ``("map", node)``
``("decimal", scale, precision)``, ``("date",)``, ``("timestamp-micros",)``,
``("timestamp-millis",)``, ``("time-micros",)``, ``("uuid",)``
==============================  ==============================================================

Constructs neither encoder handles (unions of several non-null branches, unknown logical
types) raise :class:`Unsupported`: such schemas are written by fastavro throughout.
"""

from __future__ import annotations

from typing import Any

Node = tuple[Any, ...]
PRIMITIVES = ("null", "boolean", "int", "long", "float", "double", "bytes", "string")
_LOGICAL = {
    ("int", "date"): "date",
    ("long", "timestamp-micros"): "timestamp-micros",
    ("long", "timestamp-millis"): "timestamp-millis",
    ("long", "time-micros"): "time-micros",
    ("string", "uuid"): "uuid",
}


class Unsupported(Exception):
    """The schema uses a construct the hub's encoders do not compile: use fastavro."""


def program(schema: Any) -> Node:
    """The program for ``schema`` (as ``fastavro.parse_schema`` returns it, or plain JSON)."""
    return _Resolver().build(schema, "")


class _Resolver:
    def __init__(self) -> None:
        self.named: dict[str, Node] = {}
        self.records = 0

    def build(self, schema: Any, namespace: str) -> Node:
        if isinstance(schema, str):
            return self._primitive_or_named(schema, namespace)
        if isinstance(schema, list):
            return self._union(schema, namespace)
        if not isinstance(schema, dict):
            raise Unsupported(f"schema {schema!r}")
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if kind == "record" or kind == "error":
            return self._record(schema, namespace)
        if logical is not None:
            return self._logical(schema, str(kind), str(logical))
        if kind == "enum":
            symbols = {str(s): i for i, s in enumerate(schema["symbols"])}
            return self._register(schema, namespace, ("enum", symbols))
        if kind == "array":
            return ("array", self.build(schema["items"], namespace))
        if kind == "map":
            return ("map", self.build(schema["values"], namespace))
        if kind == "fixed":
            return self._register(schema, namespace, ("fixed", int(schema["size"])))
        return self.build(kind, namespace)

    def _primitive_or_named(self, name: str, namespace: str) -> Node:
        if name in PRIMITIVES:
            return (name,)
        node = self.named.get(name) or self.named.get(f"{namespace}.{name}")
        if node is None:
            raise Unsupported(f"unknown named type {name}")
        return node

    def _register(self, schema: dict[str, Any], namespace: str, node: Node) -> Node:
        full = full_name(schema, namespace)
        self.named[full] = node
        self.named.setdefault(str(schema["name"]), node)
        return node

    def _record(self, schema: dict[str, Any], namespace: str) -> Node:
        space = str(schema.get("namespace", namespace))
        if "." in str(schema["name"]):
            space = str(schema["name"]).rsplit(".", 1)[0]
        slot, self.records = self.records, self.records + 1
        self._register(schema, namespace, ("ref", slot))  # what the record's own fields see
        fields = tuple((str(f["name"]), self.build(f["type"], space)) for f in schema["fields"])
        return ("record", slot, fields)

    def _union(self, branches: list[Any], namespace: str) -> Node:
        nodes = [self.build(b, namespace) for b in branches]
        names = [_branch_name(b, namespace) for b in branches]
        nulls = [i for i, n in enumerate(names) if n == "null"]
        others = [i for i, n in enumerate(names) if n != "null"]
        if len(others) != 1:
            raise Unsupported("a union of several non-null branches")
        hints = {n: (i, node) for i, (n, node) in enumerate(zip(names, nodes, strict=True))}
        return ("union", nulls[0] if nulls else -1, others[0], nodes[others[0]], hints)

    def _logical(self, schema: dict[str, Any], kind: str, logical: str) -> Node:
        if logical == "decimal" and kind == "bytes":
            return ("decimal", int(schema.get("scale", 0)), int(schema["precision"]))
        name = _LOGICAL.get((kind, logical))
        if name is None:
            raise Unsupported(f"logical type {logical} on {kind}")
        return (name,)


def full_name(schema: dict[str, Any], namespace: str) -> str:
    name = str(schema["name"])
    space = str(schema.get("namespace", namespace))
    return name if "." in name or not space else f"{space}.{name}"


def _branch_name(schema: Any, namespace: str) -> str:
    if isinstance(schema, str):
        return schema if schema in PRIMITIVES or "." in schema or not namespace else f"{namespace}.{schema}"
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind in ("record", "error", "enum", "fixed"):
            return full_name(schema, namespace)
        return str(kind)
    raise Unsupported("a union inside a union")
