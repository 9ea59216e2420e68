"""The one place where confluent-kafka's ``KafkaError`` codes become named Unsilo errors."""

from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException

from hub.errors import DeliveryError, FencedError, LogError, LogUnavailableError

_UNAVAILABLE = {
    KafkaError._TRANSPORT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._TIMED_OUT,
    KafkaError._RESOLVE,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NETWORK_EXCEPTION,
    KafkaError.COORDINATOR_NOT_AVAILABLE,
    KafkaError.NOT_COORDINATOR,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.NOT_LEADER_FOR_PARTITION,
}
_FENCED = {
    KafkaError._FENCED,
    KafkaError.PRODUCER_FENCED,
    KafkaError.INVALID_PRODUCER_EPOCH,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
}


def unavailable(bootstrap: str, detail: str = "") -> LogUnavailableError:
    """The error for a broker that does not answer at ``bootstrap``."""
    suffix = f" ({detail})" if detail else ""
    return LogUnavailableError(
        f"no Kafka broker answered at {bootstrap}{suffix}",
        hint="start the local broker with `unsilo up` (see `unsilo ps`), "
        "or set kafka.bootstrap_servers / UNSILO_KAFKA__BOOTSTRAP_SERVERS",
    )


def translate(error: KafkaError | KafkaException | None, bootstrap: str, what: str) -> LogError:
    """A named Unsilo error for a confluent-kafka error raised while doing ``what``."""
    if isinstance(error, KafkaException):
        error = error.args[0] if error.args and isinstance(error.args[0], KafkaError) else None
    if error is None:
        return LogError(f"{what} failed")
    code = error.code()
    if code in _FENCED or getattr(error, "fatal", lambda: False)():
        return FencedError(
            f"{what}: this producer was fenced ({error.str()})",
            hint="another instance with the same transactional id is running; stop one",
        )
    if code in _UNAVAILABLE:
        return unavailable(bootstrap, error.str())
    return DeliveryError(f"{what}: {error.name()} {error.str()}")
