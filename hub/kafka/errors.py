"""The one place where confluent-kafka's ``KafkaError`` codes become named Unsilo errors."""

from __future__ import annotations

import socket

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


class ErrorWatch:
    """An ``error_cb`` noting what librdkafka reported while a call failed (served on ``poll``).

    A refused login reaches the application only there: the call that failed just times
    out, which would read as "no broker answered". A broker that accepts TCP connections
    and closes them at once (a PLAINTEXT client on a SASL or SSL listener) shows only as
    "all brokers down": :meth:`raise_refusal` then checks whether the port answers.
    """

    def __init__(self, security_protocol: str) -> None:
        self.plaintext = security_protocol.upper() == "PLAINTEXT"
        self.refusal: str | None = None
        self.all_down = False

    def __call__(self, error: KafkaError) -> None:
        if error.code() in _REFUSED:
            self.refusal = error.str()
        elif error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_down = True

    def raise_refusal(self, bootstrap: str) -> None:
        """Raise the refusal seen, if any: AuthenticationError, or a protocol mismatch."""
        if self.refusal is not None:
            raise refused(bootstrap, self.refusal)
        if self.plaintext and self.all_down and _port_answers(bootstrap):
            raise LogUnavailableError(
                f"the Kafka broker at {bootstrap} accepts connections but closes them at once: it "
                "expects another security protocol than PLAINTEXT (SASL or SSL?)",
                hint=AUTH_HINT,
            )


def _port_answers(bootstrap: str) -> bool:
    """True when a TCP connection to one of the ``host:port`` addresses is accepted."""
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port)), timeout=2):
                return True
        except (OSError, ValueError):
            continue
    return False


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
