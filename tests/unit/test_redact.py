"""Passwords inside URLs never reach an output."""

from __future__ import annotations

import pytest

from hub.redact import without_password


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://reg:S3cr:et@host:8081/apis/ccompat/v7", "http://reg:***@host:8081/apis/ccompat/v7"),
        ("postgresql+psycopg2://u:p%40ss@db/x", "postgresql+psycopg2://u:***@db/x"),
        ("http://host:8081/apis/ccompat/v7", "http://host:8081/apis/ccompat/v7"),
        ("http://user@host/x", "http://user@host/x"),
        ("sqlite:///a:b@c.db", "sqlite:///a:b@c.db"),
    ],
)
def test_password_in_a_url_is_masked_and_nothing_else_changes(url: str, shown: str) -> None:
    """Only the password of a ``user:password@`` part is replaced; the address stays readable."""
    assert without_password(url) == shown
