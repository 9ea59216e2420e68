"""``unsilo up`` / ``down`` / ``ps``: the local broker and registry started and stopped together.

The broker starts first (the registry keeps its storage in it) and stops last. A service
that is already running and healthy is left alone, so ``up`` can be run again at any time.
"""

from __future__ import annotations

import time
from pathlib import Path

import structlog

from hub.config import Settings
from hub.errors import ServiceError
from hub.local.kafka import LocalKafka
from hub.local.process import ServiceStatus
from hub.local.registry import LocalRegistry

log = structlog.get_logger(__name__)


def services(
    settings: Settings,
    project_root: Path,
    *,
    kafka_lib_dir: Path | None = None,
    registry_install_dir: Path | None = None,
) -> tuple[LocalKafka, LocalRegistry]:
    """The local broker and registry described by ``settings.local``."""
    kafka = LocalKafka(settings.local, project_root, lib_dir=kafka_lib_dir)
    registry = LocalRegistry(
        settings.local,
        project_root,
        kafka.bootstrap_servers,
        install_dir=registry_install_dir,
        compatibility=settings.registry.compatibility,
    )
    return kafka, registry


def _up_kafka(kafka: LocalKafka) -> None:
    if kafka.is_healthy():
        log.info("kafka_already_running", pid=kafka.process.pid(), address=kafka.bootstrap_servers)
        return
    if kafka.process.pid() is None:
        kafka.ensure_installed()
        started = time.monotonic()
        pid = kafka.start()
        log.info(
            "kafka_starting",
            pid=pid,
            address=kafka.bootstrap_servers,
            log_file=str(kafka.process.log_file),
        )
        waited = kafka.wait_ready()
        log.info(
            "kafka_started",
            pid=pid,
            address=kafka.bootstrap_servers,
            seconds=round(time.monotonic() - started, 2),
            waited=round(waited, 2),
        )
        return
    waited = kafka.wait_ready()  # ours but not answering yet: still starting up
    log.info(
        "kafka_started",
        pid=kafka.process.pid(),
        address=kafka.bootstrap_servers,
        waited=round(waited, 2),
    )


def _up_registry(registry: LocalRegistry) -> None:
    if registry.is_healthy():
        log.info("registry_already_running", pid=registry.process.pid(), url=registry.url)
        return
    if registry.process.pid() is None:
        registry.ensure_installed()
        started = time.monotonic()
        pid = registry.start()
        log.info("registry_starting", pid=pid, url=registry.url, log_file=str(registry.process.log_file))
        registry.wait_ready()
        log.info(
            "registry_started",
            pid=pid,
            url=registry.url,
            seconds=round(time.monotonic() - started, 2),
            compatibility=registry.compatibility,
        )
        return
    waited = registry.wait_ready()
    log.info("registry_started", pid=registry.process.pid(), url=registry.url, waited=round(waited, 2))


def up(
    settings: Settings,
    project_root: Path,
    *,
    kafka_lib_dir: Path | None = None,
    registry_install_dir: Path | None = None,
) -> list[ServiceStatus]:
    """Start the broker, then the registry (skipping healthy ones); returns their statuses.

    When the registry fails to start, the broker is left running (it is healthy and
    ``down`` stops it); the ServiceError says what went wrong.
    """
    kafka, registry = services(
        settings,
        project_root,
        kafka_lib_dir=kafka_lib_dir,
        registry_install_dir=registry_install_dir,
    )
    try:
        _up_kafka(kafka)
    except ServiceError:
        log.error("kafka_start_failed", log_file=str(kafka.process.log_file))
        kafka.stop()
        raise
    try:
        _up_registry(registry)
    except ServiceError:
        log.error("registry_start_failed", log_file=str(registry.process.log_file))
        registry.stop()
        raise
    return [kafka.status(), registry.status()]


def down(
    settings: Settings,
    project_root: Path,
    *,
    kafka_lib_dir: Path | None = None,
    registry_install_dir: Path | None = None,
) -> list[ServiceStatus]:
    """Stop the registry, then the broker, by PID; returns their (stopped) statuses."""
    kafka, registry = services(
        settings,
        project_root,
        kafka_lib_dir=kafka_lib_dir,
        registry_install_dir=registry_install_dir,
    )
    for service in (registry, kafka):
        pid = service.process.pid()
        if pid is None:
            log.info("service_not_running", service=service.name)
            continue
        started = time.monotonic()
        service.stop()
        log.info(
            "service_stopped",
            service=service.name,
            pid=pid,
            seconds=round(time.monotonic() - started, 2),
        )
    return [kafka.status(), registry.status()]


def install(settings: Settings, project_root: Path) -> None:
    """Resolve the broker jars and unpack the registry (idempotent; needs Maven)."""
    kafka, registry = services(settings, project_root)
    kafka.ensure_installed()
    registry.ensure_installed()
    log.info("local_stack_installed", kafka=str(kafka.lib_dir), registry=str(registry.install_dir))


def ps(settings: Settings, project_root: Path) -> list[ServiceStatus]:
    """The statuses of the local broker and registry (no process is started or stopped)."""
    kafka, registry = services(settings, project_root)
    return [kafka.status(), registry.status()]
