"""``unsilo lag`` answered by a running ``unsilo api``, the way Burrow's clients ask Burrow.

The API samples every group every ``api.lag_interval_s`` into the durable Burrow windows
and holds the latest report, so asking it costs one local HTTP request instead of
reading every group's offsets, every partition's watermarks and the log's timestamps
(about a second for 100,000 group-partitions on two cores). When no API answers on
``api.host:api.port`` the command samples Kafka itself, as before.

Only the standard library is used here: the command must start fast.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from hub.config import Settings
from hub.errors import UnknownGroupError

CONNECT_TIMEOUT_S = 0.3
CLUSTER_HEADER = "X-Unsilo-Bootstrap"  # the API's bootstrap servers (hub.api.app sets it on /lag)


def _host(settings: Settings) -> str:
    return settings.api.host if settings.api.host not in ("0.0.0.0", "::") else "127.0.0.1"


def api_address(settings: Settings) -> str:
    return f"http://{_host(settings)}:{settings.api.port}"


def lag_from_api(settings: Settings, groups: list[str] | None, *, partitions: bool) -> dict[str, Any] | None:
    """The API's latest lag report as ``LagReport.to_dict`` gives it (``partitions=False``:
    group summaries only), or None when no API answers, or answers something else."""
    try:
        with socket.create_connection((_host(settings), settings.api.port), timeout=CONNECT_TIMEOUT_S):
            pass
    except OSError:
        return None
    query: list[tuple[str, str]] = [("group", g) for g in groups or []]
    if not partitions:
        query.append(("summary", "true"))
    url = f"{api_address(settings)}/lag?{urllib.parse.urlencode(query)}"
    request = urllib.request.Request(url, headers={"Accept": "application/json"})
    token = settings.api.operator_token
    if token is not None:
        request.add_header("Authorization", f"Bearer {token.get_secret_value()}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            if response.headers.get(CLUSTER_HEADER) != settings.kafka.bootstrap_servers:
                return None  # an API over another cluster (or not ours) listens there
            body: dict[str, Any] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        if exc.code == 404 and groups:
            detail = json.loads(exc.read() or b"{}").get("detail")
            raise UnknownGroupError(str(detail or f"no consumer group named {groups}")) from exc
        return None  # not our API, not allowed, or broken: sample Kafka directly instead
    except (OSError, ValueError):
        return None
    if not isinstance(body, dict) or "groups" not in body:
        return None
    body["source"] = api_address(settings)
    return body
