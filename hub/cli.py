"""The ``unsilo`` command line.

Commands that need connectors or projections are contributed by those packages through
the ``unsilo.commands`` entry point group, so ``hub`` never imports them.
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any

import click
import structlog
import typer
from rich.console import Console
from rich.table import Table

from hub.config import Settings, load_settings
from hub.errors import UnsiloError
from hub.logs import configure_logging
from hub.redact import without_password

app = typer.Typer(
    name="unsilo",
    help="Unsilo: capture legacy databases into Kafka and build read models from the log.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()
err_console = Console(stderr=True)
log = structlog.get_logger(__name__)

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class State:
    """Per-invocation state: where the config is, loaded lazily once."""

    def __init__(self, config: Path | None, log_level: str) -> None:
        self.config = config
        self.log_level = log_level
        self._settings: Settings | None = None

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            overrides: dict[str, Any] = {}
            kafka_home = os.environ.get("KAFKA_HOME")
            if kafka_home:
                overrides["local"] = {"kafka_home": kafka_home}
            self._settings = load_settings(self.config, **overrides)
        return self._settings


def state(ctx: typer.Context) -> State:
    found = ctx.find_object(State)
    if found is None:
        raise RuntimeError("unsilo state missing")
    return found


@app.callback()
def _main(
    ctx: typer.Context,
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="config file (default ./unsilo.yaml)")
    ] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error")] = "info",
) -> None:
    configure_logging(log_level)
    ctx.obj = State(config, log_level)


@app.command()
def up(ctx: typer.Context) -> None:
    """Start the local Kafka broker and schema registry (reuses their data)."""
    from hub.local import stack

    statuses = stack.up(state(ctx).settings, PROJECT_ROOT)
    _print_statuses(statuses)


@app.command()
def install(ctx: typer.Context) -> None:
    """Fetch the Kafka broker and schema registry from Maven Central (once)."""
    from hub.local import stack

    stack.install(state(ctx).settings, PROJECT_ROOT)
    console.print("local broker and registry installed")


@app.command()
def down(ctx: typer.Context) -> None:
    """Stop the local schema registry and Kafka broker (data is kept)."""
    from hub.local import stack

    _print_statuses(stack.down(state(ctx).settings, PROJECT_ROOT))


@app.command()
def ps(ctx: typer.Context) -> None:
    """Show whether the local broker and registry are running."""
    from hub.local import stack

    _print_statuses(stack.ps(state(ctx).settings, PROJECT_ROOT))


@app.command()
def validate(ctx: typer.Context) -> None:
    """Check the config, and that the broker and the registry answer."""
    from hub.kafka.admin import KafkaAdmin
    from hub.registry import ConfluentRegistry

    settings = state(ctx).settings
    console.print(f"[green]ok[/]   config: {len(settings.sources)} source(s)")
    KafkaAdmin(settings.kafka).ensure_reachable()
    console.print(f"[green]ok[/]   broker {settings.kafka.bootstrap_servers}")
    ConfluentRegistry(settings.registry).subjects()
    console.print(f"[green]ok[/]   registry {without_password(settings.registry.url)}")
    failed = 0
    for entry in entry_points(group="unsilo.checks"):
        for result in entry.load()(settings):
            mark = "[green]ok[/]  " if result.ok else "[red]FAIL[/]"
            console.print(f"{mark} {result.subject}: {result.detail}", highlight=False)
            if result.fix:
                console.print(f"       fix: {result.fix}", highlight=False)
            failed += not result.ok
    if failed:
        raise typer.Exit(1)


@app.command()
def demo(
    ctx: typer.Context,
    seconds: Annotated[float | None, typer.Option(help="stop after this long (default: Ctrl-C)")] = None,
    rate: Annotated[float, typer.Option(help="changes per second made in the shop")] = 20.0,
    seed: Annotated[int, typer.Option(help="seed of the workload")] = 42,
    estate: Annotated[
        str | None,
        typer.Option(
            help="the legacy estate on a PostgreSQL or MariaDB database (a URL; default: SQLite files)"
        ),
    ] = None,
    read_store: Annotated[
        str | None, typer.Option(help="where the read models go (a SQLAlchemy URL; default: SQLite)")
    ] = None,
) -> None:
    """Run the demo: three legacy systems captured live into Kafka and unified into read models."""
    from hub.demo import run_demo

    matched = run_demo(
        state(ctx).settings,
        PROJECT_ROOT,
        seconds=seconds,
        rate=rate,
        seed=seed,
        estate=estate,
        read_store=read_store,
    )
    if not matched:
        raise typer.Exit(1)


def _print_statuses(statuses: list[Any]) -> None:
    table = Table("service", "state", "pid", "address")
    for status in statuses:
        table.add_row(
            status.name,
            "[green]running[/]" if status.running else "[red]stopped[/]",
            str(status.pid or "-"),
            status.address,
        )
    console.print(table)


def _load_plugins() -> None:
    from hub import ops_cli  # lag, status, api: hub's own, registered like the plugins

    ops_cli.register(app)
    for entry in entry_points(group="unsilo.commands"):
        register = entry.load()
        register(app)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run a command; a user's mistake prints what to do, never a traceback."""
    _load_plugins()
    try:
        code = app(args=argv, standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) is returned, not raised, here
            sys.exit(code)
    except UnsiloError as exc:
        err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
        if exc.hint:
            err_console.print(f"[yellow]hint:[/] {exc.hint}", highlight=False)
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
