"""Column masking, applied to source values before they are encoded or leave the connector.

``drop`` removes the column from the schema, ``hash`` replaces each value by a keyed
HMAC-SHA256 (hex; equal inputs give equal outputs, so joins on the column still work),
``redact`` replaces each non-null value by a fixed marker.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from hub.avro_types import Column, Converter

REDACTED = "*****"


def masked_column(column: Column) -> Column:
    """The column as it appears after ``hash`` or ``redact``: a string of the same name."""
    return Column(
        name=column.name,
        sql_type="TEXT",
        nullable=column.nullable,
        primary_key=column.primary_key,
        avro_name=column.avro_name,
    )


def hasher(key: bytes) -> Converter:
    def mask(value: Any) -> str | None:
        if value is None:
            return None
        text = value.hex() if isinstance(value, (bytes, bytearray)) else str(value)
        return hmac.new(key, text.encode("utf-8"), hashlib.sha256).hexdigest()

    return mask


def redactor(value: Any) -> str | None:
    return None if value is None else REDACTED
