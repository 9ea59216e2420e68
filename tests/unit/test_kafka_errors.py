"""confluent-kafka errors become named Unsilo errors that say what to do."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from hub.errors import DeliveryError, FencedError, LogError, LogUnavailableError
from hub.kafka.errors import translate

BOOTSTRAP = "10.1.2.3:9092"


def test_transport_failure_is_log_unavailable_naming_the_broker() -> None:
    """No broker at the address gives a retriable error naming it, with a hint to run ``unsilo up``."""
    error = translate(KafkaError(KafkaError._TRANSPORT), BOOTSTRAP, "producing")

    assert isinstance(error, LogUnavailableError)
    assert error.retriable
    assert BOOTSTRAP in error.message
    assert error.hint is not None
    assert "unsilo up" in error.hint
    assert "UNSILO_KAFKA__BOOTSTRAP_SERVERS" in error.hint


@pytest.mark.parametrize("code", [KafkaError._ALL_BROKERS_DOWN, KafkaError._TIMED_OUT, KafkaError._RESOLVE])
def test_other_unreachable_codes_are_log_unavailable(code: int) -> None:
    """Brokers down, timeouts and unresolvable names are all 'broker unavailable'."""
    assert isinstance(translate(KafkaError(code), BOOTSTRAP, "connecting"), LogUnavailableError)


def test_kafka_exception_is_unwrapped() -> None:
    """A KafkaException raised by a client is translated by the KafkaError it carries."""
    exc = KafkaException(KafkaError(KafkaError._TRANSPORT))

    assert isinstance(translate(exc, BOOTSTRAP, "listing topics"), LogUnavailableError)


def test_producer_fenced_is_fenced_error() -> None:
    """A newer producer with the same transactional id fences this one: FencedError, not retriable."""
    error = translate(KafkaError(KafkaError.PRODUCER_FENCED), BOOTSTRAP, "committing")

    assert isinstance(error, FencedError)
    assert not error.retriable
    assert error.message.startswith("committing")
    assert error.hint is not None
    assert "transactional id" in error.hint


def test_other_errors_are_delivery_errors_naming_the_code_and_action() -> None:
    """A broker rejection such as MSG_SIZE_TOO_LARGE is a DeliveryError naming the code and the action."""
    error = translate(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE), BOOTSTRAP, "producing")

    assert type(error) is DeliveryError
    assert "MSG_SIZE_TOO_LARGE" in error.message
    assert "producing" in error.message


def test_missing_error_is_a_plain_log_error() -> None:
    """Without a KafkaError to go on the error still says what failed."""
    error = translate(None, BOOTSTRAP, "flushing")

    assert type(error) is LogError
    assert error.message == "flushing failed"
