"""store_sales as plain code: each canonical Sale adds its amount and one ticket to its
store's hour and day buckets (a correction moves it, a void takes it back)."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from sqlalchemy import Engine

from hub.kafka.topics import canonical_topic
from projections.aggregates import AggregateBuilder, AggregateTable, Contribution

SALES = AggregateTable("store_sales", ("store_key", "period", "starts"), ("revenue", "tickets"))
PROJECTION = "store_sales"


def sale_contributions(sale: dict[str, Any]) -> list[Contribution]:
    """A sale counts once in its store's hour and once in its store's day."""
    sold_at: dt.datetime = sale["sold_at"].astimezone(dt.UTC)
    hour = sold_at.replace(minute=0, second=0, microsecond=0)
    amounts = {"revenue": decimal.Decimal(sale["amount"]), "tickets": decimal.Decimal(1)}
    return [
        Contribution(SALES.name, (sale["store_key"], "hour", hour.strftime("%Y-%m-%dT%H:00")), amounts),
        Contribution(SALES.name, (sale["store_key"], "day", sold_at.strftime("%Y-%m-%d")), amounts),
    ]


def store_sales_builder(
    engine: Engine, projection: str = PROJECTION, table_suffix: str = ""
) -> AggregateBuilder:
    return AggregateBuilder(
        engine,
        projection,
        [SALES],
        {canonical_topic("sale"): sale_contributions},
        table_suffix=table_suffix,
    )
