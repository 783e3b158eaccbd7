"""One engine for all the replay tests: specs on the control topic, a worker
serving them, and recorded traffic, all on the session's broker.

Recorded traffic: 1,000 good requests to `scoring` stamped T0 + 10 ms * i
(X = [i / 4, 0, 0, 0], so score-v2 changes exactly those with i > 400, by 0.5),
then 20 that score refuses (negative X) stamped from T0 + 20 s. They are
produced in one burst with a long linger, so record batches hold many records
and straddle every window's edges.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from confluent_kafka import Producer

from engine.codec import encode_avro
from engine.config import KafkaSettings
from engine.messages import InferenceMessage, Tensor
from engine.runtime.control import ControlPlane
from tests.runtime.helpers import ROOT, Kafka, RunningWorker, compile_specs

SPECS = Path(__file__).resolve().parent / "specs"
GOOD = 1000
FAILING = 20
STEP_MS = 10
FAILING_FROM_MS = 20_000


def good_id(i: int) -> str:
    return f"good-{i:04d}"


def failing_id(j: int) -> str:
    return f"bad-{j:02d}"


@dataclass
class Engine:
    settings: KafkaSettings
    worker: RunningWorker
    kafka: Kafka
    t0: int
    """Timestamp of the first recorded request (epoch ms)."""

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TENSORFLUX_BOOTSTRAP": self.settings.bootstrap,
            "TENSORFLUX_NAMESPACE": self.settings.namespace,
        }

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "engine", *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def replay(self, source: str | None, **options: object) -> dict:
        """In-process (no interpreter start): the report's JSON, `dry_run` added for dry runs."""
        from engine.replay.run import ReplayRequest, replay
        from engine.replay.selection import Selection

        fields = set(Selection.__dataclass_fields__)
        selection = Selection(**{k: v for k, v in options.items() if k in fields})  # type: ignore[arg-type]
        rest = {k: v for k, v in options.items() if k not in fields}
        result = replay(self.settings, ReplayRequest(source, selection=selection, **rest))  # type: ignore[arg-type]
        out = result.report.to_json()
        out["exit_code"] = result.report.exit_code()
        if result.dry_run is not None:
            out["dry_run"] = result.dry_run
        return out

    def replay_json(self, *args: str, expect: int | None = None) -> dict:
        result = self.cli("pipeline", "replay", *args, "-o", "json")
        if expect is not None:
            assert result.returncode == expect, result.stdout + result.stderr
        return json.loads(result.stdout)


def request(request_id: str, x0: float) -> bytes:
    x = np.array([x0, 0, 0, 0], dtype=np.float32)
    return encode_avro(InferenceMessage(request_id, (Tensor.from_array("X", x),), "request"))


@pytest.fixture(scope="package")
def engine(kafka_bootstrap: str) -> Iterator[Engine]:
    settings = KafkaSettings(
        bootstrap=kafka_bootstrap, namespace=f"t{uuid.uuid4().hex[:12]}", partitions=1
    )
    plane = ControlPlane(settings)
    plane.load([str(SPECS)])
    plane.close()
    worker = RunningWorker(settings, compile_specs(settings, [SPECS]))
    kafka = Kafka(settings)
    try:
        for name in ("scoring", "scoring-v2", "scoring-audit"):
            worker.wait_ready("pipeline", name)
        t0 = time.time_ns() // 1_000_000 - 3_600_000  # an hour ago
        topic = settings.topics().pipeline_inputs("scoring")
        producer = Producer(settings.producer_config(**{"linger.ms": 200}))
        for i in range(GOOD):
            producer.produce(topic, request(good_id(i), i / 4), good_id(i), timestamp=t0 + i * 10)
        for j in range(FAILING):
            stamp = t0 + FAILING_FROM_MS + j * STEP_MS
            producer.produce(
                topic, request(failing_id(j), -1.0 - j), failing_id(j), timestamp=stamp
            )
        assert producer.flush(30) == 0
        ids = [good_id(i) for i in range(GOOD)] + [failing_id(j) for j in range(FAILING)]
        kafka.outputs("scoring", ids, deadline_s=60)
        kafka.collect(
            settings.topics().pipeline_outputs("scoring-audit"), ids[:GOOD], deadline_s=60
        )
        yield Engine(settings, worker, kafka, t0)
    finally:
        kafka.close()
        worker.stop()


@dataclass
class Seen:
    """A record read back from a topic."""

    topic: str
    partition: int
    offset: int
    key: str
    headers: dict[str, str]
    value: bytes


def read_topic(settings: KafkaSettings, topic: str) -> list[Seen]:
    """Every record on `topic` now (all partitions, to each partition's EOF)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    from engine.admin import TopicAdmin

    partitions = TopicAdmin(settings).existing().get(topic, 0)
    consumer = Consumer(
        settings.consumer_config(
            f"read-{uuid.uuid4().hex[:8]}",
            **{"enable.partition.eof": True, "fetch.wait.max.ms": 10},
        )
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    pending, seen = set(range(partitions)), []
    deadline = time.monotonic() + 30
    try:
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.1):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(message.partition())
                    continue
                seen.append(
                    Seen(
                        topic,
                        message.partition(),
                        message.offset(),
                        (message.key() or b"").decode(),
                        {k: (v or b"").decode() for k, v in message.headers() or []},
                        message.value() or b"",
                    )
                )
    finally:
        consumer.close()
    assert not pending, f"{topic}: no EOF within 30 s"
    return seen


def of_run(settings: KafkaSettings, topic: str, run: str) -> list[Seen]:
    """The records on `topic` that replay run `run` wrote or caused."""
    return [s for s in read_topic(settings, topic) if s.headers.get("tensorflux-replay-run") == run]
