"""Named conversions of legacy values into canonical ones, for the declarative mappings.

Each takes one non-null source value and returns its canonical form, or raises ValueError
with a reason a user can act on (``'20230229' is not a YYYYMMDD date``). Values arrive as
read from SQL or decoded from a raw topic, so each accepts both (a DECIMAL may be a REAL
in SQLite, a date may be text).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

CENT = Decimal("0.01")
_COMPACT = re.compile(r"[\s.\-/]")
_YYYYMMDD = re.compile(r"\d{8}")


def _text(value: Any) -> str:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8")
    if not isinstance(value, str):
        raise ValueError(f"expected text, got {type(value).__name__} {show(value)}")
    return value


def _yyyymmdd(value: Any) -> dt.date:
    text = str(value).strip()
    if not _YYYYMMDD.fullmatch(text):
        raise ValueError(f"{show(value)} is not a YYYYMMDD date")
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError as exc:
        raise ValueError(f"{show(value)} is not a YYYYMMDD date ({exc})") from exc


def _date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(_text(value).strip()[:10])
    except ValueError as exc:
        raise ValueError(f"{show(value)} is not a date") from exc


def _timestamp(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        moment = value
    else:
        try:
            moment = dt.datetime.fromisoformat(_text(value).strip())
        except ValueError as exc:
            raise ValueError(f"{show(value)} is not a timestamp") from exc
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"{show(value)} is not a whole number")
    if isinstance(value, int):
        return value
    try:
        number = Decimal(value.strip() if isinstance(value, str) else str(value))
    except InvalidOperation as exc:
        raise ValueError(f"{show(value)} is not a whole number") from exc
    if not number.is_finite() or number != number.to_integral_value():
        raise ValueError(f"{show(value)} is not a whole number")
    return int(number)


def _cents(value: Any) -> Decimal:
    return Decimal(_int(value)).scaleb(-2)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{show(value)} is not an amount")
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except InvalidOperation as exc:
        raise ValueError(f"{show(value)} is not an amount") from exc
    if not number.is_finite():
        raise ValueError(f"{show(value)} is not an amount")
    rounded = number.quantize(CENT, rounding=ROUND_HALF_EVEN)
    if abs(rounded - number) > Decimal("0.000001"):  # float noise from SQLite is fine, real cents are not
        raise ValueError(f"{show(value)} has more than 2 decimal places")
    return rounded


CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    "strip": lambda value: _text(value).strip(),
    "upper": lambda value: _text(value).upper(),
    "lower": lambda value: _text(value).lower(),
    "title": lambda value: _text(value).title(),
    "compact": lambda value: _COMPACT.sub("", _text(value)).upper(),
    "blank_as_null": lambda value: None if isinstance(value, str) and not value.strip() else value,
    "yyyymmdd": _yyyymmdd,
    "date": _date,
    "timestamp": _timestamp,
    "cents": _cents,
    "decimal": _decimal,
    "int": _int,
    "str": lambda value: _text(value) if isinstance(value, (bytes, bytearray)) else str(value),
}
"""Conversions by name: text clean-up, legacy dates, money (``cents`` -> decimal) and numbers."""


def show(value: Any) -> str:
    """``value``'s repr, cut to 40 characters, for error messages."""
    shown = repr(value)
    return shown if len(shown) <= 40 else shown[:37] + "..."
