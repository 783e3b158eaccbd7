"""Kafka settings: one typed object for every client tensorflux creates.

Values come, lowest precedence first, from defaults that suit the embedded
broker, a librdkafka properties file (`key=value` lines), environment variables
(`TENSORFLUX_BOOTSTRAP`, `TENSORFLUX_TOPIC_PREFIX`, `TENSORFLUX_NAMESPACE`,
`TENSORFLUX_PARTITIONS`, and `TENSORFLUX_KAFKA_<LIBRDKAFKA_KEY>` with `_` for
`.`), and explicit arguments (the command line).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from engine.errors import TensorfluxError
from engine.topology.topics import TopicNames

ENV_PREFIX = "TENSORFLUX_"
KAFKA_ENV_PREFIX = "TENSORFLUX_KAFKA_"

# librdkafka keys whose values must never be printed.
SECRET_KEYS = frozenset(
    {"sasl.password", "ssl.key.password", "ssl.keystore.password", "sasl.oauthbearer.client.secret"}
)

# Defaults measured against the embedded broker: a group's first join waits
# about half of session.timeout.ms there, so keep it short in development.
DEV_CONSUMER_DEFAULTS: Mapping[str, Any] = {
    "session.timeout.ms": 6000,
    "heartbeat.interval.ms": 1000,
    "auto.offset.reset": "earliest",
    "enable.auto.commit": False,
    # Keeps partition i of every co-partitioned topic on one member (joins).
    "partition.assignment.strategy": "range",
    # librdkafka's default, said out loud: records of an aborted or open transaction
    # (an exactly-once worker's) are never seen. tansu does not honour it.
    "isolation.level": "read_committed",
}

PRODUCER_DEFAULTS: Mapping[str, Any] = {
    "linger.ms": 1,
    # Retries after a failover must not write a record twice or out of order: without
    # idempotence a batch whose acknowledgement was lost with a dying leader is written
    # again further on, and batches in flight behind it may land first. acks=all and
    # unlimited retries within message.timeout.ms are librdkafka's defaults.
    "enable.idempotence": True,
}


BrokerKind = Literal["tansu", "kafka"]
"""What serves the bootstrap: the embedded broker, or Apache Kafka (or any other Kafka)."""


def broker_kind(cluster_id: str | None) -> BrokerKind:
    """tansu's cluster ids start with "tansu". A broker that did not answer gets tansu's
    settings: short fetch waits are right on any broker, only busier."""
    if cluster_id is None or cluster_id.startswith("tansu"):
        return "tansu"
    return "kafka"


class _OncePerInterval(logging.Filter):
    """librdkafka repeats a failing connection every few ms: say each thing once in a while."""

    def __init__(self, interval_s: float = 30.0) -> None:
        super().__init__()
        self.interval_s = interval_s
        self._last: dict[str, float] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage().split("]: ", 1)[-1]
        now = time.monotonic()
        if now - self._last.get(text, -self.interval_s) < self.interval_s:
            return False
        self._last[text] = now
        return True


KAFKA_LOG = logging.getLogger("tensorflux.kafka")
KAFKA_LOG.addFilter(_OncePerInterval())


class ConfigError(TensorfluxError):
    """A setting is malformed: names the setting and where it came from."""


DEFAULT_PARTITIONS = 4
"""Partitions of the topics tensorflux creates unless told otherwise: up to four workers
(one a core on a 4-core machine) share a pipeline's traffic with no setting. Kafka's own
default, one, leaves a second worker idle. (The control and status topics keep one.)"""


class KafkaSettings(BaseModel):
    """Where the broker is and how tensorflux names and sizes its topics."""

    model_config = ConfigDict(frozen=True)

    bootstrap: str = "127.0.0.1:9092"
    """Kafka bootstrap servers, `HOST:PORT[,HOST:PORT...]`."""
    topic_prefix: str = "tensorflux"
    """First segment of every topic name."""
    namespace: str = "default"
    """Second segment of every topic name: isolates tenants or test runs on one cluster."""
    partitions: int = Field(default=DEFAULT_PARTITIONS, ge=1)
    """Partition count of every topic tensorflux creates (all topics of a pipeline share it)."""
    replication_factor: int = Field(default=1, ge=1)
    """Replication factor of topics tensorflux creates."""
    librdkafka: Mapping[str, str | SecretStr] = Field(default_factory=dict)
    """librdkafka pass-through (SASL, TLS, anything): applied to every client."""

    @field_validator("topic_prefix", "namespace")
    @classmethod
    def _topic_segment(cls, value: str) -> str:
        allowed = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_")
        if not value or not set(value) <= allowed:
            raise ValueError(f"{value!r} may only hold letters, digits, '-' and '_'")
        return value

    @classmethod
    def load(
        cls,
        *,
        config_file: str | Path | None = None,
        environ: Mapping[str, str] | None = None,
        **overrides: Any,
    ) -> KafkaSettings:
        """Settings from a properties file, the environment and explicit overrides."""
        environ = os.environ if environ is None else environ
        librdkafka: dict[str, str | SecretStr] = {}
        if config_file is not None:
            librdkafka.update(_read_properties(Path(config_file)))
        fields: dict[str, Any] = {}
        for name in ("bootstrap", "topic_prefix", "namespace", "partitions", "replication_factor"):
            value = environ.get(ENV_PREFIX + name.upper())
            if value:
                fields[name] = value
        for key, value in environ.items():
            if key.startswith(KAFKA_ENV_PREFIX):
                librdkafka[key[len(KAFKA_ENV_PREFIX) :].lower().replace("_", ".")] = value
        # bootstrap.servers given as a librdkafka key wins over the default only.
        if "bootstrap.servers" in librdkafka and "bootstrap" not in fields:
            fields["bootstrap"] = str(librdkafka["bootstrap.servers"])
        librdkafka.pop("bootstrap.servers", None)
        fields.update({k: v for k, v in overrides.items() if v is not None})
        fields["librdkafka"] = {
            key: SecretStr(str(value)) if key in SECRET_KEYS else value
            for key, value in {**librdkafka, **fields.get("librdkafka", {})}.items()
        }
        try:
            return cls(**fields)
        except ValueError as error:
            raise ConfigError(f"invalid Kafka settings: {error}") from None

    def client_config(self) -> dict[str, Any]:
        """librdkafka settings common to producers, consumers and admin clients."""
        # A broker going away is reported through errors, not logged by every client.
        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap,
            "log.connection.close": False,
            "logger": KAFKA_LOG,
        }
        for key, value in self.librdkafka.items():
            config[key] = value.get_secret_value() if isinstance(value, SecretStr) else value
        return config

    def producer_config(self, **extra: Any) -> dict[str, Any]:
        config = {**PRODUCER_DEFAULTS, **self.client_config()}
        config.update(extra)
        return config

    def consumer_config(self, group_id: str, **extra: Any) -> dict[str, Any]:
        config = {**DEV_CONSUMER_DEFAULTS, "group.id": group_id, **self.client_config()}
        config.update(extra)
        return config

    def topics(self) -> TopicNames:
        """The topic names of this prefix and namespace."""
        return TopicNames(self.topic_prefix, self.namespace)

    def with_namespace(self, namespace: str) -> KafkaSettings:
        return self.model_copy(update={"namespace": namespace})


def _read_properties(path: Path) -> dict[str, str]:
    """`key=value` lines as librdkafka and Java clients write them; `#` starts a comment."""
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read Kafka config file {path}: {error.strerror}") from None
    properties: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{path}:{number}: expected 'key=value', got {raw!r}")
        properties[key.strip()] = value.strip()
    return properties
