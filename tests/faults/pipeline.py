"""The pipeline under test: the demo estate and a PostgreSQL source, every component a process.

:class:`Pipeline` creates the estate (SQLite, grown by a seeded workload so the snapshot
takes a while, audited by tests/faults/audit.py), a ``counters`` table in PostgreSQL
reached through a :class:`~tests.faults.proxy.CuttableProxy`, the unsilo.yaml, and the
supervised components: one connector per source, the canonicalizer, one worker per read
model and the API. :class:`Workload` keeps both sources changing; :class:`Progress` tells
how far the pipeline got (the summed log-end offsets of its topics), which triggers faults.
"""

from __future__ import annotations

import contextlib
import random
import threading
import time
from pathlib import Path

import psycopg2
from confluent_kafka import Consumer, KafkaException, TopicPartition

from hub.config import (
    ApiSettings,
    KafkaSettings,
    LocalSettings,
    ReadStoreSettings,
    RegistrySettings,
    Settings,
    SourceSettings,
)
from hub.errors import SourceUnavailableError
from hub.estate import SYSTEMS, TABLES, WorkloadSimulator, create_estate
from hub.kafka.topics import raw_topic
from tests.faults.audit import install_audit
from tests.faults.proxy import CuttableProxy
from tests.faults.services import FaultStack, RestartablePostgres
from tests.faults.supervisor import Supervisor
from tests.fixtures_postgres import run_sql, with_database
from tests.support import free_ports, unique, write_config

READ_MODELS = ("store_sales", "inventory_position", "customer_360", "employee_directory")
PG_SYSTEM = "faultpg"


class Pipeline:
    """Sources, configuration and supervised components of one fault-injection run."""

    def __init__(
        self,
        workdir: Path,
        stack: FaultStack,
        postgres: RestartablePostgres,
        seed: int,
        *,
        pregrow: int,
        counters: int,
        batch_size: int,
    ) -> None:
        self.workdir = workdir
        self.stack = stack
        self.postgres = postgres
        self.urls = create_estate(workdir / "estate", seed)
        with WorkloadSimulator(self.urls, seed + 1, rate=0) as grow:
            grow.run(changes=pregrow)
        self.dbs = {s: Path(self.urls[s].removeprefix("sqlite:///")) for s in SYSTEMS}
        for system in SYSTEMS:
            install_audit(self.dbs[system], list(TABLES[system]))

        database = unique("faults")
        admin = psycopg2.connect(postgres.url)
        admin.autocommit = True
        try:
            with admin.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{database}"')
        finally:
            admin.close()
        self.pg_url = with_database(postgres.url, database)
        run_sql(self.pg_url, "CREATE TABLE counters (id integer PRIMARY KEY, version integer NOT NULL)")
        run_sql(
            self.pg_url, "INSERT INTO counters SELECT i, 0 FROM generate_series(0, %s) AS i", (counters - 1,)
        )
        self.counters = counters
        self.proxy = CuttableProxy("127.0.0.1", postgres.port).start()
        proxied = with_database(f"postgresql://postgres@127.0.0.1:{self.proxy.port}/postgres", database)

        sources = [
            SourceSettings(
                name=system, system=system, kind="sqlite", url=str(self.dbs[system]),
                tables=list(TABLES[system]), batch_size=batch_size,
            )
            for system in SYSTEMS
        ] + [
            SourceSettings(
                name=PG_SYSTEM, system=PG_SYSTEM, kind="postgres", url=proxied, tables=["counters"],
                batch_size=batch_size, snapshot_chunk_size=batch_size, heartbeat_interval_s=2.0,
            )
        ]  # fmt: skip
        self.api_port = free_ports(1)[0]
        self.read_url = f"sqlite:///{workdir / 'read.db'}"
        self.settings = Settings(
            kafka=KafkaSettings(bootstrap_servers=stack.bootstrap),
            registry=RegistrySettings(url=stack.registry_url),
            local=LocalSettings(data_dir=workdir / ".unsilo"),
            read_store=ReadStoreSettings(url=self.read_url),
            api=ApiSettings(port=self.api_port, lag_history=workdir / "lag-history.db"),
            sources=sources,
        )
        self.config = write_config(self.settings, workdir / "unsilo.yaml")
        (workdir / "logs").mkdir(exist_ok=True)
        self.supervisor = Supervisor(self.config, workdir / "logs")
        for source in sources:
            self.supervisor.add(f"connector-{source.name}", "connector", "run", source.name)
        self.supervisor.add("canonicalizer", "canonicalizer", "canonicalize")
        for model in READ_MODELS:
            self.supervisor.add(f"projection-{model}", "projection", "project", model)
        self.supervisor.add("api", "api", "api")

    def raw_topics(self) -> dict[str, list[tuple[str, str]]]:
        """Per source: (table, raw topic)."""
        found = {s: [(t, raw_topic(s, t)) for t in TABLES[s]] for s in SYSTEMS}
        found[PG_SYSTEM] = [("counters", raw_topic(PG_SYSTEM, "counters"))]
        return found

    def versions(self) -> dict[int, int]:
        return {int(i): int(v) for i, v in run_sql(self.pg_url, "SELECT id, version FROM counters")}

    def close(self) -> None:
        self.supervisor.stop()
        self.proxy.close()


