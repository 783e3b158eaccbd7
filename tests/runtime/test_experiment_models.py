"""Experiments over models in the worker, on the test driver: a step naming an experiment,
and a model that is an experiment's default splitting what reaches its Kafka inputs."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from engine import headers as h
from engine.testing import TopologyTestDriver
from engine.topology import TopicNames, compile_topology, load_files, load_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOPICS = TopicNames("tf", "exp")
INPUT = {"INPUT": np.array([1, 2, 3, 4], dtype=np.float32)}
ADDED, MULTIPLIED = [11.0, 12.0, 13.0, 14.0], [10.0, 20.0, 30.0, 40.0]

SPECS = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata: {name: add-or-mul-step}
spec:
  candidates: [{name: add10, weight: 1}, {name: mul10, weight: 1}]
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata: {name: split-add10}
spec:
  default: add10
  candidates: [{name: add10, weight: 1}, {name: mul10, weight: 3}]
  mirror: {name: tfsimple1, percent: 100}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: calls-an-experiment}
spec:
  steps: [{name: add-or-mul-step}]
  output: {steps: [add-or-mul-step]}
"""


def expected(request_id: str, weights: tuple[int, int]) -> str:
    """The candidate a request id falls on: crc32 of the id over the summed weights."""
    return "add10" if zlib.crc32(request_id.encode()) % sum(weights) < weights[0] else "mul10"


@pytest.fixture(scope="module")
def driver() -> TopologyTestDriver:
    models = [EXAMPLES / "models" / f"{n}.yaml" for n in ("add10", "mul10", "tfsimple1")]
    specs = load_files(models)
    extra = load_text(SPECS)
    specs.pipelines.update(extra.pipelines)
    specs.experiments.update(extra.experiments)
    return TopologyTestDriver(compile_topology(specs, TOPICS), topics=TOPICS)


def test_a_step_naming_an_experiment_calls_a_candidate_by_weight(driver) -> None:
    ids = [f"step-{n}" for n in range(12)]
    for rid in ids:
        driver.infer("calls-an-experiment", INPUT, request_id=rid)
    answers = driver.outputs("calls-an-experiment")
    routes = {rid: expected(rid, (1, 1)) for rid in ids}
    assert set(routes.values()) == {"add10", "mul10"}  # the ids fall on both
    for rid in ids:
        data = answers[rid].message().tensors[0].data.tolist()
        assert data == (ADDED if routes[rid] == "add10" else MULTIPLIED), rid
    # The step's answer says the route it took.
    step = TOPICS.step_outputs("calls-an-experiment", "add-or-mul-step")
    said = {r.key: h.header_value(r.headers, h.SELDON_ROUTE) for r in driver.records(step)}
    assert said == routes
    # The same id again goes the same way (a redelivered or replayed record does too).
    driver.infer("calls-an-experiment", INPUT, request_id=ids[0])
    again = driver.records(step)[-1]
    assert h.header_value(again.headers, h.SELDON_ROUTE) == routes[ids[0]]


def test_the_default_model_splits_its_kafka_inputs_and_answers_on_its_outputs(driver) -> None:
    ids = [f"direct-{n}" for n in range(12)]
    for rid in ids:
        driver.send(TOPICS.model_inputs("add10"), rid, _request(rid))
    answers = {r.key: r for r in driver.records(TOPICS.model_outputs("add10"))}
    routes = {rid: expected(rid, (1, 3)) for rid in ids}
    assert set(routes.values()) == {"add10", "mul10"}
    for rid in ids:
        record = answers[rid]
        assert h.header_value(record.headers, h.SELDON_ROUTE) == routes[rid]
        data = record.message().tensors[0].data.tolist()
        assert data == (ADDED if routes[rid] == "add10" else MULTIPLIED), rid
    # A candidate named in x-seldon-route is kept (the gateway writes the one it chose).
    driver.send(
        TOPICS.model_inputs("add10"), "pinned", _request("pinned"), [(h.SELDON_ROUTE, b"add10")]
    )
    pinned = driver.records(TOPICS.model_outputs("add10"))[-1]
    assert pinned.key == "pinned" and pinned.message().tensors[0].data.tolist() == ADDED
    # So is one in Seldon Core 2's spelling, as a Seldon client sends back what it got.
    seldon = [rid for rid in ids if routes[rid] == "add10"][:2]
    for rid in seldon:
        route = b":mul10_1:" if rid == seldon[0] else b":tfsimple1_1::mul10_3:"
        driver.send(TOPICS.model_inputs("add10"), rid, _request(rid), [(h.SELDON_ROUTE, route)])
    again = {r.key: r for r in driver.records(TOPICS.model_outputs("add10"))[-2:]}
    for rid in seldon:
        assert h.header_value(again[rid].headers, h.SELDON_ROUTE) == "mul10"
        assert again[rid].message().tensors[0].data.tolist() == MULTIPLIED, rid
    # The mirror got a copy of each on its own inputs topic (percent 100).
    mirrored = {r.key for r in driver.records(TOPICS.model_inputs("tfsimple1"))}
    assert set(ids) | {"pinned"} <= mirrored
    # mul10 itself is no experiment's default: its own traffic is its own.
    driver.send(TOPICS.model_inputs("mul10"), ids[0], _request(ids[0]))
    own = driver.records(TOPICS.model_outputs("mul10"))[-1]
    assert own.message().tensors[0].data.tolist() == MULTIPLIED


