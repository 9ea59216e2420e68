"""confluent-kafka errors become named Unsilo errors that say what to do."""

from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException

from hub.errors import (
    AuthenticationError,
    AuthorizationError,
    DeliveryError,
    FencedError,
    LogError,
    LogUnavailableError,
)
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


@pytest.mark.parametrize(
    "code",
    [
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    ],
)
def test_denied_by_acls_is_an_authorization_error_saying_which_acls_to_grant(code: int) -> None:
    """A broker's ACL denial is an AuthorizationError (exit 2, not retried), never 'fenced'."""
    error = translate(KafkaError(code), BOOTSTRAP, "initialising transactions")

    assert isinstance(error, AuthorizationError) and not error.retriable and error.exit_code == 2
    assert "initialising transactions" in error.message
    assert "'unsilo.'" in (error.hint or "") and "transactional ids" in (error.hint or "")


def test_refused_credentials_are_an_authentication_error_pointing_at_the_sasl_settings() -> None:
    """SASL authentication failure names the broker and points at kafka.sasl_* settings."""
    error = translate(KafkaError(KafkaError._AUTHENTICATION), BOOTSTRAP, "connecting")

    assert isinstance(error, AuthenticationError) and not error.retriable
    assert BOOTSTRAP in error.message and "kafka.sasl_password" in (error.hint or "")
