"""Catalog endpoints: ``GET /catalog``, ``GET /asyncapi.json`` and ``GET /history/{topic}/{key}``.

The catalog is built at most once every ``CATALOG_TTL_S`` seconds (it asks the broker and
the registry about every topic); history reads the log on each request.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, HTTPException

from hub.asyncapi import document
from hub.catalog import TopicEntry, build_catalog
from hub.config import Settings
from hub.errors import (
    LogUnavailableError,
    RegistryUnavailableError,
    SerializationError,
    UnknownRecordError,
    UnknownTopicError,
    UnsiloError,
)
from hub.history import history

CATALOG_TTL_S = 10.0
T = TypeVar("T")


class CatalogCache:
    """The latest catalog, rebuilt when older than ``ttl_s``."""

    def __init__(self, settings: Settings, ttl_s: float = CATALOG_TTL_S) -> None:
        self.settings = settings
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._built: tuple[float, list[TopicEntry]] | None = None

    def get(self) -> list[TopicEntry]:
        with self._lock:
            now = time.monotonic()
            if self._built is None or now - self._built[0] > self.ttl_s:
                self._built = (now, build_catalog(self.settings))
            return self._built[1]


def catalog_router(settings: Settings) -> APIRouter:
    """``/catalog`` and ``/asyncapi.json`` (include with the ANYONE roles)."""
    router = APIRouter(tags=["catalog"])
    cache = CatalogCache(settings)

    @router.get("/catalog")
    def catalog() -> dict[str, Any]:
        """Every hub topic: owner, key and value schemas, partitions, retention, offsets, last event."""
        return {"topics": [e.to_dict() for e in _answer(cache.get)]}

    @router.get("/asyncapi.json")
    def asyncapi() -> dict[str, Any]:
        """The AsyncAPI 3.0.0 document of the hub's topics."""
        return document(_answer(cache.get), settings)

    return router


def history_router(settings: Settings) -> APIRouter:
    """``/history/{topic}/{key}`` (include with the AUDIT roles)."""
    router = APIRouter(tags=["history"])

    @router.get("/history/{target}/{key}")
    def record_history(target: str, key: str) -> dict[str, Any]:
        """Every version of one record, oldest first; ``target`` is a topic, system.table or entity."""
        return _answer(lambda: history(settings, target, key)).to_dict()

    return router


def _answer(build: Callable[[], T]) -> T:
    try:
        return build()
    except (UnknownTopicError, UnknownRecordError) as exc:
        raise HTTPException(404, _detail(exc)) from exc
    except SerializationError as exc:
        raise HTTPException(400, _detail(exc)) from exc
    except (LogUnavailableError, RegistryUnavailableError) as exc:
        raise HTTPException(503, _detail(exc)) from exc
    except UnsiloError as exc:
        raise HTTPException(500, _detail(exc)) from exc


def _detail(exc: UnsiloError) -> str:
    return f"{exc.message} ({exc.hint})" if exc.hint else exc.message
