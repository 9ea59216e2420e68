"""``unsilo project``: run a projection worker, plugged into the hub's CLI."""

from __future__ import annotations

from typing import Annotated

import typer


def register(app: typer.Typer) -> None:
    """Add the projection commands to ``app``."""
    app.command("project")(project)


def project(
    ctx: typer.Context,
    read_model: Annotated[str, typer.Argument(help="read model to maintain: mirror")] = "mirror",
) -> None:
    """Run a projection worker that keeps a read model up to date from the log."""
    from hub.errors import ConfigError

    if read_model != "mirror":
        raise ConfigError(f"unknown read model {read_model!r}", hint="available: mirror")
    from projections.table_mirror.app import run_worker

    run_worker(ctx.obj.settings)
