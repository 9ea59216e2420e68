"""The operator API (FastAPI), served by ``unsilo api``.

A background sampler takes a :class:`~hub.overview.Snapshot` every ``api.lag_interval_s``
(consumer lag observed into the durable Burrow windows, capture lag, freshness, DLQ
counts, component health), announces status transitions through the alerter, and keeps a
short lag-over-time series per group for the dashboard. Endpoints answer from the latest
snapshot, so a scrape or a dashboard poll never waits on Kafka; `/health/ready` probes live.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.resources import files
from typing import Any

import structlog
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from hub.alerts import Alerter
from hub.api.access import ANYONE, AUDIT, OPERATE, allow
from hub.api.catalog import catalog_router, history_router
from hub.api.read_models import read_model_router
from hub.api.replay import replay_router
from hub.config import Settings
from hub.errors import LogError, UnknownGroupError, UnsiloError
from hub.health import check_all
from hub.lag import LagReport
from hub.lag_client import CLUSTER_HEADER
from hub.metrics import CONTENT_TYPE, MetricsRenderer
from hub.overview import Observer, Snapshot

log = structlog.get_logger(__name__)

Point = tuple[int, int, float, str]  # (taken_ms, total lag, max lag seconds, status)


class Sampler:
    """Takes snapshots on a timer and keeps the latest one, the lag series and the alerts."""

    def __init__(
        self, settings: Settings, observer: Observer | None = None, alerter: Alerter | None = None
    ) -> None:
        self.settings = settings
        self.observer = observer or Observer(settings)
        self.alerter = alerter or Alerter(
            settings.api.webhook_url,
            timeout_s=settings.api.webhook_timeout_s,
            store=self.observer.monitor.history,
        )
        self.latest: Snapshot | None = None
        self.series: dict[str, deque[Point]] = {}
        self.renderer = MetricsRenderer(lambda: self.latest, settings.api.cluster_name)
        self._tick_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def tick(self) -> Snapshot:
        """Take one snapshot now (the sampler's timer and a first request share this)."""
        with self._tick_lock:
            snap = self.observer.snapshot()
            self.alerter.observe_snapshot(snap)
            if snap.lag is not None:
                self._record(snap.lag)
            for f in snap.freshness:
                points = self.series.setdefault(
                    f"readmodel:{f.read_model}", deque(maxlen=self.settings.api.history_points)
                )
                points.append((snap.taken_ms, f.behind, f.age_s, f.status))
            self.latest = snap
        if self.running:
            self.renderer.prerender()  # outside the tick lock: requests keep the previous body meanwhile
        return snap

    def _record(self, report: LagReport) -> None:
        keep = self.settings.api.history_points
        for name, group in report.groups.items():
            points = self.series.setdefault(name, deque(maxlen=keep))
            points.append(
                (report.taken_ms, group.total_lag, round(group.max_lag_seconds, 3), group.status.value)
            )
        for name in [n for n in self.series if not n.startswith("readmodel:") and n not in report.groups]:
            del self.series[name]  # the group was deleted

    def current(self) -> Snapshot:
        return self.latest if self.latest is not None else self.tick()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="unsilo-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        interval = self.settings.api.lag_interval_s
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                self.tick()
            except Exception as exc:  # the sampler must outlive any one bad tick
                log.error("sampler_tick_failed", error=str(exc), kind=type(exc).__name__)
            took = time.monotonic() - started
            self._stop.wait(max(0.05, interval - took, took))  # never more than half the time sampling

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.alerter.close()
        self.observer.close()


def create_app(settings: Settings, *, sampler: Sampler | None = None, background: bool = True) -> FastAPI:
    """The API over ``settings``; ``background=False`` samples only when asked (tests)."""
    state = sampler or Sampler(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if background:
            state.start()
        try:
            yield
        finally:
            state.stop()

    app = FastAPI(title="Unsilo API", lifespan=lifespan)
    app.state.sampler = state
    app.include_router(read_model_router(settings), dependencies=[allow(settings.api, *ANYONE)])
    app.include_router(replay_router(settings), dependencies=[allow(settings.api, *AUDIT)])
    app.include_router(catalog_router(settings), dependencies=[allow(settings.api, *ANYONE)])
    app.include_router(history_router(settings), dependencies=[allow(settings.api, *AUDIT)])
    operate = [allow(settings.api, *OPERATE)]  # every route but /health/* has a role (hub/api/access.py)

    @app.get("/health/live")
    def live() -> dict[str, str]:
        """The process answers."""
        return {"status": "live"}

    @app.get("/health/ready")
    def ready() -> JSONResponse:
        """Ready only when the broker and the registry both answer (each named with its address)."""
        components = check_all(settings, read_store=False)
        down = [f"{c.name} at {c.address}: {c.detail}" for c in components if not c.up]
        body = {"ready": not down, "down": down, "components": [c.to_dict() for c in components]}
        return JSONResponse(body, status_code=503 if down else 200)

    @app.get("/lag", dependencies=operate)
    def lag(
        response: Response, group: list[str] | None = Query(default=None), summary: bool = False
    ) -> dict[str, Any]:
        """Every group's (or the named groups') lag per partition and Burrow status
        (``summary=true``: one line per group, no partitions)."""
        report = _report(state, group)
        response.headers[CLUSTER_HEADER] = settings.kafka.bootstrap_servers  # `unsilo lag` checks it
        return report.to_dict(group, partitions=not summary)

    @app.get("/lag/{group}", dependencies=operate)
    def lag_of(group: str) -> dict[str, Any]:
        """One group's lag per partition and Burrow status; 404 when the group is unknown."""
        return _report(state, [group]).groups[group].to_dict()

    @app.get("/status", dependencies=operate)
    def status() -> dict[str, Any]:
        """The dashboard's data: components, sources, groups, capture, read models, DLQs, alerts."""
        snap = state.current()
        body = snap.to_dict()
        body["alerts"] = [a.payload() for a in list(state.alerter.recent)[:50]]
        body["series"] = {name: list(points) for name, points in state.series.items()}
        body["interval_s"] = settings.api.lag_interval_s
        return body

    @app.get("/metrics", dependencies=operate)
    def metrics() -> Response:
        """Prometheus text format: kafka-lag-exporter's names plus the hub's metrics."""
        state.current()
        return Response(state.renderer.scrape(allow_previous=state.running), media_type=CONTENT_TYPE)

    @app.get("/dashboard", response_class=HTMLResponse, dependencies=operate)
    def dashboard() -> HTMLResponse:
        """The live dashboard: one self-contained page, no external assets."""
        return HTMLResponse(files("hub.api").joinpath("dashboard.html").read_text(encoding="utf-8"))

    @app.get("/", include_in_schema=False, dependencies=operate)
    def root(request: Request) -> RedirectResponse:
        query = request.url.query  # keeps ?token= for the dashboard, which moves it into a cookie
        return RedirectResponse(f"/dashboard?{query}" if query else "/dashboard")

    return app


def _report(state: Sampler, groups: list[str] | None) -> LagReport:
    snap = state.current()
    report = snap.lag
    if report is not None and (groups is None or all(g in report.groups for g in groups)):
        return report
    try:
        return state.observer.monitor.sample(groups)  # a group newer than the last tick
    except UnknownGroupError as exc:
        raise HTTPException(status_code=404, detail=exc.message) from exc
    except LogError as exc:
        raise HTTPException(status_code=503, detail=exc.message) from exc
    except UnsiloError as exc:
        raise HTTPException(status_code=500, detail=exc.message) from exc
