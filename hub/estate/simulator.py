"""A workload that keeps the demo estate changing like its users would, from a seed.

Each :meth:`WorkloadSimulator.step` makes one committed change in one database: till
sales most of the time, then orders, stock receipts, transfers and adjustments, invoices
and payments, new customers, hires and transfers, and now and then a correction (an
UPDATE) or a delete (a voided ticket, a payment booked in error, a dropped order line).
The same seed on the same estate gives the same changes; only the timestamps come from
the clock (the wall clock by default, :func:`simulated_clock` for a reproducible one).

The simulator keeps the estate's own rules, so the figures of :mod:`hub.estate.figures`
stay meaningful: stock never goes below zero, a payment never exceeds what is still due,
an invoice is ``P`` exactly when its payments cover it, only an unpaid invoice is voided.
"""

from __future__ import annotations

import threading
import time

import structlog
from sqlalchemy import exc as sa_exc

from hub.errors import SourceUnavailableError
from hub.estate.back_office import BackOffice
from hub.estate.workload import Change, simulated_clock

__all__ = ["CORRECTIONS", "KINDS", "MIX", "Change", "WorkloadSimulator", "simulated_clock"]

log = structlog.get_logger(__name__)

MIX: tuple[tuple[str, int], ...] = (
    ("till_sale", 40),
    ("order", 8),
    ("order_status", 4),
    ("stock_receipt", 4),
    ("stock_transfer", 5),
    ("stock_adjustment", 3),
    ("invoice", 8),
    ("payment", 8),
    ("new_crm_customer", 2),
    ("new_ar_customer", 1),
    ("hire", 1),
    ("employee_transfer", 2),
    ("correction", 8),
    ("void_ticket", 3),
    ("void_invoice", 1),
    ("payment_reversal", 1),
    ("drop_order_line", 1),
)
"""The kinds of change and their weights; a correction is one of :data:`CORRECTIONS`."""
CORRECTIONS = ("price", "email", "salary", "adjustment", "order_line", "crm_ref", "invoice_amount")
KINDS: tuple[str, ...] = tuple(kind for kind, _ in MIX if kind != "correction") + tuple(
    f"correction:{name}" for name in CORRECTIONS
)


class WorkloadSimulator(BackOffice):
    """Changes the estate at ``rate`` changes per second (see the module docstring)."""

    def step(self) -> Change:
        """Make one committed change of the realistic mix and say what it was."""
        kind = self.rng.choices([k for k, _ in MIX], weights=[w for _, w in MIX])[0]
        if kind == "correction":
            kind = f"correction:{self.rng.choice(CORRECTIONS)}"
        return self.make(kind)

    def make(self, kind: str) -> Change:
        """Make one change of ``kind`` (one of :data:`KINDS`) now.

        When the estate offers nothing to change that way (no open invoice to pay, say),
        the change is a stock receipt instead; the returned :class:`Change` says which.
        """
        if kind not in KINDS:
            raise ValueError(f"unknown kind of change {kind!r}; known: {', '.join(KINDS)}")
        try:
            change = getattr(self, "_" + kind.replace(":", "_"))() or self._stock_receipt()
        except sa_exc.OperationalError as exc:
            raise SourceUnavailableError(
                f"the workload could not change the estate: {exc.orig}",
                hint="check that the estate's databases are reachable and not locked",
            ) from exc
        self.changes += 1
        self.kinds[change.kind] += 1
        return change

    def run(
        self, *, changes: int | None = None, seconds: float | None = None, stop: threading.Event | None = None
    ) -> int:
        """Step at ``rate`` per second until ``changes`` made, ``seconds`` passed or ``stop`` set."""
        started = time.monotonic()
        made = 0
        log.info("workload_started", rate=self.rate, changes=changes, seconds=seconds)
        interval = 1.0 / self.rate if self.rate > 0 else 0.0
        while changes is None or made < changes:
            if (seconds is not None and time.monotonic() - started >= seconds) or (stop and stop.is_set()):
                break
            self.step()
            made += 1
            delay = started + made * interval - time.monotonic()
            if delay > 0:
                if stop is not None:
                    stop.wait(delay)
                else:
                    time.sleep(delay)
        log.info("workload_stopped", changes=made, seconds=round(time.monotonic() - started, 3))
        return made

    def close(self) -> None:
        for engine in self.engines.values():
            engine.dispose()

    def __enter__(self) -> WorkloadSimulator:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
