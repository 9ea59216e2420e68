"""The one place where confluent-kafka's ``KafkaError`` codes become named Unsilo errors."""

from __future__ import annotations

import logging
import re

from confluent_kafka import KafkaError, KafkaException

from hub.errors import (
    AuthenticationError,
    AuthorizationError,
    DeliveryError,
    FencedError,
    LogError,
    LogUnavailableError,
)

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
}
_DENIED = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
    KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
    KafkaError.DELEGATION_TOKEN_AUTHORIZATION_FAILED,
}
_REFUSED = {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED}
# librdkafka's words for a broker that closes a new connection before answering anything:
# a client speaking PLAINTEXT to a SASL or SSL listener.
_CLOSED_AT_ONCE = re.compile(r"connection closed by peer: .*\(after \d{1,3}ms in state UP\)")
AUTH_HINT = (
    "check kafka.security_protocol, kafka.sasl_mechanism, kafka.sasl_username and kafka.sasl_password "
    "(UNSILO_KAFKA__SASL_PASSWORD) against the broker's listener"
)
ACL_HINT = (
    "grant the hub's principal (kafka.sasl_username) ACLs for topics prefixed 'unsilo.' and '_unsilo.', "
    "transactional ids prefixed 'unsilo-' and consumer groups prefixed 'unsilo' (kafka-acls --add ...)"
)


def unavailable(bootstrap: str, detail: str = "") -> LogUnavailableError:
    """The error for a broker that does not answer at ``bootstrap``."""
    suffix = f" ({detail})" if detail else ""
    return LogUnavailableError(
        f"no Kafka broker answered at {bootstrap}{suffix}",
        hint="start the local broker with `unsilo up` (see `unsilo ps`), "
        "or set kafka.bootstrap_servers / UNSILO_KAFKA__BOOTSTRAP_SERVERS",
    )


def refused(bootstrap: str, detail: str) -> AuthenticationError:
    """The error for a broker at ``bootstrap`` that refused our credentials or protocol."""
    return AuthenticationError(
        f"the Kafka broker at {bootstrap} refused the connection: {detail}", hint=AUTH_HINT
    )


class ErrorWatch(logging.Handler):
    """Notes the last authentication problem librdkafka reported, if any.

    Such problems reach the application only as log lines (``SASL authentication error``,
    or a broker closing each connection at once: a PLAINTEXT client on a SASL or SSL
    listener); the call that failed just times out, which would read as "no broker
    answered". :meth:`logger` gives the ``logger`` client setting (served on ``poll``);
    the lines still propagate to the ``librdkafka`` logger.
    """

    def __init__(self, security_protocol: str) -> None:
        super().__init__()
        self.plaintext = security_protocol.upper() == "PLAINTEXT"
        self.refusal: str | None = None

    def logger(self) -> logging.Logger:
        logger = logging.Logger("librdkafka.client")
        logger.parent = logging.getLogger("librdkafka")
        logger.addHandler(self)
        return logger

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage()
        wrong_protocol = self.plaintext and _CLOSED_AT_ONCE.search(line) is not None
        if "SASL authentication error" in line or wrong_protocol:
            self.refusal = line.rpartition("]: ")[2] or line

    def raise_refusal(self, bootstrap: str) -> None:
        """Raise AuthenticationError when a refusal was seen."""
        if self.refusal is None:
            return
        if _CLOSED_AT_ONCE.search(self.refusal):
            raise AuthenticationError(
                f"the Kafka broker at {bootstrap} closes every connection at once: it expects another "
                "security protocol than PLAINTEXT (SASL or SSL?)",
                hint=AUTH_HINT,
            )
        raise refused(bootstrap, self.refusal)


def translate(error: KafkaError | KafkaException | None, bootstrap: str, what: str) -> LogError:
    """A named Unsilo error for a confluent-kafka error raised while doing ``what``."""
    if isinstance(error, KafkaException):
        error = error.args[0] if error.args and isinstance(error.args[0], KafkaError) else None
    if error is None:
        return LogError(f"{what} failed")
    code = error.code()
    if code in _DENIED:
        return AuthorizationError(
            f"{what}: the broker denied it ({error.name()}: {error.str()})", hint=ACL_HINT
        )
    if code in _REFUSED:
        return refused(bootstrap, error.str())
    if code in _FENCED or getattr(error, "fatal", lambda: False)():
        return FencedError(
            f"{what}: this producer was fenced ({error.str()})",
            hint="another instance with the same transactional id is running; stop one",
        )
    if code in _UNAVAILABLE:
        return unavailable(bootstrap, error.str())
    return DeliveryError(f"{what}: {error.name()} {error.str()}")
