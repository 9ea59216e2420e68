"""Debezium on Kafka Connect standalone, the peer of ``benchmarks/versus_debezium.py``.

The jars (Kafka Connect at the broker's Kafka version, Debezium's PostgreSQL and MySQL
connectors, Apicurio's Kafka Connect AvroConverter, log4j) are resolved once from Maven
Central by ``deploy/debezium/pom.xml`` into ``.unsilo/debezium-lib`` (as ``unsilo install``
does for the broker), and run as one flat classpath:
``java -cp '<lib>/*' org.apache.kafka.connect.cli.ConnectStandalone worker.properties
connector.properties``.

Avro goes through the same registry as Unsilo's: Apicurio's converter 2.6 (the only one on
Maven Central) speaks the registry's v2 API, registers ``<topic>-key``/``<topic>-value`` in
the default group and writes the Confluent wire format with the content id
(``as-confluent``, ``use-id=contentId``), which is the id the registry's Confluent API
serves, so one Avro decoder reads both tools' topics.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from hub.local.tools import find_java, log_tail, resolve_into

ROOT = Path(__file__).resolve().parent.parent
POM = ROOT / "deploy" / "debezium" / "pom.xml"
MAVEN_SETTINGS = POM.with_name("settings.xml")
LIB = ROOT / ".unsilo" / "debezium-lib"
MAIN_CLASS = "org.apache.kafka.connect.cli.ConnectStandalone"
CONVERTER = "io.apicurio.registry.utils.converter.AvroConverter"
# Debezium's default poll.interval.ms is 500; Unsilo's connectors poll every 50 ms
# (poll_interval_s), so both wait alike for new changes.
POLL_INTERVAL_MS = 50
LOG4J = """\
status = warn
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = FILE
"""


def ensure_installed(lib_dir: Path = LIB) -> Path:
    """The directory of the Connect + Debezium jars, resolved with Maven the first time."""
    if any(lib_dir.glob("debezium-connector-postgres-*.jar")) and any(lib_dir.glob("connect-runtime-*.jar")):
        return lib_dir
    resolve_into(
        lib_dir,
        POM,
        ["-q", "-s", str(MAVEN_SETTINGS), "dependency:copy-dependencies", "-DincludeScope=runtime"],
        log_file=lib_dir.parent / "logs" / "debezium-maven.log",
        what="download Kafka Connect and Debezium",
        staging_arg="-DoutputDirectory={}",
    )
    return lib_dir


def registry_v2_url(ccompat_url: str) -> str:
    """Apicurio's v2 API beside its Confluent-compatible one (``.../apis/ccompat/v7``)."""
    parts = urlsplit(ccompat_url)
    return f"{parts.scheme}://{parts.netloc}/apis/registry/v2"


def render_properties(values: Mapping[str, object]) -> str:
    """A Java properties file (values are plain: no newlines; ``\\`` and ``:``/``=`` are escaped)."""
    lines = []
    for key, value in values.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if "\n" in text:
            raise ValueError(f"property {key} holds a newline")
        lines.append(f"{key}={text.replace(chr(92), chr(92) * 2)}")
    return "\n".join(lines) + "\n"


def worker_properties(bootstrap: str, registry_url: str, offsets: Path, rest_port: int) -> dict[str, object]:
    """A standalone worker: Avro keys and values through the registry, offsets in a file."""
    converter: dict[str, object] = {
        "apicurio.registry.url": registry_v2_url(registry_url),
        "apicurio.registry.auto-register": True,
        "apicurio.registry.as-confluent": True,
        "apicurio.registry.use-id": "contentId",
        "apicurio.registry.headers.enabled": False,  # the id in the payload, not in headers
    }
    props: dict[str, object] = {
        "bootstrap.servers": bootstrap,
        "key.converter": CONVERTER,
        "value.converter": CONVERTER,
        "offset.storage.file.filename": str(offsets),
        "offset.flush.interval.ms": 1000,
        "listeners": f"http://127.0.0.1:{rest_port}",
        "plugin.discovery": "only_scan",
    }
    for side in ("key", "value"):
        props.update({f"{side}.converter.{key}": value for key, value in converter.items()})
    return props


def topic_creation(log_append_time: bool) -> dict[str, object]:
    """Connect creates the topics itself (the broker does not auto-create them)."""
    props: dict[str, object] = {
        "topic.creation.default.replication.factor": 1,
        "topic.creation.default.partitions": 1,
    }
    if log_append_time:
        props["topic.creation.default.message.timestamp.type"] = "LogAppendTime"
    return props


