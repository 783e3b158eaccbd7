"""Apache Kafka's jars and a Java to run them: found, or fetched from Maven Central once.

`deploy/kafka/pom.xml` names the Kafka version; Maven copies it and its
dependencies into a cache outside the repository (`~/.cache/tensorflux/kafka/`,
or `$TENSORFLUX_CACHE_DIR/kafka/`), one folder per descriptor, so nothing
binary is ever committed and a changed descriptor fetches afresh.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

from engine.errors import TensorfluxError

POM = Path(__file__).resolve().parent.parent / "deploy" / "kafka" / "pom.xml"
MIN_JAVA = 17  # Kafka 4 brokers run on Java 17 and later
FETCH_TIMEOUT_S = 900.0
_COMPLETE = ".complete"  # written last: a folder without it is an interrupted fetch


class KafkaSetupError(TensorfluxError):
    """Java, Maven or Kafka's jars are missing: says what to install."""


def kafka_version(pom: Path = POM) -> str:
    if not pom.exists():
        raise KafkaSetupError(
            f"{pom} is missing: real Kafka on demand runs from a tensorflux checkout"
        )
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom.read_text())
    if match is None:
        raise KafkaSetupError(f"{pom} names no <kafka.version>")
    return match.group(1).strip()


def find_java(environ: Mapping[str, str] | None = None) -> str:
    """The `java` of JAVA_HOME, else of PATH; refuses one older than Java 17."""
    environ = os.environ if environ is None else environ
    home = environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else None
    if java is None or not os.access(java, os.X_OK):
        java = shutil.which("java", path=environ.get("PATH"))
    if java is None:
        raise KafkaSetupError(
            f"real Kafka needs Java {MIN_JAVA}+, and no 'java' is on PATH or in JAVA_HOME: "
            f"install a JDK or JRE {MIN_JAVA}+ (e.g. apt-get install openjdk-17-jre-headless)"
        )
    result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr)
    major = int(match.group(1)) if match else 0
    if major == 1 and match and match.group(2):  # "1.8.0" is Java 8
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise KafkaSetupError(
            f"real Kafka needs Java {MIN_JAVA}+, and {java} is Java {major or 'unknown'}: "
            f"install Java {MIN_JAVA}+ or point JAVA_HOME at one"
        )
    return java


def cache_root(environ: Mapping[str, str] | None = None) -> Path:
    environ = os.environ if environ is None else environ
    if environ.get("TENSORFLUX_CACHE_DIR"):
        return Path(environ["TENSORFLUX_CACHE_DIR"])
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "tensorflux"


def jars_dir(environ: Mapping[str, str] | None = None, pom: Path = POM) -> Path:
    """The folder of Kafka's jars, fetched with Maven when it is not cached yet."""
    environ = os.environ if environ is None else environ
    version = kafka_version(pom)
    digest = hashlib.sha256(pom.read_bytes()).hexdigest()[:10]
    target = cache_root(environ) / "kafka" / f"{version}-{digest}"
    if (target / _COMPLETE).exists():
        return target
    mvn = shutil.which("mvn", path=environ.get("PATH"))
    if mvn is None:
        raise KafkaSetupError(
            f"Kafka's jars are not in {target.parent} yet and fetching them needs Maven: "
            "install it (e.g. apt-get install maven), with Maven Central reachable"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".fetch-", dir=target.parent))
    try:
        result = subprocess.run(
            [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies",
             f"-DoutputDirectory={staging}", "-DincludeScope=runtime"],
            capture_output=True, text=True, timeout=FETCH_TIMEOUT_S, env=dict(environ),
        )  # fmt: skip
        if result.returncode != 0 or not any(staging.glob("kafka_2.13-*.jar")):
            tail = " | ".join((result.stdout + result.stderr).strip().splitlines()[-3:])
            raise KafkaSetupError(f"Maven could not fetch Kafka {kafka_version(pom)}: {tail}")
        (staging / _COMPLETE).write_text(kafka_version(pom))
        if target.exists() and not (target / _COMPLETE).exists():
            shutil.rmtree(target)  # left by an interrupted fetch
        try:
            staging.rename(target)
        except OSError:  # another fetch finished first: keep its folder
            if not (target / _COMPLETE).exists():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
