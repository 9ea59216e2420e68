"""The operator commands: ``unsilo lag``, ``unsilo status`` and ``unsilo api``."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the overview pulls in SQLAlchemy, httpx and the registry client: only when used
    from hub.overview import Snapshot

# Piped output (scripts, logs) is not cut at 80 columns: addresses and group ids stay whole.
console = Console(width=None if sys.stdout.isatty() else 200)
STYLE = {"OK": "green", "UP": "green", "WARN": "yellow", "SNAPSHOT": "yellow", "ERR": "red", "DOWN": "red"}
DETAIL_ROWS = 1000  # named groups list their partitions up to this many rows unless asked
STYLE.update({"STOP": "red", "STALL": "red", "REWIND": "red", "UNKNOWN": "dim"})


def register(app: typer.Typer) -> None:
    """Add the operator commands to ``app``."""
    app.command("lag")(lag)
    app.command("status")(status)
    app.command("api")(api)


def _mark(status: str, text: str | None = None) -> str:
    style = STYLE.get(status, "white")
    return f"[{style}]{text or status}[/]"


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def lag(
    ctx: typer.Context,
    groups: Annotated[list[str] | None, typer.Argument(help="consumer groups (default: all)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
    partitions: Annotated[
        bool | None,
        typer.Option(
            "--partitions/--no-partitions", help="one row per partition (default: for named groups)"
        ),
    ] = None,
    direct: Annotated[
        bool, typer.Option("--direct", help="sample Kafka from this process even when `unsilo api` runs")
    ] = False,
) -> None:
    """Consumer lag per group and partition, with Burrow's status (OK, WARN, STALL, STOP, REWIND).

    When `unsilo api` is running (api.host:api.port) its latest report is shown (it samples
    every api.lag_interval_s); otherwise this run samples Kafka itself and observes the
    committed offsets into the sliding window kept under the data dir, so statuses build up
    over runs. Exit status 2 when a named group does not exist.
    """
    names = list(groups) if groups else None
    want_partitions = as_json or partitions is True or (partitions is None and bool(groups))
    body = None
    if not direct:
        from hub.lag_client import lag_from_api

        body = lag_from_api(ctx.obj.settings, names, partitions=want_partitions)
    if body is None:
        from hub.lag_monitor import LagMonitor

        monitor = LagMonitor(ctx.obj.settings)
        try:
            report = monitor.sample(names)
        finally:
            monitor.close()
        body = report.to_dict(names, partitions=want_partitions)
    if as_json:
        typer.echo(json.dumps(body, indent=2))
        return
    rows = sum(_count(g["partitions"]) for g in body["groups"])
    detail = partitions if partitions is not None else bool(groups) and rows <= DETAIL_ROWS
    print_lag(body["groups"], detail=detail and want_partitions)
    if "source" in body:
        console.print(f"[dim]from the API at {body['source']}: --direct to sample Kafka here[/]")
    if partitions is None and groups and not detail:
        console.print(f"{rows:,} partitions: add --partitions for one row each, or --json", highlight=False)


def _count(partitions: int | list[Any]) -> int:
    return partitions if isinstance(partitions, int) else len(partitions)


def print_lag(groups: list[dict[str, Any]], *, detail: bool) -> None:
    """The groups table, then (``detail``) a partitions table per group (``LagReport.to_dict``'s shape)."""
    if not groups:
        console.print("no consumer groups on the broker")
        return
    console.print(_groups_table(groups))
    if not detail:
        return
    for group in sorted(groups, key=lambda g: str(g["group"])):
        table = Table(
            "topic",
            "partition",
            "committed",
            "log end",
            "lag",
            "lag (s)",
            "status",
            "complete",
            "member",
            title=f"{group['group']}: {_mark(group['status'])}",
        )
        for p in group["partitions"]:
            table.add_row(
                p["topic"],
                str(p["partition"]),
                f"{p['committed_offset']:,}",
                f"{p['log_end_offset']:,}",
                f"{p['lag']:,}",
                _num(p["lag_seconds"]),
                _mark(p["status"]),
                f"{p['complete']:.0%}",
                p["client_id"] or p["consumer_id"] or "-",
            )
        console.print(table)


def _groups_table(groups: list[dict[str, Any]]) -> Table:
    table = Table(
        "group",
        "status",
        "worst partition",
        "state",
        "partitions",
        "total lag",
        "max lag (s)",
        title="consumer groups",
    )
    for g in sorted(groups, key=lambda g: str(g["group"])):
        table.add_row(
            g["group"],
            _mark(g["status"]),
            _mark(g["worst"]),
            g["state"],
            str(_count(g["partitions"])),
            f"{g['total_lag']:,}",
            _num(g["max_lag_seconds"]),
        )
    return table


def status(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON instead of tables")] = False,
) -> None:
    """One screen: components (with the address tried), sources, lags, freshness, dead letters."""
    from hub.overview import Observer

    observer = Observer(ctx.obj.settings)
    try:
        snap = observer.snapshot()
    finally:
        observer.close()
    if as_json:
        typer.echo(json.dumps(snap.to_dict(), indent=2, default=str))
        return
    print_status(snap)
    if any(not c.up for c in snap.components):
        raise typer.Exit(1)


def print_status(snap: Snapshot) -> None:
    table = Table("component", "state", "address", "detail", title="components")
    for c in snap.components:
        table.add_row(c.name, _mark("UP" if c.up else "DOWN"), c.address, c.detail)
    console.print(table)
    for error in snap.errors:
        console.print(f"[yellow]not read:[/] {error}", highlight=False)
    if snap.sources or snap.capture:
        console.print(_sources_table(snap))
    if snap.lag is not None:
        console.print(
            _groups_table([g.summary() for g in snap.lag.groups.values()])
            if snap.lag.groups
            else "no consumer groups"
        )
    if snap.freshness:
        fresh = Table("read model", "status", "behind", "oldest unapplied (s)", title="read models")
        for f in snap.freshness:
            fresh.add_row(f.read_model, _mark(f.status), f"{f.behind:,}", _num(f.age_s))
        console.print(fresh)
    if snap.retention is not None:
        check = snap.retention
        console.print(f"retention: {_mark(check.status)} {check.summary()}", highlight=False)
    if snap.dead_letters:
        dlq = Table("topic", "records", title="dead letters")
        for topic, count in sorted(snap.dead_letters.items()):
            dlq.add_row(topic, _mark("ERR" if count else "OK", f"{count:,}"))
        console.print(dlq)


def _sources_table(snap: Snapshot) -> Table:
    table = Table(
        "source",
        "table",
        "status",
        "state",
        "snapshot",
        "capture lag (s)",
        "last event (s ago)",
        "events",
        "DLQ",
        title="sources",
    )
    for c in snap.capture:
        source = snap.sources.get(c.source)
        progress = f"{c.rows:,}/{c.total:,}" if c.total is not None else (f"{c.rows:,}" if c.rows else "-")
        state = f"{c.state}: {c.reason}" if c.reason else c.state
        table.add_row(
            c.source,
            c.table,
            _mark(c.status),
            state,
            progress,
            _num(c.capture_lag_s, 3),
            _num(c.last_event_age_s),
            f"{source.events:,}" if source else "-",
            f"{source.dead_lettered + source.quarantined:,}" if source else "-",
        )
    return table


def api(
    ctx: typer.Context,
    host: Annotated[str | None, typer.Option(help="address to listen on (default api.host)")] = None,
    port: Annotated[int | None, typer.Option(help="port (default api.port)")] = None,
) -> None:
    """Serve the operator API and the live dashboard (http://HOST:PORT/dashboard)."""
    import uvicorn

    from hub.api import create_app

    settings = ctx.obj.settings
    host = host or settings.api.host
    port = port if port is not None else settings.api.port
    console.print(
        f"dashboard: http://{host}:{port}/dashboard   metrics: http://{host}:{port}/metrics", highlight=False
    )
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