def _request(request_id: str) -> dict:
    return {
        "id": request_id,
        "inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}],
    }


def test_a_step_naming_an_experiment_is_ready_only_when_its_candidates_are(driver) -> None:
    from engine.runtime.models import ModelPool
    from engine.runtime.offsets import OffsetTracker
    from engine.runtime.plan import plan

    topology = driver.topology
    pool = ModelPool()
    loaded = pool.sync(topology.models)
    statuses = {s.name: s for s in plan(topology, loaded, TOPICS, OffsetTracker()).ready()}
    assert statuses["calls-an-experiment"].state == "Ready"
    broken = {**loaded, "mul10": RuntimeError("no such file")}
    statuses = {s.name: s for s in plan(topology, broken, TOPICS, OffsetTracker()).ready()}
    failed = statuses["calls-an-experiment"]
    assert failed.state == "Failed"
    assert (
        failed.reason == "experiment 'add-or-mul-step': model 'mul10' failed to load: no such file"
    )
    # The default answers alone while its experiment cannot run (as the gateway does).
    assert statuses["add10"].state == "Ready"
    pool.close()


PIPELINE_SPECS = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: adds}
spec:
  steps: [{name: add10}]
  output: {steps: [add10]}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata: {name: muls}
spec:
  steps: [{name: mul10}]
  output: {steps: [mul10]}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata: {name: adds-or-muls}
spec:
  resourceType: pipeline
  default: adds
  candidates: [{name: adds, weight: 1}, {name: muls, weight: 1}]
"""


def test_a_default_pipelines_kafka_inputs_are_split_and_answered_on_its_outputs() -> None:
    models = [EXAMPLES / "models" / f"{n}.yaml" for n in ("add10", "mul10")]
    specs = load_files(models)
    extra = load_text(PIPELINE_SPECS)
    specs.pipelines.update(extra.pipelines)
    specs.experiments.update(extra.experiments)
    driver = TopologyTestDriver(compile_topology(specs, TOPICS), topics=TOPICS)
    ids = [f"pipe-{n}" for n in range(12)]
    for rid in ids:
        driver.infer("adds", INPUT, request_id=rid)
    routes = {rid: "adds" if expected(rid, (1, 1)) == "add10" else "muls" for rid in ids}
    assert set(routes.values()) == {"adds", "muls"}
    answers = driver.outputs("adds")  # where a Kafka caller of adds waits
    for rid in ids:
        data = answers[rid].message().tensors[0].data.tolist()
        assert data == (ADDED if routes[rid] == "adds" else MULTIPLIED), rid
        said = h.header_value(answers[rid].headers, h.SELDON_ROUTE)
        assert said == (None if routes[rid] == "adds" else "muls")  # relayed answers say so
    # Each request ran once, in the candidate chosen: adds' step never saw muls' share.
    ran_adds = {r.key for r in driver.records(TOPICS.step_inputs("adds", "add10"))}
    ran_muls = {r.key for r in driver.records(TOPICS.step_inputs("muls", "mul10"))}
    assert ran_adds == {rid for rid in ids if routes[rid] == "adds"}
    assert ran_muls == {rid for rid in ids if routes[rid] == "muls"}
    # Traffic of muls' own callers stays on muls' outputs.
    driver.infer("muls", INPUT, request_id="own")
    assert "own" in driver.outputs("muls") and "own" not in driver.outputs("adds")
