"""``unsilo replay --as-of``: rebuild a read model as it stood at an instant, into a throwaway store."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


def register(app: typer.Typer) -> None:
    """Add ``unsilo replay`` to ``app``."""
    app.command("replay")(replay)


def replay(
    ctx: typer.Context,
    as_of: Annotated[
        str,
        typer.Option(
            "--as-of",
            help="the instant: ISO-8601 (2026-11-27T12:00:00Z; no zone means UTC) or epoch milliseconds",
        ),
    ],
    into: Annotated[
        str, typer.Option("--into", help="SQLAlchemy URL of an empty store, e.g. sqlite:///pit.db")
    ],
    read_model: Annotated[str, typer.Option("--read-model", help="read model to rebuild, e.g. mirror")],
    replace: Annotated[bool, typer.Option("--replace", help="empty a non-empty target first")] = False,
) -> None:
    """Rebuild a read model as it stood at an instant (events after it left out) into a throwaway store."""
    from projections.point_in_time import iso, prepare

    settings = ctx.obj.settings
    request = prepare(settings, read_model, as_of, into, replace=replace)
    cuts = request.cut()
    with Progress(
        TextColumn(f"replay {read_model} as of {iso(request.as_of_ms)}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bars:
        task = bars.add_task(read_model, total=None)
        result = request.run(lambda n, total: bars.update(task, completed=n, total=total), cuts)
    console = Console()
    console.print(
        f"{read_model} as of {iso(result.as_of_ms)} replayed into {result.into}: "
        f"{result.applied} events applied, {result.skipped} skipped as committed in the source after "
        f"the instant"
    )
    table = Table("topic", "partition", "cut offset (first left out)", title="per-partition cut")
    for (topic, partition), offset in sorted(result.cuts.items()):
        table.add_row(topic, str(partition), str(offset))
    console.print(table)
