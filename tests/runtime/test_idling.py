"""An idle worker stops fetching, and still answers the next request (issue 17).

A worker with short idle settings pauses its partitions once nothing comes;
a request sent then is found by the probe and answered, and so is one sent
after a hot load changed the subscription while the partitions were paused
(librdkafka keeps a partition paused across a rebalance, so that resume is ours).
A record on a step topic (which only probes every second ask about: another worker
of the group may write it while this one idles) is found and answered too. While one
pipeline is busy, another's quiet partitions stop being fetched, and its next request
is still found and answered (issue 14).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from types import SimpleNamespace

import pytest
from confluent_kafka import TopicPartition

from engine.config import KafkaSettings, broker_kind
from engine.messages import InferenceMessage
from engine.runtime.idling import IdlePause, entry_topics
from engine.runtime.settings import WorkerSettings

from .helpers import (
    DEADLINE_S,
    MODELS,
    PIPELINES,
    Kafka,
    RunningWorker,
    compile_specs,
    int32,
    new_id,
    tensors,
)

IDLE = WorkerSettings(idle_after_ms=200, idle_probe_ms=50)
ONE_TO_16 = list(range(1, 17))
BASE = [MODELS / "tfsimple1.yaml", PIPELINES / "chain-base.yaml"]
MORE = [MODELS / "tfsimple2.yaml", PIPELINES / "tfsimples.yaml"]


def _wait_until(condition: Callable[[], bool], what: str, worker: RunningWorker) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        worker.check_alive()
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.05)


def _ask_tfsimple(kafka: Kafka, pipeline: str) -> None:
    rid = new_id()
    row = int32(*ONE_TO_16, shape=(1, 16))
    kafka.infer(pipeline, rid, INPUT0=row, INPUT1=row)
    answer = kafka.outputs(pipeline, [rid])[rid]
    assert answer.arrays()["OUTPUT0"] == [[2 * v for v in ONE_TO_16]]


def test_a_paused_worker_answers_what_comes_and_pauses_again(running_worker, kafka, kafka_settings):
    worker = running_worker(BASE, worker_settings=IDLE)
    worker.wait_ready("pipeline", "chain-base")
    if worker.worker.broker != "tansu":  # Apache Kafka: idle fetches cost it nothing
        pytest.skip("the worker pauses idle partitions on the embedded broker only")
    idle = worker.worker.idle
    _ask_tfsimple(kafka, "chain-base")
    _wait_until(lambda: idle.paused, "paused", worker)
    spells = idle.pauses
    _ask_tfsimple(kafka, "chain-base")  # found by a probe: nothing else resumes it
    _wait_until(lambda: idle.paused and idle.pauses > spells, "paused again", worker)

    # A hot load while paused: a new subscription, a rebalance, partitions given back
    # paused. Both the old and the new pipeline answer.
    worker.apply(compile_specs(kafka_settings, BASE + MORE))
    worker.wait_ready("pipeline", "tfsimples")
    _wait_until(lambda: idle.paused, "paused after the hot load", worker)
    _ask_tfsimple(kafka, "chain-base")
    _ask_tfsimple(kafka, "tfsimples")


def test_a_record_on_a_step_topic_wakes_a_paused_worker(running_worker, kafka):
    # As another worker of the group would: tfsimple1's answer, written to the step
    # topic that tfsimple2 reads. No caller-facing topic moves.
    worker = running_worker(MORE + [MODELS / "tfsimple1.yaml"], worker_settings=IDLE)
    worker.wait_ready("pipeline", "tfsimples")
    if worker.worker.broker != "tansu":
        pytest.skip("the worker pauses idle partitions on the embedded broker only")
    step_topic = kafka.topics.step_outputs("tfsimples", "tfsimple1")
    entry = entry_topics(worker.worker._plan.routes, kafka.topics)
    assert step_topic in worker.worker._plan.routes and step_topic not in entry
    assert kafka.topics.pipeline_inputs("tfsimples") in entry
    idle = worker.worker.idle
    _wait_until(lambda: idle.paused, "paused", worker)
    spells = idle.pauses
    rid = new_id()
    doubled = int32(*(2 * v for v in ONE_TO_16), shape=(1, 16))
    zeros = int32(*([0] * 16), shape=(1, 16))
    answer = InferenceMessage(rid, tensors(OUTPUT0=doubled, OUTPUT1=zeros), "response")
    kafka.send(step_topic, rid, answer)
    got = kafka.outputs("tfsimples", [rid])[rid]
    assert got.arrays() == {"OUTPUT0": doubled.tolist(), "OUTPUT1": doubled.tolist()}
    _wait_until(lambda: idle.paused and idle.pauses > spells, "paused again", worker)


def test_a_busy_worker_stops_fetching_a_quiet_pipeline_and_still_answers_it(running_worker, kafka):
    # Never idle as a whole: only the quiet partitions' probe can find the next request.
    quick = WorkerSettings(cold_after_ms=300, idle_probe_ms=50, idle_after_ms=600_000)
    worker = running_worker(BASE + MORE, worker_settings=quick)
    worker.wait_ready("pipeline", "tfsimples")
    if worker.worker.broker != "tansu":
        pytest.skip("the worker pauses quiet partitions on the embedded broker only")
    cold = worker.worker.idle.cold
    busy_inputs = kafka.topics.pipeline_inputs("chain-base")
    quiet_inputs = kafka.topics.pipeline_inputs("tfsimples")
    row = int32(*ONE_TO_16, shape=(1, 16))

    def quiet_one_is_cold() -> bool:
        kafka.infer("chain-base", new_id(), INPUT0=row, INPUT1=row)  # keeps it busy
        now = cold.cold
        return any(t == quiet_inputs for t, _ in now) and all(t != busy_inputs for t, _ in now)

    _wait_until(quiet_one_is_cold, "paused the quiet pipeline's partitions", worker)
    spells = cold.spells
    _ask_tfsimple(kafka, "tfsimples")  # found by a probe: its partitions fetched again
    again = lambda: quiet_one_is_cold() and cold.spells > spells  # noqa: E731
    _wait_until(again, "paused the quiet partitions again", worker)


def test_on_tansu_the_worker_pauses_when_idle_and_on_kafka_it_waits_longer():
    settings = WorkerSettings()
    assert settings.idle_after_s("tansu") == 1.0
    assert settings.idle_after_s("kafka") == 0.0
    assert broker_kind("tansu-cluster") == broker_kind(None) == "tansu"
    assert broker_kind("MkU3OEVBNTcwNTJENDM2Qk") == "kafka"
    tansu = settings.consumer_config(KafkaSettings(), "g", "tansu")
    kafka = settings.consumer_config(KafkaSettings(), "g", "kafka")
    assert (tansu["fetch.wait.max.ms"], kafka["fetch.wait.max.ms"]) == (10, 500)
    # The user's librdkafka setting wins on either broker.
    mine = KafkaSettings.load(environ={"TENSORFLUX_KAFKA_FETCH_WAIT_MAX_MS": "50"})
    assert settings.consumer_config(mine, "g", "kafka")["fetch.wait.max.ms"] == "50"
    loaded = WorkerSettings.load(
        environ={"TENSORFLUX_WORKER_IDLE_AFTER_MS": "0", "TENSORFLUX_WORKER_IDLE_PROBE_MS": "20"}
    )
    assert (loaded.idle_after_s("tansu"), loaded.idle_probe_ms) == (0.0, 20)
    assert settings.idle_timings("tansu")["cold_after_s"] == 5.0
    assert settings.idle_timings("kafka")["cold_after_s"] == 0.0
    never = WorkerSettings.load(environ={"TENSORFLUX_WORKER_COLD_AFTER_MS": "0"})
    assert never.idle_timings("tansu")["cold_after_s"] == 0.0


def test_entry_topics_are_where_callers_and_other_pipelines_write():
    names = KafkaSettings().topics()

    def read_by(pipeline: str) -> list[tuple[SimpleNamespace, int]]:
        return [(SimpleNamespace(node=SimpleNamespace(pipeline=pipeline)), 0)]

    routes = {
        names.pipeline_inputs("a"): read_by("a"),
        names.model_inputs("m"): read_by(""),
        names.step_outputs("a", "s1"): read_by("a"),  # a's own step: slow probe
        names.step_outputs("b", "s1"): read_by("a"),  # a chains on b's step
        names.pipeline_outputs("b"): read_by("a"),  # a chains on b
        names.model_outputs("m"): read_by("a"),
        "someone.elses.topic": read_by("a"),
    }
    assert entry_topics(routes, names) == {
        names.pipeline_inputs("a"),
        names.model_inputs("m"),
        names.step_outputs("b", "s1"),
        names.pipeline_outputs("b"),
        "someone.elses.topic",
    }


def test_a_partition_that_brings_records_between_checks_never_goes_cold(
    topic_factory, producer_factory, consumer_factory
):
    # One record a poll, several polls between two checks (one HTTP caller, a chain of
    # pipelines): a partition counts as busy when its position moved, whichever poll
    # brought its records (looking at one poll in 0.1 s took partition 1 for quiet).
    topic = topic_factory(partitions=3)
    producer = producer_factory()
    consumer = consumer_factory(**{"auto.offset.reset": "earliest"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(3)])
    clock = SimpleNamespace(now=0.0)
    idle = IdlePause(
        consumer,
        lambda: {topic},
        idle_after_s=0.0,
        probe_every_s=0.1,
        cold_after_s=5.0,
        clock=lambda: clock.now,
    )

    def poll_one(partition: int) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while True:
            assert time.monotonic() < deadline, f"no record came on partition {partition}"
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                assert message.partition() == partition
                idle.after_poll([message])
                return
            idle.after_poll([])

    for second in range(12):
        clock.now = float(second)
        for partition in (0, 1):
            producer.produce(topic, b"x", b"k", partition=partition)
            producer.flush(10)
            poll_one(partition)
    assert idle.cold.cold == {(topic, 2)}, "only the quiet partition is paused"
    producer.produce(topic, b"y", b"k", partition=2)
    producer.flush(10)
    clock.now += 0.2  # the probe is due: it finds the record, and the partition is fetched
    poll_one(2)
    assert not idle.cold.cold
