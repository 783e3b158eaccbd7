"""Worker settings: how much a loop turn takes, how long it waits, how often it commits.

One frozen object per worker, so two workers in one process may differ.
`WorkerSettings.load()` reads `TENSORFLUX_WORKER_CHUNK`,
`TENSORFLUX_WORKER_MAX_WAIT_MS`, `TENSORFLUX_WORKER_COMMIT_INTERVAL_MS`,
`TENSORFLUX_WORKER_IDLE_AFTER_MS`, `TENSORFLUX_WORKER_IDLE_PROBE_MS`, `TENSORFLUX_WORKER_COLD_AFTER_MS`,
`TENSORFLUX_WORKER_MODEL_THREADS`, `TENSORFLUX_WORKER_MODEL_MAX_IN_FLIGHT` and
`TENSORFLUX_PROCESSING_GUARANTEE` from an injectable environment (never at import). The client defaults were chosen with
`make bench BENCH_ARGS=--sweep` (README "Performance"); a librdkafka setting the
user passes (`TENSORFLUX_KAFKA_LINGER_MS`, a config file) wins over them.

The consumer's defaults depend on the broker (`BrokerKind`): tansu answers a
waiting fetch only when its wait ends, so the worker waits 10 ms and pauses its
partitions when idle (`runtime/idling.py`, `make bench BENCH_ARGS=--idle`);
Apache Kafka answers as soon as a record arrives, so a long wait costs no latency.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.config import ENV_PREFIX, BrokerKind, ConfigError, KafkaSettings
from engine.group_protocol import CLASSIC_ONLY_KEYS, GroupProtocol

WORKER_ENV_PREFIX = ENV_PREFIX + "WORKER_"
ENV_FIELDS = (
    "chunk",
    "max_wait_ms",
    "commit_interval_ms",
    "idle_after_ms",
    "idle_probe_ms",
    "cold_after_ms",
    "model_threads",
    "model_max_in_flight",
)
"""The fields `load` reads from `TENSORFLUX_WORKER_<FIELD>`."""
GUARANTEE_ENV = ENV_PREFIX + "PROCESSING_GUARANTEE"

ProcessingGuarantee = Literal["at-least-once", "exactly-once"]


class WorkerSettings(BaseModel):
    """The knobs of one worker's consume-process-produce loop."""

    model_config = ConfigDict(frozen=True)

    chunk: int = Field(default=1000, ge=1)
    """Records consumed per loop turn (and the most one batched model call sees)."""
    max_wait_ms: int = Field(default=100, ge=0)
    """Longest a loop turn waits for a first record (sooner when a join window or batch is due)."""
    commit_interval_ms: int = Field(default=1000, ge=0)
    """How often what was produced is flushed and the offsets it answers are committed
    (at-least-once; exactly-once commits every chunk's transaction)."""
    model_threads: int = Field(default=1, ge=0)
    """Threads per model running its calls off the consume loop (1: a model's calls never
    overlap one another, as a stateful python model expects; 0: on the loop itself, as
    before, with no timeouts and no pausing: a stuck model stops the worker)."""
    model_max_in_flight: int = Field(default=4000, ge=1)
    """Requests one model may hold before the partitions feeding it are paused (README
    "Memory and slow models")."""
    processing_guarantee: ProcessingGuarantee = "at-least-once"
    """exactly-once: each chunk's records and consumed offsets commit in one Kafka
    transaction (real Kafka only: tansu does not hide aborted records)."""
    producer_defaults: Mapping[str, Any] = Field(
        default_factory=lambda: {"linger.ms": 2, "batch.num.messages": 10000}
    )
    """librdkafka producer settings the worker uses unless the user's Kafka settings set them."""
    consumer_defaults: Mapping[str, Any] = Field(
        default_factory=lambda: {
            "fetch.wait.max.ms": 10,
            "fetch.min.bytes": 1,
            # tansu holds every JoinGroup for half the session timeout, in whole seconds
            # (1 s at least): with Kafka's 6 s each load, unload or worker joining stopped
            # all traffic for 3 s, at 2 s it stops it for 1 s. A killed worker's share
            # also waits out the session. librdkafka heartbeats from its own thread, so a
            # busy interpreter does not miss them.
            "session.timeout.ms": 2000,
            "heartbeat.interval.ms": 500,
        }
    )
    """librdkafka consumer settings the worker uses on tansu unless the user's Kafka
    settings set them (a longer wait there is latency: it is waited out in full)."""
    kafka_consumer_defaults: Mapping[str, Any] = Field(
        default_factory=lambda: {"fetch.wait.max.ms": 500, "fetch.min.bytes": 1}
    )
    """The same on Apache Kafka, which answers a waiting fetch when a record arrives."""
    idle_after_ms: int = Field(default=1000, ge=0)
    """On tansu: pause every partition after this long without a record (0: never)."""
    idle_probe_ms: int = Field(default=100, ge=1)
    """While paused: how often one ListOffsets request asks whether anything came (the
    longest the first record after a quiet spell waits)."""
    cold_after_ms: int = Field(default=5000, ge=0)
    """On tansu: pause a partition that brought nothing for this long while others are
    busy (runtime/cold.py; 0: never). Its next record waits up to `idle_probe_ms`, and
    then every such partition is fetched again. A busy consumer fetches as fast as tansu
    answers and each fetch costs it per partition named: with `examples/` loaded and one
    pipeline busy, the partitions nobody writes cost the broker more than the traffic."""

    @classmethod
    def load(cls, *, environ: Mapping[str, str] | None = None, **overrides: Any) -> WorkerSettings:
        """Settings from the environment (`TENSORFLUX_WORKER_<FIELD>`) and explicit overrides."""
        environ = os.environ if environ is None else environ
        fields: dict[str, Any] = {}
        for name in ENV_FIELDS:
            value = environ.get(WORKER_ENV_PREFIX + name.upper())
            if value:
                fields[name] = value
        if environ.get(GUARANTEE_ENV):
            fields["processing_guarantee"] = environ[GUARANTEE_ENV]
        from_env = set(fields)
        overrides = {k: v for k, v in overrides.items() if v is not None}
        from_env -= set(overrides)
        fields.update(overrides)
        try:
            return cls(**fields)
        except ValidationError as error:
            problems = []
            for problem in error.errors():
                name = str(problem["loc"][0]) if problem["loc"] else ""
                where = _env_name(name) if name in from_env else name
                problems.append(f"{where}={problem.get('input')!r}: {problem['msg']}")
            raise ConfigError("invalid worker settings: " + "; ".join(problems)) from None

    def producer_config(self, kafka: KafkaSettings, **extra: Any) -> dict[str, Any]:
        """The worker's producer: these defaults under the user's librdkafka settings."""
        defaults = {k: v for k, v in self.producer_defaults.items() if k not in kafka.librdkafka}
        return kafka.producer_config(**defaults, **extra)

    def consumer_config(
        self,
        kafka: KafkaSettings,
        group_id: str,
        broker: BrokerKind = "tansu",
        protocol: GroupProtocol = "classic",
    ) -> dict[str, Any]:
        """The worker's consumer: the broker's defaults under the user's librdkafka
        settings, in a group of `protocol` (`engine/group_protocol.py`)."""
        chosen = self.consumer_defaults if broker == "tansu" else self.kafka_consumer_defaults
        defaults = {k: v for k, v in chosen.items() if k not in kafka.librdkafka}
        config = kafka.consumer_config(group_id, **defaults)
        if protocol == "consumer":
            for key in CLASSIC_ONLY_KEYS:
                config.pop(key, None)
            # The broker assigns; its range assignor keeps partition i of every topic
            # on one member, as the classic range assignor did.
            config.setdefault("group.protocol", "consumer")
            config.setdefault("group.remote.assignor", "range")
        return config

    def idle_after_s(self, broker: BrokerKind) -> float:
        """When to pause an idle consumer on this broker (0: never; Kafka's idle fetches
        are cheap to it)."""
        return self.idle_after_ms / 1000 if broker == "tansu" else 0.0

    def idle_timings(self, broker: BrokerKind) -> dict[str, float]:
        """`IdlePause`'s timings on this broker (on Kafka it never pauses anything)."""
        cold = self.cold_after_ms / 1000 if broker == "tansu" else 0.0
        return {
            "idle_after_s": self.idle_after_s(broker),
            "probe_every_s": self.idle_probe_ms / 1000,
            "cold_after_s": cold,
        }


def _env_name(field: str) -> str:
    return GUARANTEE_ENV if field == "processing_guarantee" else WORKER_ENV_PREFIX + field.upper()
