"""The catalog's view of a topic: its kind, its owner and the read models that consume it."""

from __future__ import annotations

from pathlib import Path

from hub.catalog import consumers_of, is_listed, owner_of, read_model_inputs, topic_kind
from hub.config import Settings, SourceSettings
from projections.read_models import READ_MODELS


def settings() -> Settings:
    shop = SourceSettings(
        name="shop", system="sales", kind="sqlite", url=str(Path("shop.db")), tables=["order items"]
    )
    outbox = SourceSettings(
        name="orders_outbox", system="orders", kind="outbox", url="sqlite:///o.db", tables=["outbox"]
    )
    return Settings(sources=[shop, outbox])


def test_topics_are_sorted_into_kinds_and_internal_ones_hidden() -> None:
    """Raw, canonical, outbox, DLQ and quarantine topics are listed; _unsilo.* only with --all."""
    assert [topic_kind(t) for t in ("unsilo.raw.a.b", "unsilo.canonical.sale", "unsilo.dlq.x")] == [
        "raw",
        "canonical",
        "dlq",
    ]
    assert is_listed("unsilo.quarantine.shop", include_all=False)
    assert not is_listed("_unsilo.offsets", include_all=False)
    assert is_listed("_unsilo.offsets", include_all=True)


def test_a_configured_table_names_its_source_even_when_the_topic_name_was_sanitised() -> None:
    """'order items' of system sales is topic unsilo.raw.sales.order_items, owned by source shop."""
    owner = owner_of("unsilo.raw.sales.order_items", settings())

    assert (owner.system, owner.source, owner.table) == ("sales", "shop", "order items")


def test_an_unconfigured_raw_topic_is_read_from_its_name() -> None:
    """A raw topic of a source not in this config still shows its system and table."""
    owner = owner_of("unsilo.raw.finance.ar_customer", settings())

    assert (owner.system, owner.source, owner.table) == ("finance", None, "ar_customer")


def test_outbox_and_canonical_topics_name_their_owner() -> None:
    """The one outbox source owns outbox topics; a canonical topic names its entity."""
    assert owner_of("unsilo.outbox.order", settings()).system == "orders"
    assert owner_of("unsilo.canonical.stock_movement", settings()).entity == "stock_movement"
    assert owner_of("unsilo.quarantine.shop", settings()).system == "sales"


def test_canonical_topics_list_the_read_models_that_read_them() -> None:
    """unsilo.canonical.sale feeds store_sales and inventory_position; raw topics feed the mirror."""
    inputs = read_model_inputs()

    assert consumers_of("unsilo.canonical.sale", inputs) == ["inventory_position", "store_sales"]
    assert consumers_of("unsilo.raw.sales.customers", inputs) == ["mirror"]
    assert consumers_of("unsilo.dlq.shop", inputs) == []


def test_every_read_model_declares_its_inputs() -> None:
    """The catalog's read-model inputs name exactly the read models projections maintains."""
    assert set(read_model_inputs()) == set(READ_MODELS)
