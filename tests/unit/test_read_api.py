"""The read API serves each read model with filters and pagination, and says what is wrong."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from fastapi.testclient import TestClient

from hub.api.app import create_app
from hub.config import KafkaSettings, ReadStoreSettings, RegistrySettings, Settings
from hub.kafka.topics import canonical_topic
from projections.events import RawEvent
from projections.store import create_read_store
from projections.store_sales.builder import store_sales_builder


def client(tmp_path: Path) -> TestClient:
    settings = Settings(
        kafka=KafkaSettings(bootstrap_servers="127.0.0.1:1"),
        registry=RegistrySettings(url="http://127.0.0.1:1/apis/ccompat/v7"),
        read_store=ReadStoreSettings(url=f"sqlite:///{tmp_path / 'read.db'}"),
    )
    return TestClient(create_app(settings, background=False))


def fill_store_sales(tmp_path: Path) -> None:
    builder = store_sales_builder(create_read_store(f"sqlite:///{tmp_path / 'read.db'}"))
    at = dt.datetime(2026, 11, 27, 9, 30, tzinfo=dt.UTC)
    builder.apply(
        [
            RawEvent(canonical_topic("sale"), 0, i, {"key": f"sales:{i}"},
                     {"key": f"sales:{i}", "store_key": store, "product_key": "sales:SKU1", "quantity": 1,
                      "amount": Decimal("2.50"), "sold_at": at}, None, None)
            for i, store in enumerate(["sales:S001", "sales:S001", "sales:S002"])
        ]
    )  # fmt: skip


def test_read_model_rows_with_filter_and_pagination(tmp_path: Path) -> None:
    """GET /read-models/store_sales?store_key=..&period=day gives that store's day and the total count."""
    fill_store_sales(tmp_path)

    answer = client(tmp_path).get(
        "/read-models/store_sales", params={"store_key": "sales:S001", "period": "day"}
    )

    assert answer.status_code == 200
    body = answer.json()
    assert body["total"] == 1
    assert body["rows"] == [
        {
            "store_key": "sales:S001",
            "period": "day",
            "starts": "2026-11-27",
            "revenue": "5.00",
            "tickets": "2",
        }
    ]
    page = client(tmp_path).get("/read-models/store_sales", params={"limit": 1, "offset": 1}).json()
    assert page["total"] == 4 and len(page["rows"]) == 1


def test_unknown_read_model_and_column_are_named(tmp_path: Path) -> None:
    """An unknown read model is a 404 listing the known ones; an unknown filter column a 400 naming it."""
    fill_store_sales(tmp_path)
    api = client(tmp_path)

    missing = api.get("/read-models/nope")
    bad_filter = api.get("/read-models/store_sales", params={"shop": "x"})

    assert missing.status_code == 404 and "customer_360" in missing.json()["detail"]
    assert bad_filter.status_code == 400 and "shop" in bad_filter.json()["detail"]
    assert "/read-models/{name}" in api.get("/openapi.json").json()["paths"]
