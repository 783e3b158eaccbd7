"""Exactly once on Apache Kafka: what only a broker that isolates transactions and keeps
offset metadata can show (tansu does neither).

A join holds a half-joined request's record, so the committed offset stays at
it while later requests are joined and answered. Whoever resumes the partition
(the same worker after an abort, another after a stop) must replay only what was
held: replaying the answered ones would answer them twice or leave them half-fed.
"""

from __future__ import annotations

import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

from engine import headers as h
from engine.config import KafkaSettings
from engine.messages import InferenceMessage
from engine.runtime.delivery import Fenced
from engine.runtime.records import Outgoing
from engine.runtime.settings import WorkerSettings
from engine.runtime.worker import Worker
from tests.runtime.helpers import (
    MODELS,
    Kafka,
    RunningWorker,
    compile_specs,
    int32,
    new_id,
    tensors,
)

EXACTLY_ONCE = WorkerSettings(processing_guarantee="exactly-once")
PIPELINE = "eos-join"
ROW = int32(*range(1, 17), shape=(1, 16))
# tfsimples-join with a window long enough to hold a request across a worker's restart.
SPEC = f"""
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: {PIPELINE}
spec:
  steps:
  - name: tfsimple1
  - name: tfsimple2
  - name: tfsimple3
    inputs: [tfsimple1.outputs.OUTPUT0, tfsimple2.outputs.OUTPUT1]
    tensorMap:
      tfsimple1.outputs.OUTPUT0: INPUT0
      tfsimple2.outputs.OUTPUT1: INPUT1
    joinWindowMs: 300000
  output:
    steps: [tfsimple3]
"""

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def specs(tmp_path: Path) -> list[Path]:
    pipeline = tmp_path / "eos-join.yaml"
    pipeline.write_text(SPEC)
    return [*(MODELS / f"tfsimple{i}.yaml" for i in (1, 2, 3)), pipeline]


@pytest.fixture
def kafka(kafka_settings: KafkaSettings):
    client = Kafka(kafka_settings)
    yield client
    client.close()


def _half(kafka: Kafka, step: str, ids: list[str]) -> None:
    """One side of the join for `ids`, as the step would have answered."""
    topic = kafka.topics.step_outputs(PIPELINE, step)
    for rid in ids:
        message = InferenceMessage(rid, tensors(OUTPUT0=ROW, OUTPUT1=ROW), "response")
        kafka.send(topic, rid, message)


class _Outputs:
    """Every committed record on the pipeline's outputs, counted per request id (error
    records count as answers too: a half-answered request shows as one)."""

    def __init__(self, settings: KafkaSettings) -> None:
        self._consumer = Consumer(settings.consumer_config(f"count-{uuid.uuid4().hex[:8]}"))
        topic = settings.topics().pipeline_outputs(PIPELINE)
        self._consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        self.counts: Counter[str] = Counter()
        self.errors: list[str] = []

    def read(self, timeout_s: float = 0.2) -> set[str]:
        for message in self._consumer.consume(500, timeout=timeout_s):
            if message.error() is None:
                rid = (message.key() or b"").decode()
                self.counts[rid] += 1
                if h.is_error(message.headers() or []):
                    self.errors.append(rid)
        return set(self.counts)

    def settled(self, quiet_s: float = 3.0) -> Counter[str]:
        """All of them: read until nothing more comes for `quiet_s`."""
        quiet_until = time.monotonic() + quiet_s
        while time.monotonic() < quiet_until:
            before = sum(self.counts.values())
            self.read()
            if sum(self.counts.values()) != before:
                quiet_until = time.monotonic() + quiet_s
        self._consumer.close()
        assert not self.errors, f"error records for {self.errors[:5]}"
        return self.counts


def test_a_worker_resuming_a_join_replays_only_what_was_held(kafka_settings, kafka, specs):
    held, answered = [new_id("held") for _ in range(5)], [new_id("done") for _ in range(20)]
    first = RunningWorker(kafka_settings, compile_specs(kafka_settings, specs), EXACTLY_ONCE)
    try:
        first.wait_ready("pipeline", PIPELINE)
        _half(kafka, "tfsimple1", held)  # before the answered ones: the committed offset
        for rid in answered:
            kafka.infer(PIPELINE, rid, INPUT0=ROW, INPUT1=ROW)
        kafka.outputs(PIPELINE, answered)
    finally:
        first.stop()  # commits: the held requests stay wanted in the offsets' metadata
    second = RunningWorker(kafka_settings, compile_specs(kafka_settings, specs), EXACTLY_ONCE)
    try:
        second.wait_ready("pipeline", PIPELINE)
        _half(kafka, "tfsimple2", held)
        kafka.outputs(PIPELINE, held)
        counts = _Outputs(kafka_settings).settled()
        # Replaying the answered ones' first halves would hold them again, waiting for
        # second halves that were consumed already (a timeout error, later).
        assert second.worker.tracker.held_count() == 0
    finally:
        second.stop()
    assert {rid: counts[rid] for rid in held + answered} == dict.fromkeys(held + answered, 1)


def _drive(worker: Worker, until, deadline_s: float = 60.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not until():
        assert time.monotonic() < deadline, "the worker never got there"
        worker.step()


def test_an_aborted_chunk_is_redone_and_never_seen(kafka_settings, kafka, specs):
    worker = Worker(kafka_settings, worker_settings=EXACTLY_ONCE)
    try:
        worker.apply(compile_specs(kafka_settings, specs))
        _drive(worker, lambda: worker.ready() and worker._assigned)
        held, answered = [new_id("held") for _ in range(3)], [new_id("done") for _ in range(10)]
        _half(kafka, "tfsimple1", held)
        for rid in answered:
            kafka.infer(PIPELINE, rid, INPUT0=ROW, INPUT1=ROW)
        outputs, seen = kafka.topics.pipeline_outputs(PIPELINE), _Outputs(kafka_settings)
        _drive(worker, lambda: seen.read(0.05) >= set(answered))
        # A chunk whose transaction fails: its record must never be read, the held
        # requests are dropped and consumed again from the committed offsets.
        worker.delivery.produce([Outgoing(outputs, "ghost", b"never committed", [])])
        worker.delivery._abort(KafkaError(KafkaError._FAIL, "test abort"))
        assert worker.delivery.must_rewind
        worker._rewind()
        _half(kafka, "tfsimple2", held)
        _drive(worker, lambda: seen.read(0.05) >= set(held))
        assert worker.tracker.held_count() == 0
    finally:
        worker.close()
    counts = seen.settled()
    assert "ghost" not in counts
    assert {rid: counts[rid] for rid in held + answered} == dict.fromkeys(held + answered, 1)


def test_a_worker_whose_id_is_taken_over_is_fenced(kafka_settings, kafka):
    topic = kafka.topics.pipeline_outputs("fenced")
    worker = Worker(kafka_settings, worker_settings=EXACTLY_ONCE, worker_id="same")
    worker.admin.ensure([topic])
    successor = Worker(kafka_settings, worker_settings=EXACTLY_ONCE, worker_id="same")
    try:
        worker.delivery.produce([Outgoing(topic, "zombie", b"from the fenced worker", [])])
        with pytest.raises(Fenced, match="another worker"):
            worker.commit()
    finally:
        worker.close()  # stops cleanly: no commit, no error
        successor.close()