class Workload:
    """Keeps the estate (seeded WorkloadSimulator) and the counters table changing until stopped."""

    def __init__(self, pipeline: Pipeline, seed: int, estate_rate: float, counter_rate: float) -> None:
        self.pipeline = pipeline
        self.simulator = WorkloadSimulator(pipeline.urls, seed, rate=0)
        self.rng = random.Random(seed + 7)
        self.estate_rate = estate_rate
        self.counter_rate = counter_rate
        self.changes = 0
        self.bumps = 0
        self.failed = 0
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._estate, name="estate-workload", daemon=True),
            threading.Thread(target=self._counters, name="counter-workload", daemon=True),
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(60)
        self.simulator.close()

    def _estate(self) -> None:
        while not self._stop.wait(1.0 / self.estate_rate):
            try:
                self.simulator.step()
                self.changes += 1
            except SourceUnavailableError:  # the database is locked a moment: try again
                self.failed += 1

    def _counters(self) -> None:
        conn = None
        while not self._stop.wait(1.0 / self.counter_rate):
            try:
                if conn is None:
                    conn = psycopg2.connect(self.pipeline.pg_url, connect_timeout=3)
                    conn.autocommit = True
                with conn.cursor() as cur:
                    cur.execute(
                        "UPDATE counters SET version = version + 1 WHERE id = %s",
                        (self.rng.randrange(self.pipeline.counters),),
                    )
                self.bumps += 1
            except psycopg2.Error:  # the server is restarting: connect again
                self.failed += 1
                with contextlib.suppress(Exception):
                    conn.close()  # type: ignore[union-attr]
                conn = None
        with contextlib.suppress(Exception):
            conn.close()  # type: ignore[union-attr]


class Progress:
    """The summed log-end offsets of the pipeline's topics; the last known sum while the broker is away."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.last = 0
        self._consumer: Consumer | None = None

    def total(self, prefixes: tuple[str, ...] = ("unsilo.raw.", "unsilo.canonical.")) -> int:
        try:
            if self._consumer is None:
                self._consumer = Consumer(
                    {**self.kafka.client_config(), "group.id": unique("probe"), "log_level": 0}
                )
            topics = self._consumer.list_topics(timeout=2).topics
            total = 0
            for name, meta in topics.items():
                if name.startswith(prefixes):
                    for partition in meta.partitions:
                        total += self._consumer.get_watermark_offsets(
                            TopicPartition(name, partition), timeout=2, cached=False
                        )[1]
            self.last = total
        except KafkaException:
            self.close()
        return self.last

    def wait_growth(self, amount: int, timeout_s: float) -> bool:
        """Wait until the total grew by ``amount``; False when the deadline passed first."""
        start = self.total()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.total() >= start + amount:
                return True
            time.sleep(0.1)
        return False

    def close(self) -> None:
        if self._consumer is not None:
            with contextlib.suppress(Exception):
                self._consumer.close()
            self._consumer = None
