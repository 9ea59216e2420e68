"""The local schema registry: Apicurio Registry 3.x from Maven Central, storage in Kafka.

Apicurio's "kafkasql" storage keeps every registry change in a journal topic on the local
broker (``_schemas``) and replays it into an in-memory database at start, so schemas survive
restarts as long as the broker's data directory does. Clients use the Confluent-compatible
API at ``http://127.0.0.1:<registry_port>/apis/ccompat/v7``.

Apicurio refuses a compacted journal (``cleanup.policy=compact``); it creates ``_schemas``
itself with ``cleanup.policy=delete``, ``retention.ms=-1`` and ``retention.bytes=-1``.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from hub.config import LocalSettings
from hub.errors import ServiceError
from hub.local.process import ManagedProcess, ServiceStatus, port_in_use
from hub.local.tools import find_java, required_java, resolve_into

CCOMPAT_PATH = "/apis/ccompat/v7"
JOURNAL_TOPIC = "_schemas"
SNAPSHOTS_TOPIC = "_schemas-snapshots"
EVENTS_TOPIC = "_schemas-events"
# Apicurio's default journal poll timeout (5 s) is waited out several times while it
# verifies the journal at start; 1 s cuts a cold start from ~26 s to ~8 s.
POLL_TIMEOUT_MS = 1000
MARKER_PROPERTY = "unsilo.registry.home"  # a -D argument that identifies our process


def registry_properties(settings: LocalSettings, bootstrap_servers: str, home: Path) -> dict[str, str]:
    """The ``-D`` system properties that configure Apicurio (HTTP on loopback, kafkasql)."""
    return {
        "quarkus.http.host": "127.0.0.1",
        "quarkus.http.port": str(settings.registry_port),
        # The management interface (health, metrics) is built in and would take port 9000.
        "quarkus.management.host": "127.0.0.1",
        "quarkus.management.port": "0",
        "apicurio.storage.kind": "kafkasql",
        "apicurio.kafkasql.bootstrap.servers": bootstrap_servers,
        "apicurio.kafkasql.topic": JOURNAL_TOPIC,
        "apicurio.kafkasql.snapshots.topic": SNAPSHOTS_TOPIC,
        "apicurio.kafkasql.topic.auto-create": "true",
        "apicurio.kafkasql.consumer.poll.timeout": str(POLL_TIMEOUT_MS),
        "apicurio.events.kafka.topic": EVENTS_TOPIC,
        "apicurio.storage.snapshot.location": str(home / "snapshots"),
        "apicurio.import.work-dir": str(home / "tmp"),
        # Kafka clients log every config dump at INFO; keep the registry log readable.
        'quarkus.log.category."org.apache.kafka".level': "WARN",
    }


class LocalRegistry:
    """The local Apicurio registry: install (Maven), start, wait, configure, stop."""

    name = "registry"

    def __init__(
        self,
        settings: LocalSettings,
        project_root: Path,
        bootstrap_servers: str,
        *,
        install_dir: Path | None = None,
        compatibility: str = "BACKWARD",
    ) -> None:
        self.settings = settings
        self.project_root = project_root.absolute()
        self.bootstrap_servers = bootstrap_servers
        self.compatibility = compatibility
        self.data_dir = (self.project_root / settings.data_dir).absolute()
        self.install_dir = (install_dir or self.data_dir / "apicurio").absolute()
        self.home = self.data_dir / "registry"
        self.process = ManagedProcess(self.name, self.data_dir, marker=f"-D{MARKER_PROPERTY}={self.home}")

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<registry_port>``."""
        return f"http://127.0.0.1:{self.settings.registry_port}"

    @property
    def url(self) -> str:
        """The Confluent-compatible API: what ``registry.url`` should be set to."""
        return self.base_url + CCOMPAT_PATH

    @property
    def run_jar(self) -> Path:
        """Quarkus' launcher, at the root of the unpacked distribution."""
        return self.install_dir / "quarkus-run.jar"

    def ensure_installed(self) -> None:
        """Unpack Apicurio from Maven Central into ``install_dir`` once (idempotent)."""
        if self.run_jar.exists():
            return
        pom = self.project_root / "deploy" / "registry" / "pom.xml"
        resolve_into(
            self.install_dir,
            pom,
            ["-q", "dependency:unpack"],
            log_file=self.data_dir / "logs" / "registry-maven.log",
            what="download Apicurio Registry",
            staging_arg="-Dunpack.dir={}",
        )
        if not self.run_jar.exists():
            raise ServiceError(
                f"{self.run_jar} is missing after unpacking Apicurio; "
                f"see {self.data_dir / 'logs' / 'registry-maven.log'}"
            )

    def java(self) -> Path:
        """A Java that can run this Apicurio build (3.3.x needs 21+; found via class files)."""
        jars = sorted((self.install_dir / "app").glob("apicurio-registry-app-*.jar"))
        return find_java(required_java(jars[0]) if jars else 17)

    def start(self) -> int:
        """Start Apicurio in the background (installing it first if needed); returns its PID."""
        running = self.process.pid()
        if running is not None:
            return running
        port = self.settings.registry_port
        if port_in_use(port):
            raise ServiceError(
                f"port {port} on 127.0.0.1 is already in use by another program "
                f"(not the Unsilo registry of {self.data_dir})",
                hint=f"stop that program (`ss -ltnp 'sport = :{port}'` shows it) or set "
                "local.registry_port (UNSILO_LOCAL__REGISTRY_PORT) to a free port",
            )
        self.ensure_installed()
        java = self.java()
        for sub in ("snapshots", "tmp"):
            (self.home / sub).mkdir(parents=True, exist_ok=True)
        props = registry_properties(self.settings, self.bootstrap_servers, self.home)
        argv = [
            str(java),
            f"-Xmx{self.settings.registry_heap}",
            "-XX:+UseG1GC",
            "-Djava.awt.headless=true",
            self.process.marker,
            *(f"-D{key}={value}" for key, value in props.items()),
            "-jar",
            str(self.run_jar),
        ]
        return self.process.start(argv, cwd=self.home)

    def _subjects_ok(self, client: httpx.Client) -> bool:
        try:
            return client.get(self.url + "/subjects").status_code == 200
        except httpx.HTTPError:
            return False

    def is_healthy(self, timeout_s: float = 3.0) -> bool:
        """True when our process runs and ``GET /subjects`` answers 200."""
        if self.process.pid() is None:
            return False
        with httpx.Client(timeout=timeout_s) as client:
            return self._subjects_ok(client)

    def wait_ready(self, timeout: float | None = None) -> float:
        """Poll ``GET /subjects`` until 200, then set the global compatibility; returns seconds."""
        limit = self.settings.start_timeout_s if timeout is None else timeout
        started = time.monotonic()
        deadline = started + limit
        with httpx.Client(timeout=2.0) as client:
            while not self._subjects_ok(client):
                if self.process.pid() is None:
                    raise self.process.died_error("start-up")
                if time.monotonic() >= deadline:
                    raise ServiceError(
                        f"the schema registry at {self.url} did not answer within {limit:.0f}s; "
                        f"last lines of {self.process.log_file}:\n{self.process.tail()}"
                    )
                time.sleep(0.25)
            self.set_compatibility(client)
        return time.monotonic() - started

    def set_compatibility(self, client: httpx.Client) -> None:
        """``PUT /config`` with the configured global compatibility level."""
        try:
            response = client.put(
                self.url + "/config",
                json={"compatibility": self.compatibility},
                headers={"Content-Type": "application/vnd.schemaregistry.v1+json"},
                timeout=30.0,  # a write through the Kafka journal: seconds on a loaded machine
            )
        except httpx.HTTPError as exc:
            raise ServiceError(f"cannot set the registry's compatibility: {exc}") from exc
        if response.status_code != 200:
            raise ServiceError(
                f"PUT {self.url}/config answered {response.status_code}: {response.text[:500]}"
            )

    def stop(self, timeout_s: float = 30.0) -> bool:
        """Stop the registry by PID (SIGTERM, SIGKILL after ``timeout_s``)."""
        return self.process.stop(timeout_s)

    def status(self) -> ServiceStatus:
        """Name, PID, URL and whether our registry process is running."""
        pid = self.process.pid()
        return ServiceStatus(self.name, pid, self.url, pid is not None)
