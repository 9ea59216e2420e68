"""A second, throwaway Kafka broker that requires SASL/SCRAM and enforces ACLs.

One combined KRaft node from the same jars as the local broker (``hub/local/kafka.py``), in
a temporary directory on free ports: clients talk SASL_PLAINTEXT with SCRAM-SHA-512 on one
listener; the controller listener uses SASL PLAIN for the node's own principal ``admin``
(SCRAM credentials live in the metadata log, which the controller must read first). The
``StandardAuthorizer`` denies everything without an ACL; ``admin`` is the only super user.
SCRAM users are added when the storage is formatted. Stopped by PID at the end.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from hub.local.kafka import GC_FLAGS, NODE_ID, SINGLE_NODE, new_cluster_id
from hub.local.tools import find_java
from tests.support import free_ports

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class ScramUser:
    name: str
    password: str


def _jaas(module: str, user: ScramUser, extra: str = "") -> str:
    return f'{module} required username="{user.name}" password="{user.password}"{extra};'


class SaslKafka:
    """The broker: ``start()`` formats (with the SCRAM users) and runs it; ``stop()`` by PID."""

    def __init__(self, lib_dir: Path, admin: ScramUser, users: list[ScramUser]) -> None:
        self.lib_dir = lib_dir
        self.admin = admin
        self.users = users
        self.port, self.controller_port = free_ports(2)
        self.root = Path(tempfile.mkdtemp(prefix="unsilo-sasl-kafka-"))
        self.config_file = self.root / "server.properties"
        self.log_file = self.root / "kafka.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None  # seconds from format to ready

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    def properties(self) -> dict[str, str]:
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        secret = self.admin.password
        return {
            "process.roles": "broker,controller",
            "node.id": str(NODE_ID),
            "controller.quorum.voters": f"{NODE_ID}@127.0.0.1:{self.controller_port}",
            "listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "CONTROLLER:SASL_PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": _jaas(
                plain, self.admin, f' user_{self.admin.name}="{secret}"'
            ),
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": _jaas(scram, self.admin),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{self.admin.name}",
            "allow.everyone.if.no.acl.found": "false",
            "log.dirs": str(self.root / "data"),
            **SINGLE_NODE,
        }

    def start(self, timeout_s: float = 60.0) -> float:
        """Format, start and wait until the admin lists the broker; seconds it took."""
        started = time.monotonic()
        java = str(find_java())
        classpath = str(self.lib_dir / "*")
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in self.properties().items()))
        scram = []
        for user in [self.admin, *self.users]:
            scram += ["--add-scram", f"{MECHANISM}=[name={user.name},password={user.password}]"]
        fast_start = ["-XX:TieredStopAtLevel=1", "-Xshare:auto"]  # a short-lived test broker
        subprocess.run(
            [java, *fast_start, "-cp", classpath, "kafka.tools.StorageTool", "format", "-t", new_cluster_id(),
             "-c", str(self.config_file), *scram],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip
        log4j = PROJECT_ROOT / "deploy" / "kafka" / "log4j2.properties"
        argv = [java, "-Xmx512m", "-Xms512m", *GC_FLAGS, *fast_start, f"-Dlog4j2.configurationFile={log4j}",
                "-cp", classpath, "kafka.Kafka", str(self.config_file)]  # fmt: skip
        with self.log_file.open("wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.root)
        quiet = {"log_level": 0, "error_cb": lambda _err: None}  # refused until it listens
        admin = AdminClient({**self.client_config(self.admin), **quiet})
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                break
            with contextlib.suppress(KafkaException):
                if NODE_ID in admin.list_topics(timeout=2).brokers:
                    self.started_in = time.monotonic() - started
                    return self.started_in
            time.sleep(0.2)
        tail = self.log_file.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"the SASL broker did not start:\n{tail}")

    def client_config(self, user: ScramUser) -> dict[str, Any]:
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": "sasl_plaintext",
            "sasl.mechanism": MECHANISM,
            "sasl.username": user.name,
            "sasl.password": user.password,
        }

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait(10)
        self.process = None
        shutil.rmtree(self.root, ignore_errors=True)
