"""TCP keepalive on source connections, so a server that goes silent is noticed in about a minute.

A database host that is powered off or cut off by a dropped route sends nothing, not even a
reset: without keepalive a blocked read on its connection waits for the kernel to give up
(about 15 minutes of retransmissions, or for ever while idle). With these settings an idle
connection is probed after 30 s and declared dead after 3 unanswered probes 10 s apart, and
data left unacknowledged for 60 s fails the connection; the connector then reports the source
as unavailable and retries, as for any outage. Long queries are not affected: a live server
answers the probes.
"""

from __future__ import annotations

import socket
from typing import Any

IDLE_S = 30
INTERVAL_S = 10
COUNT = 3
USER_TIMEOUT_MS = 60_000

LIBPQ = {
    "keepalives": 1,
    "keepalives_idle": IDLE_S,
    "keepalives_interval": INTERVAL_S,
    "keepalives_count": COUNT,
    "tcp_user_timeout": USER_TIMEOUT_MS,
}


def libpq_defaults(given: dict[str, Any]) -> dict[str, Any]:
    """libpq connection parameters for keepalive, except those the user's URL sets itself."""
    return {name: value for name, value in LIBPQ.items() if name not in given}


def enable(sock: Any) -> None:
    """Keepalive on a TCP socket (a no-op on Unix sockets and where the options are missing)."""
    if sock is None or getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
        return
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for option, value in (
        ("TCP_KEEPIDLE", IDLE_S),
        ("TCP_KEEPINTVL", INTERVAL_S),
        ("TCP_KEEPCNT", COUNT),
        ("TCP_USER_TIMEOUT", USER_TIMEOUT_MS),
    ):
        if hasattr(socket, option):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, option), value)