def postgres_connector(
    name: str, url: str, table: str, *, snapshot: bool, log_append_time: bool = False
) -> dict[str, object]:
    """Debezium's PostgreSQL connector (pgoutput, its own slot and publication) on ``public.<table>``."""
    parts = urlsplit(url)
    return {
        "name": name,
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": 1,
        "plugin.name": "pgoutput",
        "database.hostname": parts.hostname or "127.0.0.1",
        "database.port": parts.port or 5432,
        "database.user": parts.username or "postgres",
        "database.password": parts.password or "",
        "database.dbname": parts.path.lstrip("/"),
        "topic.prefix": name,
        "table.include.list": f"public.{table}",
        "slot.name": name,
        "publication.name": name,
        "publication.autocreate.mode": "filtered",
        "snapshot.mode": "initial" if snapshot else "no_data",
        **topic_creation(log_append_time),
    }


def mysql_connector(
    name: str,
    url: str,
    database: str,
    table: str,
    *,
    server_id: int,
    history: Path,
    snapshot: bool,
    log_append_time: bool = False,
) -> dict[str, object]:
    """Debezium's MySQL connector on ``<database>.<table>`` (schema history in a file)."""
    parts = urlsplit(url)
    return {
        "name": name,
        "connector.class": "io.debezium.connector.mysql.MySqlConnector",
        "tasks.max": 1,
        "database.hostname": parts.hostname or "127.0.0.1",
        "database.port": parts.port or 3306,
        "database.user": parts.username or "root",
        "database.password": parts.password or "",
        "database.server.id": server_id,
        "topic.prefix": name,
        "database.include.list": database,
        "table.include.list": f"{database}.{table}",
        "schema.history.internal": "io.debezium.storage.file.history.FileSchemaHistory",
        "schema.history.internal.file.filename": str(history),
        # read and keep the DDL of the captured table only, not of every table on the server
        "schema.history.internal.store.only.captured.tables.ddl": True,
        "schema.history.internal.store.only.captured.databases.ddl": True,
        "snapshot.mode": "initial" if snapshot else "no_data",
        **topic_creation(log_append_time),
    }


def topic_of(connector: Mapping[str, object], table: str) -> str:
    """The topic Debezium writes ``table``'s changes to: ``<prefix>.<schema or database>.<table>``."""
    if str(connector["connector.class"]).endswith("PostgresConnector"):
        return f"{connector['topic.prefix']}.public.{table}"
    return f"{connector['topic.prefix']}.{connector['database.include.list']}.{table}"


@dataclass
class ConnectStandalone:
    """One Kafka Connect standalone JVM running one connector, started and stopped by its PID."""

    workdir: Path
    worker: Mapping[str, object]
    connector: Mapping[str, object]
    lib_dir: Path = LIB
    heap: str = "-Xmx1g"
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)
    started_at: float = field(default=0.0, init=False)

    @property
    def log_file(self) -> Path:
        return self.workdir / "connect.log"

    def argv(self) -> list[str]:
        worker = self.workdir / "worker.properties"
        connector = self.workdir / "connector.properties"
        logging = self.workdir / "log4j2.properties"
        self.workdir.mkdir(parents=True, exist_ok=True)
        worker.write_text(render_properties(self.worker), encoding="utf-8")
        connector.write_text(render_properties(self.connector), encoding="utf-8")
        logging.write_text(LOG4J.format(log=self.log_file), encoding="utf-8")
        java = str(find_java())
        return [java, self.heap, "-XX:+UseG1GC", f"-Dlog4j2.configurationFile={logging}",
                "-cp", f"{self.lib_dir}/*", MAIN_CLASS, str(worker), str(connector)]  # fmt: skip

    def start(self) -> int:
        argv = self.argv()
        self.started_at = time.monotonic()
        out = (self.workdir / "connect.out").open("ab")
        self.process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir)
        out.close()
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def failure(self) -> str:
        """The end of its log and console output, to explain a failure."""
        console = log_tail(self.workdir / "connect.out", 20)
        return f"{log_tail(self.log_file, 40)}\n{console}".strip()

    def check(self) -> None:
        """Raise when the JVM died, or its connector task failed."""
        if self.process is not None and self.process.poll() is not None:
            raise RuntimeError(f"Kafka Connect exited {self.process.returncode}:\n{self.failure()}")
        failed = log_tail(self.log_file, 400)
        if "Task threw an uncaught and unrecoverable exception" in failed or "Failed to start task" in failed:
            raise RuntimeError(f"the Debezium task failed:\n{self.failure()}")

    def stop(self, timeout_s: float = 60.0) -> None:
        """SIGTERM (Connect stops its connector and flushes offsets), SIGKILL if it hangs."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(10)


@contextlib.contextmanager
def running(connect: ConnectStandalone) -> Iterator[ConnectStandalone]:
    """``connect`` started for the duration of the block, stopped after it."""
    connect.start()
    try:
        yield connect
    finally:
        connect.stop()
