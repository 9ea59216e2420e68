"""inventory_position as plain code.

On hand per (product, location) = receipts + transfers + adjustments (signed quantities
of the warehouse's stock movements) - units sold at the tills of that location. Units
sold per day are kept too, so turnover and days of supply over a window are computed
when read (see :func:`turnover`).
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from sqlalchemy import Connection, Engine, select

from hub.kafka.topics import canonical_topic
from projections.aggregates import AggregateBuilder, AggregateTable, Contribution

POSITION = AggregateTable(
    "inventory_position", ("product_key", "location_key"), ("on_hand", "received", "sold")
)
DAILY = AggregateTable("inventory_daily_sales", ("product_key", "location_key", "day"), ("units",))
PROJECTION = "inventory_position"


def movement_contributions(move: dict[str, Any]) -> list[Contribution]:
    quantity = decimal.Decimal(move["quantity"])
    received = quantity if move["kind"] == "RECEIPT" else decimal.Decimal(0)
    bucket = (move["product_key"], move["location_key"])
    return [Contribution(POSITION.name, bucket, {"on_hand": quantity, "received": received})]


def sale_contributions(sale: dict[str, Any]) -> list[Contribution]:
    units = decimal.Decimal(sale["quantity"])
    bucket = (sale["product_key"], sale["store_key"])
    day = sale["sold_at"].astimezone(dt.UTC).strftime("%Y-%m-%d")
    return [
        Contribution(POSITION.name, bucket, {"on_hand": -units, "sold": units}),
        Contribution(DAILY.name, (*bucket, day), {"units": units}),
    ]


def inventory_builder(
    engine: Engine, projection: str = PROJECTION, table_suffix: str = ""
) -> AggregateBuilder:
    return AggregateBuilder(
        engine,
        projection,
        [POSITION, DAILY],
        {
            canonical_topic("stock_movement"): movement_contributions,
            canonical_topic("sale"): sale_contributions,
        },
        table_suffix=table_suffix,
    )


def turnover(
    conn: Connection, builder: AggregateBuilder, product: str, location: str, today: dt.date, days: int = 30
) -> dict[str, decimal.Decimal | None]:
    """Units sold over the window, turnover (sold / on hand) and days of supply."""
    position, daily = builder.tables[POSITION.name], builder.tables[DAILY.name]
    on_hand_row = conn.execute(
        select(position.c.on_hand).where(
            position.c.product_key == product, position.c.location_key == location
        )
    ).first()
    on_hand = on_hand_row[0] if on_hand_row else decimal.Decimal(0)
    since = (today - dt.timedelta(days=days - 1)).isoformat()
    sold = sum(
        (
            row[0]
            for row in conn.execute(
                select(daily.c.units).where(
                    daily.c.product_key == product, daily.c.location_key == location, daily.c.day >= since
                )
            )
        ),
        decimal.Decimal(0),
    )
    per_day = sold / days
    return {
        "sold_in_window": sold,
        "turnover": (sold / on_hand) if on_hand > 0 else None,
        "days_of_supply": (on_hand / per_day) if per_day > 0 else None,
    }
