"""``unsilo run`` and ``unsilo connectors``: the connector commands, plugged into the hub's CLI."""

from __future__ import annotations

import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

if TYPE_CHECKING:  # the runner pulls in the registry client and the drivers: only for `unsilo run`
    from connectors.base import Batch
    from connectors.runner import RunnerStats

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the connector commands to ``app``."""
    app.command("run")(run)
    app.command("connectors")(connectors)
    app.command("pause")(pause)
    app.command("resume")(resume)
    app.command("snapshot")(snapshot)


def pause(ctx: typer.Context, source: Annotated[str, typer.Argument(help="source name")]) -> None:
    """Pause a running connector (it keeps its position; nothing is lost)."""
    _send(ctx, source, "pause")


def resume(ctx: typer.Context, source: Annotated[str, typer.Argument(help="source name")]) -> None:
    """Resume a paused connector."""
    _send(ctx, source, "resume")


def snapshot(
    ctx: typer.Context, target: Annotated[str, typer.Argument(help="<source>.<table> to read again")]
) -> None:
    """Re-snapshot one table while streaming continues."""
    from hub.errors import ConfigError

    source, _, table = target.partition(".")
    configured = ctx.obj.settings.source(source)
    if table not in [t.name for t in configured.tables]:
        known = ", ".join(f"{source}.{t.name}" for t in configured.tables)
        raise ConfigError(f"{target!r} is not a captured table", hint=f"known: {known}")
    _send(ctx, source, "snapshot", table)


def _send(ctx: typer.Context, source: str, command: Any, table: str | None = None) -> None:
    from connectors.control import send_command

    settings = ctx.obj.settings
    settings.source(source)
    send_command(settings.kafka, source, command, table)
    Console().print(f"{command} sent to {source}; the connector applies it within a second if running")


class SnapshotProgress:
    """A progress bar per table being snapshotted: rows, rate and ETA."""

    def __init__(self) -> None:
        self.bars = Progress(
            TextColumn("snapshot {task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeRemainingColumn(),
            console=console,
        )
        self.tasks: dict[str, Any] = {}

    def __call__(self, batch: Batch, stats: RunnerStats) -> None:
        progress: dict[str, Any] = batch.progress
        if not progress:
            return
        table = progress["table"]
        if table not in self.tasks:
            if not self.bars.live.is_started:
                self.bars.start()
            self.tasks[table] = self.bars.add_task(table, total=progress.get("total"))
        self.bars.update(self.tasks[table], advance=int(progress.get("rows", 0)))
        if progress.get("done"):
            task = self.tasks[table]
            self.bars.update(task, total=self.bars.tasks[task].completed)

    def stop(self) -> None:
        if self.bars.live.is_started:
            self.bars.stop()


def run(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="name of a source in unsilo.yaml")],
    until_idle: Annotated[bool, typer.Option(help="stop once nothing is left to publish")] = False,
) -> None:
    """Capture a source: snapshot its tables, then stream every change into Kafka."""
    settings = ctx.obj.settings
    progress = SnapshotProgress()
    from connectors.runner import ConnectorRunner, describe

    runner = ConnectorRunner(settings, settings.source(source), on_batch=progress)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        stats = runner.run(until_idle=until_idle)
    except KeyboardInterrupt:
        runner.close()
        stats = runner.stats
    finally:
        progress.stop()
    console.print(f"source {source}: {describe(stats)}")


def connectors(ctx: typer.Context) -> None:
    """List sources and their tables with state: snapshotting n/N rows, streaming, stopped (why)."""
    settings = ctx.obj.settings
    from hub.status import describe_table, load_statuses

    statuses = load_statuses(settings.kafka)
    table = Table("source", "system", "table", "state", "events", "dead-lettered", "quarantined")
    for source in settings.sources:
        status = statuses.get(source.name)
        if status is None:
            for configured in source.tables:
                table.add_row(source.name, source.system, configured.name, "never started", "-", "-", "-")
            continue
        for name, table_status in sorted(status.tables.items()):
            state = describe_table(table_status)
            if status.state == "retrying":
                state = f"retrying: {status.reason}"
            table.add_row(
                source.name,
                source.system,
                name,
                state,
                str(status.events),
                str(status.dead_lettered),
                str(status.quarantined),
            )
    Console().print(table)
