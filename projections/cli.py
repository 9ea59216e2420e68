"""``unsilo project`` and ``unsilo rebuild``: projection commands, plugged into the hub's CLI."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hub.errors import ConfigError

READ_MODELS = ["mirror"]


def register(app: typer.Typer) -> None:
    """Add the projection commands to ``app``."""
    app.command("project")(project)
    app.command("rebuild")(rebuild)


def _known(read_model: str) -> None:
    if read_model not in READ_MODELS:
        raise ConfigError(f"unknown read model {read_model!r}", hint=f"available: {', '.join(READ_MODELS)}")


def project(
    ctx: typer.Context,
    read_model: Annotated[str, typer.Argument(help="read model to maintain: mirror")] = "mirror",
) -> None:
    """Run a projection worker that keeps a read model up to date from the log."""
    _known(read_model)
    from projections.table_mirror.app import run_worker

    run_worker(ctx.obj.settings)


def rebuild(
    ctx: typer.Context,
    read_model: Annotated[str, typer.Argument(help="read model to rebuild from the log: mirror")],
) -> None:
    """Replay the log into fresh tables and swap them in atomically; the old ones serve meanwhile."""
    _known(read_model)
    from projections.table_mirror.rebuild import rebuild_mirror

    console = Console(stderr=True)
    with Progress(
        TextColumn(f"rebuild {read_model}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeRemainingColumn(),
        console=console,
    ) as bars:
        task = bars.add_task(read_model, total=None)
        result = rebuild_mirror(
            ctx.obj.settings, progress=lambda n, total: bars.update(task, completed=n, total=total)
        )
    Console().print(
        f"{read_model} rebuilt from {result.events} events; swapped in: {', '.join(result.tables)}"
    )
