"""A registry that does not know a record's schema id yet (still loading) is an outage to wait out."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from hub.config import RegistrySettings
from hub.errors import RegistryUnavailableError, SchemaError
from hub.registry import ConfluentRegistry


class _Client:
    def __init__(self, status: int) -> None:
        self.status = status

    def get_schema(self, schema_id: int) -> Any:
        raise SchemaRegistryError(self.status, 40403 if self.status == 404 else 50001, "Schema not found")


def _registry(status: int) -> ConfluentRegistry:
    registry = ConfluentRegistry(RegistrySettings(url="http://127.0.0.1:9/apis/ccompat/v7"))
    registry.client = _Client(status)  # type: ignore[assignment]
    return registry


def test_unknown_schema_id_is_retriable() -> None:
    """After a restart Apicurio answers 404 for ids it has not loaded yet: retried, not dead-lettered."""
    with pytest.raises(RegistryUnavailableError) as raised:
        _registry(404).schema_by_id(46)

    assert raised.value.retriable and "schema id 46" in raised.value.message


def test_other_registry_errors_are_not_retried() -> None:
    """A registry error other than not-found stays a plain schema error."""
    with pytest.raises(SchemaError) as raised:
        _registry(500).schema_by_id(46)

    assert not raised.value.retriable
