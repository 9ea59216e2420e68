"""Who may call what: one bearer token per role, checked on every endpoint.

Roles (``api.<role>_token`` in the settings; a role without a token is disabled):

- ``operator``: everything (lag, status, metrics, dashboard, read models, catalog, replay).
- ``auditor``: history, verification, point-in-time replay, catalog, read models.
- ``subscriber``: the catalog, the AsyncAPI document and the read models; no replay.

A missing or unknown token is 401; a known token whose role may not call the endpoint is
403. When no token is configured at all the API is open (it binds to loopback by
default): the ``access`` status says so. ``/health/live`` and ``/health/ready`` stay open,
as probes are. Tokens are compared in constant time and never logged.
"""

from __future__ import annotations

import hmac
from enum import StrEnum
from typing import Any

from fastapi import Depends, HTTPException, Request

from hub.config import ApiSettings


class Role(StrEnum):
    operator = "operator"
    auditor = "auditor"
    subscriber = "subscriber"


ANYONE = (Role.operator, Role.auditor, Role.subscriber)
AUDIT = (Role.operator, Role.auditor)
OPERATE = (Role.operator,)


def tokens(api: ApiSettings) -> dict[Role, str]:
    """Role -> its token, for the roles that have one."""
    found = {
        Role.operator: api.operator_token,
        Role.auditor: api.auditor_token,
        Role.subscriber: api.subscriber_token,
    }
    return {role: secret.get_secret_value() for role, secret in found.items() if secret is not None}


def role_of(api: ApiSettings, presented: str | None) -> Role | None:
    """The role whose token is ``presented`` (constant-time compare), else None."""
    if not presented:
        return None
    match = None
    for role, token in tokens(api).items():
        if hmac.compare_digest(token.encode(), presented.encode()):
            match = role
    return match


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value:
        return value.strip()
    return request.query_params.get("token") or request.cookies.get("unsilo_token")


def allow(api: ApiSettings, *roles: Role) -> Any:
    """A FastAPI dependency admitting only ``roles`` (use in ``dependencies=[...]``)."""
    admitted = set(roles)

    def check(request: Request) -> Role | None:
        if not tokens(api):
            return None  # open API: no token configured
        role = role_of(api, _bearer(request))
        if role is None:
            raise HTTPException(
                status_code=401,
                detail="a valid token is required: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if role not in admitted:
            allowed = ", ".join(sorted(r.value for r in admitted))
            raise HTTPException(
                status_code=403, detail=f"the {role.value} role may not do this (allowed: {allowed})"
            )
        return role

    return Depends(check)
