"""Slow and stuck models are contained (issue 18, "Overload"): a blocked model holds at most its
cap while its partitions are paused, another pipeline of the same worker answers meanwhile,
a model past its `parameters: timeout` turns its requests into timeout error records, and
nothing is lost once the blocked model returns. The same on each lane: the slow and stuck
steps (unbatchable models) and a joining step take the join lane, whose calls go through the
worker's call pool as the fast lane's do (issue 17)."""

from __future__ import annotations

import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.config import KafkaSettings
from engine.runtime.model_threads import MAX_STUCK
from engine.runtime.settings import WorkerSettings

from .helpers import DEADLINE_S, Kafka, RunningWorker, compile_specs, fp32, new_id

CHUNK, CAP = 5, 4
TIMEOUT_S = 0.3

BLOCKING = textwrap.dedent(
    """
    import time
    from pathlib import Path

    RELEASE = Path(__file__).parent / "release"

    class Model:
        def predict(self, inputs):
            while not RELEASE.exists():  # blocked until the test creates the file
                time.sleep(0.005)
            return {"OUTPUT": inputs["INPUT"] * 2}
    """
)
BLOCKING_BATCHED = BLOCKING.replace("class Model:", "class Model:\n    batchable = True\n")
"""The same, batchable: its step takes the fast lane."""
FAST = textwrap.dedent(
    """
    class Model:
        batchable = True

        def predict(self, inputs):
            return {"OUTPUT": inputs["INPUT"] + 1}
    """
)


JOINED_PIPELINE = textwrap.dedent(
    """
    apiVersion: mlops.seldon.io/v1alpha1
    kind: Pipeline
    metadata:
      name: joined-p
    spec:
      steps:
      - name: fast
      - name: joined
        inputs: [joined-p.inputs.INPUT, fast.outputs.OUTPUT]
        tensorMap: {joined-p.inputs.INPUT: INPUT, fast.outputs.OUTPUT: PLUS1}
      output:
        steps: [joined]
    """
)
"""A step joining the pipeline's inputs with another step's answers, calling a stuck model."""


def _model(name: str, parameters: str = "") -> str:
    return (
        f"apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: {name}\n"
        f"spec:\n  storageUri: ./{name}\n  requirements: [python]\n{parameters}---\n"
        f"apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: {name}-p\n"
        f"spec:\n  steps:\n  - name: {name}\n  output:\n    steps:\n    - {name}\n---\n"
    )


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("slow-models")
    sources = (
        ("slow", BLOCKING),
        ("stuck", BLOCKING),
        ("lane", BLOCKING_BATCHED),
        ("fast", FAST),
        ("joined", BLOCKING),
    )
    for name, source in sources:
        (root / name).mkdir()
        (root / name / "model.py").write_text(source)
    timeout = f"  parameters:\n  - name: timeout\n    value: '{TIMEOUT_S}'\n"
    specs = _model("slow") + _model("stuck", timeout) + _model("lane", timeout) + _model("fast")
    specs += _model("joined", timeout).split("---\n")[0] + "---\n" + JOINED_PIPELINE
    (root / "specs.yaml").write_text(specs)
    return root


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap=kafka_bootstrap, namespace=f"t{uuid.uuid4().hex[:12]}", partitions=1
    )


@pytest.fixture(scope="module")
def worker(settings: KafkaSettings, models: Path) -> Iterator[RunningWorker]:
    options = WorkerSettings(chunk=CHUNK, model_max_in_flight=CAP)
    running = RunningWorker(settings, compile_specs(settings, [models / "specs.yaml"]), options)
    for name in ("slow-p", "stuck-p", "lane-p", "fast-p", "joined-p"):
        running.wait_ready("pipeline", name)
    yield running
    for name in ("slow", "stuck", "lane", "joined"):  # blocked threads return: none outlives it
        (models / name / "release").touch()
    running.stop()


def _join_lane_takes(worker: RunningWorker, pipeline: str, step: str) -> bool:
    [agent] = [
        a for a in worker.worker._plan.agents if a.node.pipeline == pipeline and a.node.name == step
    ]
    return agent.join_lane is not None


