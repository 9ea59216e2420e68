"""Settings from unsilo.yaml and UNSILO_ environment variables (files in tmp_path only)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from hub.config import KafkaSettings, SourceSettings, TableSettings, load_settings
from hub.errors import ConfigError

CONFIG = """\
kafka:
  bootstrap_servers: broker.example:9092
  security_protocol: SASL_SSL
  sasl_mechanism: PLAIN
  sasl_username: hub
  sasl_password: hunter2
sources:
  - name: shop
    system: sales
    kind: sqlite
    url: shop.db
    tables:
      - customers
      - name: orders
        key: [order_no]
"""


@pytest.fixture(autouse=True)
def _no_unsilo_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own UNSILO_KAFKA__... variables out of these tests."""
    monkeypatch.delenv("UNSILO_KAFKA__BOOTSTRAP_SERVERS", raising=False)
    monkeypatch.delenv("UNSILO_KAFKA__SASL_PASSWORD", raising=False)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "unsilo.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_settings_are_read_from_the_yaml_file(tmp_path: Path) -> None:
    """Values written in unsilo.yaml are the ones the hub uses."""
    path = write_config(tmp_path, CONFIG)

    settings = load_settings(path)

    assert settings.kafka.bootstrap_servers == "broker.example:9092"
    assert settings.kafka.security_protocol == "SASL_SSL"
    assert settings.source("shop").system == "sales"
    assert settings.registry.compatibility == "BACKWARD"  # not in the file: the default


def test_environment_variable_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """UNSILO_KAFKA__BOOTSTRAP_SERVERS wins over the file and leaves its other kafka keys alone."""
    path = write_config(tmp_path, CONFIG)
    monkeypatch.setenv("UNSILO_KAFKA__BOOTSTRAP_SERVERS", "env-broker:19092")

    settings = load_settings(path)

    assert settings.kafka.bootstrap_servers == "env-broker:19092"
    assert settings.kafka.sasl_username == "hub"
    assert settings.kafka.security_protocol == "SASL_SSL"


def test_misspelt_key_is_named_by_its_path(tmp_path: Path) -> None:
    """A typo such as ``tabels`` is reported as ``sources.0.tabels`` with a spelling hint."""
    path = write_config(tmp_path, CONFIG.replace("    tables:", "    tabels:"))

    with pytest.raises(ConfigError) as raised:
        load_settings(path)

    message = str(raised.value)
    assert "sources.0.tabels" in message
    assert "unknown key" in message
    assert str(path) in message
    assert raised.value.exit_code == 2


def test_invalid_yaml_is_a_config_error(tmp_path: Path) -> None:
    """A file that is not YAML gives a ConfigError naming the file, not a parser traceback."""
    path = write_config(tmp_path, "kafka:\n  bootstrap_servers: [unclosed\n")

    with pytest.raises(ConfigError, match="not valid YAML") as raised:
        load_settings(path)

    assert str(path) in str(raised.value)


def test_yaml_that_is_not_a_mapping_is_a_config_error(tmp_path: Path) -> None:
    """A file holding a list instead of a mapping of settings is refused with a ConfigError."""
    path = write_config(tmp_path, "- kafka\n- sources\n")

    with pytest.raises(ConfigError, match="must hold a mapping"):
        load_settings(path)


def test_missing_file_is_a_config_error_with_a_hint(tmp_path: Path) -> None:
    """A --config path that does not exist says so and hints at --config."""
    with pytest.raises(ConfigError, match="cannot read config file") as raised:
        load_settings(tmp_path / "nope.yaml")

    assert raised.value.hint is not None
    assert "--config" in raised.value.hint


def test_kafka_password_is_secret_and_masked_in_client_config(tmp_path: Path) -> None:
    """kafka.sasl_password is a SecretStr: masked in repr and client_config unless revealed."""
    settings = load_settings(write_config(tmp_path, CONFIG))

    masked = settings.kafka.client_config(reveal_secrets=False)
    revealed = settings.kafka.client_config()

    assert isinstance(settings.kafka.sasl_password, SecretStr)
    assert "hunter2" not in repr(settings)
    assert masked["sasl.password"] == "**********"
    assert "hunter2" not in masked.values()
    assert revealed["sasl.password"] == "hunter2"
    assert revealed["sasl.username"] == "hub"
    assert revealed["security.protocol"] == "sasl_ssl"


def test_client_config_without_sasl_has_no_sasl_keys() -> None:
    """A plaintext cluster's librdkafka config carries only the address and protocol."""
    config = KafkaSettings(bootstrap_servers="127.0.0.1:9092").client_config()

    assert config == {"bootstrap.servers": "127.0.0.1:9092", "security.protocol": "plaintext"}


def test_table_names_given_as_strings_become_table_settings(tmp_path: Path) -> None:
    """``tables: [customers]`` and ``{name: orders, key: [...]}`` both become TableSettings."""
    settings = load_settings(write_config(tmp_path, CONFIG))

    tables = settings.source("shop").tables

    assert tables == [
        TableSettings(name="customers"),
        TableSettings(name="orders", key=["order_no"]),
    ]


def test_source_names_must_be_usable_in_topic_names() -> None:
    """A source system with a space in it is refused because it becomes part of a topic name."""
    with pytest.raises(ValueError, match="letters, digits and underscores"):
        SourceSettings(name="shop", system="sales dept", kind="sqlite", url="x.db", tables=["t"])


def test_unknown_source_name_lists_the_known_ones(tmp_path: Path) -> None:
    """Asking for a source that is not configured names the ones that are."""
    settings = load_settings(write_config(tmp_path, CONFIG))

    with pytest.raises(ConfigError, match=r"no source named 'crm'.*known: shop"):
        settings.source("crm")
