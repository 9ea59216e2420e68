"""Projections started together on one PostgreSQL read store all prepare their tables.

Seen in a demo run: four projections started at once on a fresh PostgreSQL store, two created
the shared positions table at the same moment, and one stopped with DuplicateTable.
"""

from __future__ import annotations

import threading

import psycopg2
from sqlalchemy import create_engine, inspect

from hub.sql_urls import engine_url
from projections.read_models import READ_MODELS
from tests.fixtures_postgres import with_database

NAMES = ["store_sales", "inventory_position", "customer_360", "employee_directory", "mirror"]


def prepare_all_at_once(url: str) -> list[BaseException]:
    barrier = threading.Barrier(len(NAMES) * 2)
    errors: list[BaseException] = []

    def prepare(name: str) -> None:
        engine = create_engine(engine_url(url))
        try:
            barrier.wait()
            READ_MODELS[name].builder(engine, name, "")
        except BaseException as exc:
            errors.append(exc)
        finally:
            engine.dispose()

    threads = [threading.Thread(target=prepare, args=(name,)) for name in NAMES * 2]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def test_projections_starting_together_on_a_fresh_postgresql_store(postgres_url: str) -> None:
    admin = psycopg2.connect(postgres_url)
    admin.autocommit = True
    try:
        for attempt in range(4):  # each on a fresh database: the race is at the first CREATE
            name = f"unsilo_race_{attempt}"
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                cur.execute(f"CREATE DATABASE {name}")
            url = with_database(postgres_url, name)
            errors = prepare_all_at_once(url)
            assert errors == [], errors
            engine = create_engine(engine_url(url))
            assert "unsilo_projection_positions" in inspect(engine).get_table_names()
            engine.dispose()
            with admin.cursor() as cur:
                cur.execute(f"DROP DATABASE {name} WITH (FORCE)")
    finally:
        admin.close()
