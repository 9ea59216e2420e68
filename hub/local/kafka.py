"""The local Apache Kafka broker: one combined KRaft node on 127.0.0.1, jars from Maven Central.

Layout under ``<data_dir>``: ``kafka-lib/`` (jars, unless ``local.kafka_home`` points at a
Kafka install), ``kafka/server.properties``, ``kafka/cluster.id``, ``kafka/data/`` (the log),
``logs/kafka.log`` and ``run/kafka.pid``. Storage is formatted once; later starts reuse it.
"""

from __future__ import annotations

import base64
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from hub.config import LocalSettings
from hub.errors import ConfigError, ServiceError
from hub.local.process import ManagedProcess, ServiceStatus, port_in_use
from hub.local.tools import find_java, log_tail, resolve_into

NODE_ID = 1
GC_FLAGS = (
    "-server",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)


# What a one-node cluster needs beyond its listeners: internal topics with one replica,
# no topics created by a stray consumer, and no rebalance delay.
SINGLE_NODE = {
    "num.partitions": "1",
    "auto.create.topics.enable": "false",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "1",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "1",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    # The default 128 MiB dedupe buffer runs a small heap out of memory.
    "log.cleaner.dedupe.buffer.size": "2097152",
}


def render_server_properties(settings: LocalSettings, log_dir: Path) -> str:
    """The ``server.properties`` of a one-node KRaft cluster (static quorum) on loopback."""
    port, ctl = settings.kafka_port, settings.controller_port
    lines = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{ctl}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{ctl}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir.absolute()),
        **SINGLE_NODE,
    }
    header = "# Written by unsilo (hub/local/kafka.py); regenerated on every start.\n"
    return header + "".join(f"{key}={value}\n" for key, value in lines.items())


def new_cluster_id() -> str:
    """A KRaft cluster id: 22 chars of URL-safe base64 (no padding), not starting with '-'."""
    while True:
        value = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode("ascii")
        if not value.startswith("-"):
            return value


