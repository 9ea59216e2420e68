"""Addresses as they may be shown: a password inside a URL is masked before any output."""

from __future__ import annotations

import re

_USERINFO = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^/@:]*):[^/@]*@")
MASK = "***"


def without_password(url: str) -> str:
    """``url`` with the password of its ``user:password@`` part replaced by ``***``."""
    return _USERINFO.sub(lambda m: f"{m.group('head')}:{MASK}@", url, count=1)
