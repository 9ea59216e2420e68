"""Settings: ``unsilo.yaml`` overlaid by ``UNSILO_`` environment variables.

Precedence, highest first: keyword arguments (tests), environment variables
(``UNSILO_KAFKA__BOOTSTRAP_SERVERS``: ``__`` nests), the YAML file, defaults.
Loaded once in an entry point and passed down; library code never reads ``os.environ``.
"""

from __future__ import annotations

import contextvars
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from hub.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("unsilo.yaml")
_yaml_path: contextvars.ContextVar[Path | None] = contextvars.ContextVar("_yaml_path", default=None)

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class KafkaSettings(_Model):
    """How to reach the Kafka cluster; emits the librdkafka config dict."""

    bootstrap_servers: str = "127.0.0.1:9092"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    replication_factor: int = 1
    topic_partitions: int = 1

    def client_config(self, *, reveal_secrets: bool = True) -> dict[str, Any]:
        """The librdkafka settings common to every client; secrets masked unless revealed."""
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol.lower(),
        }
        if self.sasl_mechanism:
            config["sasl.mechanism"] = self.sasl_mechanism
        if self.sasl_username:
            config["sasl.username"] = self.sasl_username
        if self.sasl_password is not None:
            config["sasl.password"] = (
                self.sasl_password.get_secret_value() if reveal_secrets else "**********"
            )
        return config


class RegistrySettings(_Model):
    """Any Confluent-compatible schema registry (Apicurio's ccompat API by default)."""

    url: str = "http://127.0.0.1:8081/apis/ccompat/v7"
    username: str | None = None
    password: SecretStr | None = None
    compatibility: Literal["BACKWARD", "FORWARD", "FULL", "NONE"] = "BACKWARD"


class LocalSettings(_Model):
    """The local broker and registry run by ``unsilo up`` (not used with remote ones)."""

    data_dir: Path = Path(".unsilo")
    kafka_port: int = 9092
    controller_port: int = 9093
    registry_port: int = 8081
    kafka_home: Path | None = None
    kafka_heap: str = "768m"
    registry_heap: str = "512m"
    start_timeout_s: float = 120.0


MaskRule = Literal["drop", "hash", "redact"]
# sql_poll: Kafka Connect JDBC source modes (see connectors/sql_poll.py)
PollMode = Literal["bulk", "incrementing", "timestamp", "timestamp+incrementing"]


class TableSettings(_Model):
    """One captured table.

    ``key`` overrides the primary key columns; ``row_hash_key`` keys a table that has no
    primary key by a hash of the whole row (full row images required); ``mask`` hides
    sensitive columns before anything leaves the connector: ``drop`` removes the column,
    ``hash`` replaces it by a keyed HMAC-SHA256 (the source's ``mask_key``), ``redact``
    by a fixed marker.
    """

    name: str
    key: list[str] | None = None
    row_hash_key: bool = False
    mask: dict[str, MaskRule] = {}
    # sql_poll / outbox: this table's poll mode and columns (None: the source's setting)
    poll_mode: PollMode | None = None
    incrementing_column: str | None = None
    timestamp_column: str | None = None


class SourceSettings(_Model):
    """One legacy database and the tables captured from it."""

    name: str
    system: str
    kind: Literal["sqlite", "postgres", "mysql", "sql_poll", "outbox"]
    url: str
    password: SecretStr | None = None
    # postgres: replication slot and publication (default unsilo_<name>), heartbeat
    slot: str | None = None
    publication: str | None = None
    heartbeat_interval_s: float = Field(default=10.0, gt=0)
    # mysql: the replica server id this connector uses to read the binlog
    server_id: int | None = None
    tables: list[TableSettings] = Field(min_length=1)
    mask_key: SecretStr | None = None  # HMAC key for columns masked with ``hash``
    batch_size: int = Field(default=2000, ge=1)  # changes per Kafka transaction while streaming
    # postgres, mysql: rows per snapshot chunk, read and published in one Kafka transaction
    # (Debezium's snapshot.fetch.size is 10,240). Each commit waits for the broker, so small
    # chunks cost throughput: 2,000-row chunks snapshot PostgreSQL about 15% slower.
    snapshot_chunk_size: int = Field(default=10_000, ge=1)
    poll_interval_s: float = Field(default=0.05, gt=0)
    # -- sql_poll / outbox: query-based capture (connectors/sql_poll.py, connectors/outbox.py).
    # poll_mode and the two columns are defaults for every table; a table's own settings win.
    poll_mode: PollMode | None = None  # sql_poll: required (here or per table)
    incrementing_column: str | None = None  # default: the single-column primary key (outbox: id)
    timestamp_column: str | None = None  # timestamp modes; outbox: its timestamp column
    lag_s: float = Field(default=5.0, ge=0)  # only rows with ts <= now - lag_s; id gaps wait lag_s
    detect_deletes: bool = False  # diff the keys seen against the table's, emit 'd' for gone ones
    delete_check_interval_s: float = Field(default=300.0, gt=0)
    bulk_interval_s: float = Field(default=60.0, gt=0)  # bulk: pause between two full passes
    state_dir: Path = Path(".unsilo/state")  # sql_poll: the published keys, <state_dir>/<name>.keys.db
    outbox_delete_after_publish: bool = False  # outbox: delete rows once committed to Kafka
    # -- end sql_poll / outbox

    @field_validator("tables", mode="before")
    @classmethod
    def _tables_from_names(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"name": item} if isinstance(item, str) else item for item in value]
        return value

    @model_validator(mode="after")
    def _hash_masks_need_a_key(self) -> SourceSettings:
        hashed = [f"{t.name}.{c}" for t in self.tables for c, rule in t.mask.items() if rule == "hash"]
        if hashed and self.mask_key is None:
            raise ValueError(f"columns masked with 'hash' ({', '.join(hashed)}) need mask_key")
        return self

    @field_validator("name", "system")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits and underscores only (it becomes a topic name)")
        return value