def _wait_for(condition, what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def test_a_blocked_model_holds_its_cap_while_another_pipeline_answers(
    worker: RunningWorker, settings: KafkaSettings, models: Path
):
    assert _join_lane_takes(worker, "slow-p", "slow")  # an unbatchable model: one call a request
    kafka = Kafka(settings)
    calls, pauses = worker.worker.calls, worker.worker.pauses
    slow_ids = [new_id("slow") for _ in range(40)]
    for index, rid in enumerate(slow_ids):
        kafka.infer("slow-p", rid, INPUT=fp32(float(index)))
    _wait_for(lambda: calls.stats("slow").held >= CAP, "the slow model never filled up")
    _wait_for(lambda: pauses.paused, "the slow pipeline's partitions were never paused")
    assert {topic for topic, _ in pauses.paused} == {kafka.topics.pipeline_inputs("slow-p")}

    # The slow model is blocked (its release file does not exist): the other pipeline answers.
    fast_ids = [new_id("fast") for _ in range(20)]
    for index, rid in enumerate(fast_ids):
        kafka.infer("fast-p", rid, INPUT=fp32(float(index)))
    answers = kafka.outputs("fast-p", fast_ids)
    assert [answers[rid].arrays() for rid in fast_ids] == [
        {"OUTPUT": [index + 1.0]} for index in range(20)
    ]
    assert not (models / "slow" / "release").exists()
    blocked = calls.stats("slow")
    assert blocked.held < len(slow_ids)  # the rest waits in Kafka, not in the worker

    (models / "slow" / "release").touch()
    answers = kafka.outputs("slow-p", slow_ids)
    assert [answers[rid].arrays() for rid in slow_ids] == [
        {"OUTPUT": [index * 2.0]} for index in range(40)
    ]
    stats = calls.stats("slow")
    assert stats.peak_in_flight <= CAP
    assert stats.peak_held <= CAP + CHUNK - 1
    _wait_for(lambda: not pauses.paused, "the slow pipeline's partitions were never resumed")
    kafka.close()


def test_a_stuck_model_times_out_then_refuses_and_the_worker_goes_on(
    worker: RunningWorker, settings: KafkaSettings, models: Path
):
    kafka = Kafka(settings)
    stuck_ids = [new_id("stuck") for _ in range(MAX_STUCK + 2)]
    for index, rid in enumerate(stuck_ids):
        kafka.infer("stuck-p", rid, INPUT=fp32(float(index)))
    answers = kafka.outputs("stuck-p", stuck_ids)
    errors = [answers[rid].error() for rid in stuck_ids]
    assert [(e.pipeline, e.step, e.request_id, e.kind) for e in errors] == [
        ("stuck-p", "stuck", rid, "timeout") for rid in stuck_ids
    ]
    timed_out = [e for e in errors if f"timed out after {TIMEOUT_S:g}s" in e.reason]
    refused = [e for e in errors if "refused" in e.reason]
    # Each timeout abandons a thread and starts a fresh one, MAX_STUCK times; then the
    # model refuses calls, saying why, until a stuck call returns.
    assert len(timed_out) == MAX_STUCK + 1, [e.reason for e in errors]
    assert len(refused) == 1 and f"past its timeout of {TIMEOUT_S:g}s" in refused[0].reason
    assert worker.worker.calls.stats("stuck").timed_out == MAX_STUCK + 1

    fast = new_id("fast")
    kafka.infer("fast-p", fast, INPUT=fp32(1.0))
    assert kafka.outputs("fast-p", [fast])[fast].arrays() == {"OUTPUT": [2.0]}

    (models / "stuck" / "release").touch()  # the stuck calls return: their threads serve again
    _wait_for(
        lambda: worker.worker.calls.stats("stuck").held == 0, "stuck calls were never collected"
    )
    again = new_id("stuck")
    _wait_for(
        lambda: worker.worker.calls.stats("stuck").serving > 0,
        "no thread of the stuck model came back",
    )
    kafka.infer("stuck-p", again, INPUT=fp32(4.0))
    assert kafka.outputs("stuck-p", [again])[again].arrays() == {"OUTPUT": [8.0]}
    kafka.close()


def test_a_stuck_model_on_the_fast_lane_times_out_every_request_of_its_call(
    worker: RunningWorker, settings: KafkaSettings
):
    kafka = Kafka(settings)
    ids = [new_id("lane") for _ in range(3)]
    for index, rid in enumerate(ids):
        kafka.infer("lane-p", rid, INPUT=fp32(float(index)))
    answers = kafka.outputs("lane-p", ids)
    errors = [answers[rid].error() for rid in ids]
    assert [(e.pipeline, e.step, e.request_id, e.kind) for e in errors] == [
        ("lane-p", "lane", rid, "timeout") for rid in ids
    ]
    assert all(f"timed out after {TIMEOUT_S:g}s" in e.reason for e in errors)
    # The step wrote each request to its inputs topic before failing it, as on the general path.
    kafka.collect(kafka.topics.step_inputs("lane-p", "lane"), ids)
    kafka.close()


def test_a_stuck_model_of_a_joining_step_times_out_and_other_pipelines_answer(
    worker: RunningWorker, settings: KafkaSettings
):
    assert _join_lane_takes(worker, "joined-p", "joined")
    kafka = Kafka(settings)
    ids = [new_id("joined") for _ in range(2)]
    for index, rid in enumerate(ids):
        kafka.infer("joined-p", rid, INPUT=fp32(float(index)))
    answers = kafka.outputs("joined-p", ids)
    errors = [answers[rid].error() for rid in ids]
    assert [(e.pipeline, e.step, e.request_id, e.kind) for e in errors] == [
        ("joined-p", "joined", rid, "timeout") for rid in ids
    ]
    assert all(f"timed out after {TIMEOUT_S:g}s" in e.reason for e in errors)
    # The joined request went to the step's inputs topic before the call failed.
    requests = kafka.collect(kafka.topics.step_inputs("joined-p", "joined"), ids)
    assert sorted(t.name for t in requests[ids[0]].request().tensors) == ["INPUT", "PLUS1"]

    # Its model's threads are stuck in the calls: the worker's other pipelines answer.
    fast = new_id("fast")
    kafka.infer("fast-p", fast, INPUT=fp32(1.0))
    assert kafka.outputs("fast-p", [fast])[fast].arrays() == {"OUTPUT": [2.0]}
    assert worker.worker.calls.stats("joined").timed_out == len(ids)
    kafka.close()
