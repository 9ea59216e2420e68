"""The read models this hub maintains: which topics feed each and how to build it."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from hub.config import Settings
from hub.errors import ConfigError
from hub.kafka.admin import KafkaAdmin
from hub.kafka.topics import canonical_topic, raw_topic
from projections.customer_360.builder import TOPICS as CUSTOMER_360_TOPICS
from projections.customer_360.builder import customer_360_builder
from projections.employee_directory.builder import ENTITIES as DIRECTORY_ENTITIES
from projections.employee_directory.builder import employee_directory_builder
from projections.inventory_position.builder import inventory_builder
from projections.rebuild import BuilderFactory
from projections.store_sales.builder import store_sales_builder
from projections.table_mirror.app import raw_topics
from projections.table_mirror.builder import MirrorBuilder
from projections.table_mirror.tables import mirror_table_name


@dataclass(frozen=True)
class ReadModel:
    name: str
    topics: Callable[[Settings], list[str]]
    builder: BuilderFactory
    relation: str | None = None  # the table or view users read (None: one table per topic)


def _canonical(*entities: str) -> Callable[[Settings], list[str]]:
    def topics(settings: Settings) -> list[str]:
        wanted = [canonical_topic(e) for e in entities]
        admin = KafkaAdmin(settings.kafka)
        deadline = time.monotonic() + 60
        while True:
            missing = [t for t in wanted if t not in admin.topic_names()]
            if not missing:
                return wanted
            if time.monotonic() > deadline:
                raise ConfigError(
                    f"topic(s) {missing} do not exist yet", hint="run `unsilo canonicalize` first"
                )
            time.sleep(1.0)

    return topics


READ_MODELS: dict[str, ReadModel] = {
    "mirror": ReadModel(
        "mirror", lambda s: raw_topics(s, "unsilo.raw."), lambda e, p, sfx: MirrorBuilder(e, p, sfx)
    ),
    "store_sales": ReadModel("store_sales", _canonical("sale"), store_sales_builder, "store_sales"),
    "inventory_position": ReadModel(
        "inventory_position", _canonical("stock_movement", "sale"), inventory_builder, "inventory_position"
    ),
    "customer_360": ReadModel(
        "customer_360",
        _canonical(*(t.removeprefix("unsilo.canonical.") for t in CUSTOMER_360_TOPICS)),
        customer_360_builder,
        "customer_360",
    ),
    "employee_directory": ReadModel(
        "employee_directory",
        _canonical(*DIRECTORY_ENTITIES),
        employee_directory_builder,
        "employee_directory",
    ),
}


def read_model(name: str) -> ReadModel:
    """The read model called ``name``; a ConfigError listing the known ones otherwise."""
    found = READ_MODELS.get(name)
    if found is None:
        raise ConfigError(f"unknown read model {name!r}", hint=f"available: {', '.join(READ_MODELS)}")
    return found


def relations(settings: Settings | None = None) -> dict[str, str]:
    """Read model name -> the table or view users read (for the HTTP API); with ``settings``,
    also each configured source table's mirror table, under its own name (as `unsilo show`)."""
    found = {name: model.relation for name, model in READ_MODELS.items() if model.relation is not None}
    for source in settings.sources if settings is not None else []:
        for table in source.tables:
            name = mirror_table_name(raw_topic(source.system, table.name))
            found[name] = name
    return found
