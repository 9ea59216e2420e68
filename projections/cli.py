"""``unsilo project`` and ``unsilo rebuild``: projection commands, plugged into the hub's CLI."""

from __future__ import annotations

import time
from typing import Annotated, Any

import structlog
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from hub.config import Settings
from hub.errors import ConfigError, UnsiloError

log = structlog.get_logger(__name__)


def register(app: typer.Typer) -> None:
    """Add the projection commands to ``app``."""
    app.command("project")(project)
    app.command("rebuild")(rebuild)
    app.command("show")(show)


def show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="read model, or a mirror table such as mirror_pos_sales")],
    where: Annotated[list[str] | None, typer.Option(help="column=value filters (repeatable)")] = None,
    limit: Annotated[int, typer.Option(help="rows to show")] = 50,
) -> None:
    """Print a read model as a table."""
    from rich.table import Table
    from sqlalchemy import column, select, table
    from sqlalchemy.exc import SQLAlchemyError

    from projections.read_models import READ_MODELS
    from projections.store import create_read_store

    model = READ_MODELS.get(name)
    relation = model.relation if model is not None else name
    if relation is None:
        raise ConfigError(
            f"{name} has one table per captured table", hint="show one of them, e.g. mirror_<system>_<table>"
        )
    filters = [w.partition("=") for w in where or []]
    if any(not sep for _, sep, _ in filters):
        raise ConfigError("filters are written column=value")
    query = select("*").select_from(table(relation)).limit(limit)
    for col, _, value in filters:
        query = query.where(column(col) == value)
    engine = create_read_store(ctx.obj.settings.read_store.url)
    try:
        with engine.connect() as conn:
            result = conn.execute(query)
            output = Table(*result.keys(), title=f"{name} (first {limit} rows)")
            for row in result:
                output.add_row(*("" if v is None else str(v) for v in row))
    except SQLAlchemyError as exc:
        raise ConfigError(
            f"cannot read {relation}: {exc.__class__.__name__}", hint="is its projection running?"
        ) from exc
    finally:
        engine.dispose()
    Console().print(output)


def project(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(help="read model: mirror, store_sales, inventory_position")
    ] = "mirror",
    group: Annotated[
        str | None,
        typer.Option(
            help="consumer group (default unsilo-projection-<name>); one per deployment on a cluster"
        ),
    ] = None,
) -> None:
    """Run a projection worker that keeps a read model up to date from the log."""
    from projections.faust_app import run_app

    run_app(prepare_worker(ctx.obj.settings, name, group))


def prepare_worker(settings: Settings, name: str, group: str | None, max_seconds: float | None = None) -> Any:
    """The worker's faust app; started while the broker is away (restarting), wait for it."""
    from projections.faust_app import projection_app
    from projections.read_models import read_model
    from projections.store import create_read_store

    model = read_model(name)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    backoff = 0.5
    while True:
        try:
            topics = model.topics(settings)
            if not topics:
                raise ConfigError(
                    f"no topic feeds {name} yet", hint="start a connector first (`unsilo run <source>`)"
                )
            builder = model.builder(create_read_store(settings.read_store.url), name, "")
            return projection_app(settings, name, topics, builder, group=group)
        except UnsiloError as exc:
            if not exc.retriable or (deadline is not None and time.monotonic() + backoff > deadline):
                raise
            log.warning("projection_waiting", projection=name, error=exc.message, backoff_s=backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)


def rebuild(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="read model to rebuild from the log")],
) -> None:
    """Replay the log into fresh tables and swap them in atomically; the old ones serve meanwhile."""
    from projections.read_models import read_model
    from projections.rebuild import rebuild as rebuild_model

    settings = ctx.obj.settings
    model = read_model(name)
    topics = model.topics(settings)
    console = Console(stderr=True)
    with Progress(
        TextColumn(f"rebuild {name}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("events"),
        TimeRemainingColumn(),
        console=console,
    ) as bars:
        task = bars.add_task(name, total=None)
        result = rebuild_model(
            settings,
            name,
            topics,
            model.builder,
            progress=lambda n, total: bars.update(task, completed=n, total=total),
        )
    Console().print(f"{name} rebuilt from {result.events} events; swapped in: {', '.join(result.tables)}")
