"""An idle worker stops fetching, and still answers the next request (issue 17).

A worker with short idle settings pauses its partitions once nothing comes;
a request sent then is found by the probe and answered, and so is one sent
after a hot load changed the subscription while the partitions were paused
(librdkafka keeps a partition paused across a rebalance, so that resume is ours).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from engine.config import KafkaSettings, broker_kind
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
