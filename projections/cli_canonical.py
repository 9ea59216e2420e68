"""``unsilo canonicalize``, ``unsilo link`` and ``unsilo unlink``: the canonical layer's commands."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import structlog
import typer
from rich.console import Console

from hub.config import Settings
from hub.errors import UnsiloError
from projections.canonical.contract import CanonicalTopics

log = structlog.get_logger(__name__)

_NAMESPACE_HELP = "run beside another deployment: topics unsilo.canonical.<namespace>.* (tests)"


def register(app: typer.Typer) -> None:
    """Add the canonical layer's commands to ``app``."""
    app.command("canonicalize")(canonicalize)
    app.command("link")(link)
    app.command("unlink")(unlink)


def run_canonical(
    settings: Settings,
    *,
    mappings: Path | None = None,
    namespace: str = "",
    until_idle: bool = False,
    batch_size: int = 2000,
    max_seconds: float | None = None,
) -> dict[str, int]:
    """Run the canonicalizer and the identity resolver until stopped (or idle, or timed out)."""
    from projections.canonical.app import prepare as prepare_canonical
    from projections.identity.app import prepare as prepare_identity

    topics = CanonicalTopics(namespace)
    deadline = None if max_seconds is None else time.monotonic() + max_seconds
    backoff = 0.5
    while True:  # started while the broker or the registry is away (restarting): wait for it
        try:
            canonical = prepare_canonical(settings, mappings, topics, batch_size=batch_size)
            identity = prepare_identity(settings, topics, batch_size=batch_size)
            break
        except UnsiloError as exc:
            if not exc.retriable or (deadline is not None and time.monotonic() + backoff > deadline):
                raise
            log.warning("canonicalize_waiting", error=exc.message, backoff_s=backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, 10.0)
    stopping = False

    def stop(signum: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        log.info("canonicalize_stopping", signal=signum)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        busy = 0
        while not stopping and (deadline is None or time.monotonic() < deadline):
            mapped = canonical.safe_step(0.0 if busy else 0.1)  # wait for input only when idle
            busy = mapped + identity.safe_step(0.0 if mapped else 0.1)
            if not busy and until_idle and canonical.caught_up() and identity.caught_up():
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        canonical.close()
        identity.close()
    elapsed = max(time.monotonic() - canonical.stats.started, 1e-9)
    result = {
        "raw_events": canonical.stats.consumed,
        "canonical_records": canonical.stats.produced,
        "identity_inputs": identity.stats.consumed,
        "identity_links": identity.stats.produced,
        "events_per_s": int(canonical.stats.consumed / elapsed),
    }
    log.info("canonicalize_stopped", **result)
    return result


def canonicalize(
    ctx: typer.Context,
    mappings: Annotated[
        Path | None, typer.Option(help="mapping file (default: deploy/demo/mappings.yaml)")
    ] = None,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="stop once every input is read")] = False,
    batch_size: Annotated[int, typer.Option(min=1, help="raw events per transaction")] = 2000,
    namespace: Annotated[str, typer.Option(help=_NAMESPACE_HELP)] = "",
) -> None:
    """Map raw topics to canonical entities and resolve identities, exactly once, until Ctrl-C."""
    result = run_canonical(
        ctx.obj.settings, mappings=mappings, namespace=namespace, until_idle=until_idle, batch_size=batch_size
    )
    Console(stderr=True).print(
        f"canonicalized {result['raw_events']} raw events into {result['canonical_records']} records; "
        f"{result['identity_links']} identity links"
    )


def link(
    ctx: typer.Context,
    key_a: Annotated[str, typer.Argument(help="a canonical key, e.g. fin:000042")],
    key_b: Annotated[str, typer.Argument(help="another canonical key, e.g. sales:C-00042")],
    namespace: Annotated[str, typer.Option(help=_NAMESPACE_HELP)] = "",
) -> None:
    """Record that two source keys are the same customer or employee (wins over the rules)."""
    from projections.identity.app import send_command

    send_command(ctx.obj.settings, CanonicalTopics(namespace), "link", [key_a, key_b])
    Console().print(f"linked {key_a} and {key_b}")


def unlink(
    ctx: typer.Context,
    key: Annotated[str, typer.Argument(help="the canonical key to split out of its party")],
    namespace: Annotated[str, typer.Option(help=_NAMESPACE_HELP)] = "",
) -> None:
    """Split a source key out of its party and keep it out, even where the rules match."""
    from projections.identity.app import send_command

    send_command(ctx.obj.settings, CanonicalTopics(namespace), "unlink", [key])
    Console().print(f"unlinked {key}")