class LocalKafka:
    """The local broker: install (Maven or ``kafka_home``), configure, format, start, stop."""

    name = "kafka"

    def __init__(self, settings: LocalSettings, project_root: Path, *, lib_dir: Path | None = None) -> None:
        self.settings = settings
        self.project_root = project_root.absolute()
        self.data_dir = (self.project_root / settings.data_dir).absolute()
        self.lib_dir = (lib_dir or self.data_dir / "kafka-lib").absolute()
        self.home = self.data_dir / "kafka"
        self.config_file = self.home / "server.properties"
        self.cluster_id_file = self.home / "cluster.id"
        self.log_dir = self.home / "data"
        self.process = ManagedProcess(self.name, self.data_dir, marker=str(self.config_file))

    @property
    def bootstrap_servers(self) -> str:
        """``127.0.0.1:<kafka_port>``, the address clients use."""
        return f"127.0.0.1:{self.settings.kafka_port}"

    def classpath(self) -> str:
        """The JVM classpath: ``<kafka_home>/libs/*`` or the Maven-resolved jars."""
        if self.settings.kafka_home is not None:
            return str((self.project_root / self.settings.kafka_home / "libs").absolute() / "*")
        return str(self.lib_dir / "*")

    def ensure_installed(self) -> None:
        """Make sure broker jars exist: check ``kafka_home`` or resolve them once with Maven."""
        home = self.settings.kafka_home
        if home is not None:
            libs = (self.project_root / home / "libs").absolute()
            if not any(libs.glob("kafka_2.*.jar")):
                raise ConfigError(
                    f"local.kafka_home is {home} but {libs} holds no kafka_2.*.jar",
                    hint="point it at an unpacked Apache Kafka 4.x release",
                )
            return
        if any(self.lib_dir.glob("kafka_2.*.jar")):
            return
        pom = self.project_root / "deploy" / "kafka" / "pom.xml"
        resolve_into(
            self.lib_dir,
            pom,
            ["-q", "dependency:copy-dependencies", "-DincludeScope=runtime"],
            log_file=self.data_dir / "logs" / "kafka-maven.log",
            what="download the Kafka broker jars",
            staging_arg="-DoutputDirectory={}",
        )

    def write_config(self) -> Path:
        """Write ``server.properties`` (ports from the settings) and return its path."""
        self.home.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(render_server_properties(self.settings, self.log_dir), encoding="utf-8")
        return self.config_file

    def cluster_id(self) -> str:
        """The cluster id persisted in ``cluster.id`` (drawn and written on first use)."""
        try:
            existing = self.cluster_id_file.read_text(encoding="utf-8").strip()
        except FileNotFoundError:
            existing = ""
        if existing:
            return existing
        value = new_cluster_id()
        self.home.mkdir(parents=True, exist_ok=True)
        self.cluster_id_file.write_text(value + "\n", encoding="utf-8")
        return value

    def format_storage(self) -> bool:
        """Format the log directory once (``--ignore-formatted``); False when it already was."""
        if (self.log_dir / "meta.properties").exists():
            return False
        java = find_java()
        log_file = self.data_dir / "logs" / "kafka-format.log"
        log_file.parent.mkdir(parents=True, exist_ok=True)
        command = [
            str(java),
            "-cp",
            self.classpath(),
            "kafka.tools.StorageTool",
            "format",
            "-t",
            self.cluster_id(),
            "-c",
            str(self.config_file),
            "--ignore-formatted",
        ]
        with log_file.open("w", encoding="utf-8") as out:
            result = subprocess.run(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=120,
                check=False,
            )
        if result.returncode != 0:
            raise ServiceError(
                f"formatting the Kafka storage in {self.log_dir} failed; "
                f"last lines of {log_file}:\n{log_tail(log_file)}"
            )
        return True

    def _check_ports(self) -> None:
        for port, key in (
            (self.settings.kafka_port, "kafka_port"),
            (self.settings.controller_port, "controller_port"),
        ):
            if port_in_use(port):
                raise ServiceError(
                    f"port {port} on 127.0.0.1 is already in use by another program "
                    f"(not the Unsilo broker of {self.data_dir})",
                    hint=f"stop that program (`ss -ltnp 'sport = :{port}'` shows it) or set "
                    f"local.{key} (UNSILO_LOCAL__{key.upper()}) to a free port",
                )

    def start(self) -> int:
        """Configure, format if needed and start the broker in the background; returns its PID."""
        running = self.process.pid()
        if running is not None:
            return running
        self._check_ports()
        java = find_java()
        self.ensure_installed()
        self.write_config()
        self.format_storage()
        log4j = self.project_root / "deploy" / "kafka" / "log4j2.properties"
        heap = self.settings.kafka_heap
        argv = [
            str(java),
            f"-Xmx{heap}",
            f"-Xms{heap}",
            *GC_FLAGS,
            f"-Dlog4j2.configurationFile={log4j}",
            # keep logging through the broker's own clean shutdown
            "-Dlog4j2.shutdownHookEnabled=false",
            "-cp",
            self.classpath(),
            "kafka.Kafka",
            str(self.config_file),
        ]
        return self.process.start(argv, cwd=self.home)

    def _admin(self) -> AdminClient:
        # Quiet: "connection refused" is expected while the broker is still starting.
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "log_level": 0,
            "error_cb": lambda _err: None,
        }
        return AdminClient(config)

    @staticmethod
    def _lists_broker(admin: AdminClient, timeout_s: float) -> bool:
        try:
            metadata = admin.list_topics(timeout=timeout_s)
        except KafkaException:
            return False  # not reachable yet (transport error or timeout)
        return NODE_ID in metadata.brokers

    def is_healthy(self, timeout_s: float = 3.0) -> bool:
        """True when our process runs and a metadata request lists broker 1."""
        return self.process.pid() is not None and self._lists_broker(self._admin(), timeout_s)

    def wait_ready(self, timeout: float | None = None) -> float:
        """Poll metadata until broker 1 is listed; returns seconds waited, ServiceError if not."""
        limit = self.settings.start_timeout_s if timeout is None else timeout
        started = time.monotonic()
        deadline = started + limit
        admin = self._admin()
        while True:
            if self.process.pid() is None:
                raise self.process.died_error("start-up")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServiceError(
                    f"the Kafka broker at {self.bootstrap_servers} was not ready within "
                    f"{limit:.0f}s; last lines of {self.process.log_file}:\n{self.process.tail()}"
                )
            if self._lists_broker(admin, min(2.0, max(remaining, 0.1))):
                return time.monotonic() - started
            time.sleep(0.2)

    def stop(self, timeout_s: float = 60.0) -> bool:
        """Stop the broker by PID (clean shutdown, SIGKILL after ``timeout_s``)."""
        return self.process.stop(timeout_s)

    def status(self) -> ServiceStatus:
        """Name, PID, address and whether our broker process is running."""
        pid = self.process.pid()
        return ServiceStatus(self.name, pid, self.bootstrap_servers, pid is not None)
