"""Two workers in one consumer group split 4 partitions and still complete every join;
with the default settings a second worker takes a share."""

from __future__ import annotations

import time
from collections.abc import Callable

from engine.config import DEFAULT_PARTITIONS, KafkaSettings

from .helpers import DEADLINE_S, MODELS, PIPELINES, Kafka, RunningWorker, int32, new_id

ROW = int32(*range(1, 17), shape=(1, 16))
DOUBLED = [[2 * v for v in range(1, 17)]]


def test_two_workers_complete_every_request_of_a_join_pipeline(
    kafka_settings: KafkaSettings, running_worker: Callable[..., RunningWorker]
) -> None:
    settings = kafka_settings.model_copy(update={"partitions": 4})
    kafka = Kafka(settings)
    specs = [MODELS, PIPELINES / "tfsimples-join.yaml"]
    first = running_worker(specs, settings=settings)
    before = [new_id("before") for _ in range(20)]
    for rid in before:
        kafka.infer("tfsimples-join", rid, INPUT0=ROW, INPUT1=ROW)
    # The second worker joins while the first has requests in flight: a rebalance
    # moves half the partitions, half-joined requests included.
    second = running_worker(specs, settings=settings)
    after = [new_id("after") for _ in range(20)]
    for rid in after:
        kafka.infer("tfsimples-join", rid, INPUT0=ROW, INPUT1=ROW)

    answers = kafka.outputs("tfsimples-join", before + after)
    for rid, answer in answers.items():
        assert answer.arrays() == {"OUTPUT0": DOUBLED, "OUTPUT1": DOUBLED}, rid

    # Both workers own partitions now (range assignor: 2 each of every topic).
    deadline = time.monotonic() + DEADLINE_S
    while not (first.worker._assigned and second.worker._assigned):
        assert time.monotonic() < deadline, "the second worker never got partitions"
        time.sleep(0.05)
    late = [new_id("late") for _ in range(20)]
    for rid in late:
        kafka.infer("tfsimples-join", rid, INPUT0=ROW, INPUT1=ROW)
    assert set(kafka.outputs("tfsimples-join", late)) == set(late)
    kafka.close()


def test_a_second_worker_takes_a_share_of_the_traffic_by_default(
    kafka_settings: KafkaSettings, running_worker: Callable[..., RunningWorker]
) -> None:
    # The settings a user gets: the suite's fixtures pin one partition, the default does not.
    settings = KafkaSettings(bootstrap=kafka_settings.bootstrap, namespace=kafka_settings.namespace)
    assert settings.partitions == DEFAULT_PARTITIONS > 1
    specs = [MODELS / "tfsimple1.yaml", MODELS / "tfsimple2.yaml", PIPELINES / "tfsimples.yaml"]
    workers = [running_worker(specs, settings=settings) for _ in range(2)]
    deadline = time.monotonic() + DEADLINE_S
    while not all(w.worker._assigned for w in workers):
        assert time.monotonic() < deadline, "a worker never got partitions"
        time.sleep(0.05)
    kafka = Kafka(settings)
    ids = [new_id("shared") for _ in range(20)]
    for rid in ids:
        kafka.infer("tfsimples", rid, INPUT0=ROW, INPUT1=ROW)
    answers = kafka.outputs("tfsimples", ids)
    assert all(answer.arrays()["OUTPUT0"] == DOUBLED for answer in answers.values())
    # Both answered some: each consumed requests from its own partitions of the inputs.
    inputs = settings.topics().pipeline_inputs("tfsimples")
    for number, running in enumerate(workers):
        read = {p for topic, p in running.worker.tracker.consumed_partitions() if topic == inputs}
        assert read, f"worker {number} answered nothing"
    kafka.close()
