"""``unsilo run``: the connector commands, plugged into the hub's CLI."""

from __future__ import annotations

import signal
from typing import Annotated, Any

import typer
from rich.console import Console

from connectors.base import Batch
from connectors.runner import ConnectorRunner, RunnerStats, describe

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Add the connector commands to ``app``."""
    app.command("run")(run)


def run(
    ctx: typer.Context,
    source: Annotated[str, typer.Argument(help="name of a source in unsilo.yaml")],
    until_idle: Annotated[bool, typer.Option(help="stop once nothing is left to publish")] = False,
) -> None:
    """Capture a source: snapshot its tables, then stream every change into Kafka."""
    settings = ctx.obj.settings
    runner = ConnectorRunner(settings, settings.source(source), on_batch=_progress)
    signal.signal(signal.SIGTERM, lambda *_: runner.stop())
    try:
        stats = runner.run(until_idle=until_idle)
    except KeyboardInterrupt:
        runner.close()
        stats = runner.stats
    console.print(f"source {source}: {describe(stats)}")


def _progress(batch: Batch, stats: RunnerStats) -> None:
    progress: dict[str, Any] = batch.progress
    if progress:
        state = "done" if progress.get("done") else "snapshotting"
        console.print(
            f"snapshot {progress['table']}: {state}, {stats.snapshot_rows} rows so far",
            highlight=False,
        )