class ReadStoreSettings(_Model):
    """Where read models live: any SQLAlchemy URL (SQLite by default)."""

    url: str = "sqlite:///.unsilo/readmodels.db"


# -- api: the operator side (hub/api, hub/lag*, hub/alerts.py; `unsilo api`, `unsilo lag`, `unsilo status`).
class ApiSettings(_Model):
    """The HTTP API and dashboard, consumer-lag evaluation and webhook alerts.

    Lag statuses follow Burrow's rules over a window of the last ``lag_window`` observed
    commits per partition; commits closer than ``lag_interval_s`` are merged (Burrow's
    min-distance), and the API samples offsets every ``lag_interval_s``. There are no lag
    thresholds. The window history is kept in ``lag_history`` (default
    ``<local.data_dir>/lag-history.db``) so a restart does not reset statuses.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8088, ge=0, le=65535)
    cluster_name: str = "unsilo"  # the cluster_name label of the kafka-lag-exporter metrics
    lag_window: int = Field(default=10, ge=2)  # Burrow's "intervals": commits kept per partition
    lag_interval_s: float = Field(default=1.0, gt=0)  # sampling period and Burrow's min-distance
    lag_history: Path | None = None  # SQLite file of the windows; None: <local.data_dir>/lag-history.db
    webhook_url: str | None = None  # POSTed a JSON alert on every status transition (None: no webhook)
    webhook_timeout_s: float = Field(default=5.0, gt=0)
    check_timeout_s: float = Field(default=2.0, gt=0)  # broker/registry/read-store probes
    history_points: int = Field(default=300, ge=10)  # lag-over-time points kept per group (dashboard)
    # One bearer token per role (None: that role is disabled). With no token set at all the
    # API is open on loopback only; see hub/api/access.py for what each role may call.
    operator_token: SecretStr | None = None
    auditor_token: SecretStr | None = None
    subscriber_token: SecretStr | None = None
    # Where POST /replay may build a store: SQLite files under replay_dir (default
    # <local.data_dir>/replays), other databases only at URLs starting with one of replay_urls.
    replay_dir: Path | None = None
    replay_urls: list[str] = []


# -- end api


class AuditSettings(_Model):
    """Tamper evidence: the per-partition hash chain on raw and canonical events.

    Each record carries ``unsilo.chain`` = SHA-256(previous hash + key + value + position);
    every ``checkpoint_every`` records (and at most ``checkpoint_interval_s`` apart) a
    writer publishes its chain heads, HMAC-signed with ``hmac_key``, to the compacted
    ``_unsilo.chain`` topic. Without a key the chain is still written; checkpoints are not.
    """

    chain: bool = True
    hmac_key: SecretStr | None = None
    checkpoint_every: int = Field(default=10_000, ge=1)
    checkpoint_interval_s: float = Field(default=60.0, gt=0)


class LogSettings(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    json_output: bool | None = None


class Settings(BaseSettings):
    """All of Unsilo's settings; frozen, unknown keys refused."""

    model_config = SettingsConfigDict(
        env_prefix="UNSILO_", env_nested_delimiter="__", extra="forbid", frozen=True
    )

    kafka: KafkaSettings = KafkaSettings()
    registry: RegistrySettings = RegistrySettings()
    local: LocalSettings = LocalSettings()
    read_store: ReadStoreSettings = ReadStoreSettings()
    log: LogSettings = LogSettings()
    api: ApiSettings = ApiSettings()  # HTTP API, dashboard, lag evaluation, alerts
    audit: AuditSettings = AuditSettings()  # hash chain and signed checkpoints
    sources: list[SourceSettings] = []

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))

    def source(self, name: str) -> SourceSettings:
        """The source called ``name``, or a ConfigError listing the known ones."""
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none"
        raise ConfigError(f"no source named {name!r} in the config (known: {known})")


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML file chosen by :func:`load_settings`, if any."""

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = _yaml_path.get()
        return read_yaml(path) if path is not None else {}


def read_yaml(path: Path) -> dict[str, Any]:
    """The YAML mapping in ``path``; a ConfigError that says what is wrong otherwise."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {exc.strerror}",
            hint="pass --config with the path of your unsilo.yaml",
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of settings, not {type(data).__name__}")
    return data


def load_settings(path: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``path`` (or ./unsilo.yaml when it exists), env vars and ``overrides``."""
    if path is None and DEFAULT_CONFIG_FILE.exists():
        path = DEFAULT_CONFIG_FILE
    token = _yaml_path.set(path)
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, path)) from exc
    finally:
        _yaml_path.reset(token)


def describe_validation_error(exc: ValidationError, path: Path | None) -> str:
    """One line per problem, naming the key as it is written in the file."""
    where = str(path) if path is not None else "settings"
    lines = [f"invalid settings in {where}:"]
    for error in exc.errors():
        key = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key (check its spelling; see README 'Configuration')"
        lines.append(f"  {key}: {message}")
    return "\n".join(lines)
