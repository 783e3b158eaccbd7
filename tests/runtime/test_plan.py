"""The planner: a pure function from topology, models and the previous plan to the agents that run.

No Kafka here: the worker and the test driver both run what it returns.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.runtime.models import ModelPool
from engine.runtime.offsets import OffsetTracker
from engine.runtime.plan import Status, plan
from engine.topology import TopicNames, Topology, compile_topology, load_files, load_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
TOPICS = TopicNames("tf", "plan")


@pytest.fixture(scope="module")
def topology() -> Topology:
    return compile_topology(load_files([EXAMPLES]), TOPICS)


@pytest.fixture(scope="module")
def pool(topology: Topology) -> Iterator[ModelPool]:
    models = ModelPool()
    models.sync(topology.models)
    yield models
    models.close()


def only(topology: Topology, *pipelines: str) -> Topology:
    return Topology(topology.models, {name: topology.pipelines[name] for name in pipelines}, {})


def test_every_resource_is_loading_until_consumption_starts(topology, pool):
    planned = plan(topology, pool.sync(topology.models), TOPICS, OffsetTracker())
    assert {s.state for s in planned.statuses} == {"Loading"}
    assert {s.name for s in planned.statuses if s.kind == "pipeline"} == set(topology.pipelines)
    assert {s.state for s in planned.ready()} == {"Ready"}
    # Every topic an agent reads is routed; the errors topic exists with the rest.
    assert set(planned.subscription()) <= planned.topics and TOPICS.errors() in planned.topics
    assert TOPICS.model_inputs("mul10") in planned.routes  # direct inference over Kafka


def test_a_fused_output_has_no_agent_of_its_own(topology, pool):
    planned = plan(only(topology, "tfsimples"), pool.sync(topology.models), TOPICS, OffsetTracker())
    graph = topology.pipelines["tfsimples"]
    pipeline_agents = [a for a in planned.agents if a.node.pipeline == "tfsimples"]
    assert [a.node.kind for a in pipeline_agents] == ["step", "step"]
    last = pipeline_agents[-1]
    assert last.fused_output is not None and last.fused_output[0] == graph.output_topic
    assert last.lane is not None  # one whole source, a batchable ONNX model
    assert TOPICS.step_outputs("tfsimples", "tfsimple2") not in planned.routes


def test_unchanged_agents_carry_over_and_the_others_retire(topology, pool):
    models = pool.sync(topology.models)
    first = plan(only(topology, "tfsimples", "tfsimples-join"), models, TOPICS, OffsetTracker())
    again = plan(
        only(topology, "tfsimples", "tfsimples-join"), models, TOPICS, OffsetTracker(), first
    )
    assert again.agents == first.agents and again.retired == ()
    fewer = plan(only(topology, "tfsimples"), models, TOPICS, OffsetTracker(), again)
    assert {a.node.pipeline for a in fewer.retired} == {"tfsimples-join"}
    assert set(fewer.agents) == {a for a in again.agents if a.node.pipeline != "tfsimples-join"}


def test_a_model_that_failed_fails_its_pipelines_alone(topology, pool):
    models = {**pool.sync(topology.models), "tfsimple2": RuntimeError("no weights")}
    missing = {name: m for name, m in models.items() if name != "mul10"}
    specs = {name: spec for name, spec in topology.models.items() if name != "mul10"}
    planned = plan(Topology(specs, topology.pipelines, {}), missing, TOPICS, OffsetTracker())
    statuses = {(s.kind, s.name): s for s in planned.statuses}
    assert statuses[("model", "tfsimple2")] == Status("model", "tfsimple2", "Failed", "no weights")
    assert statuses[("pipeline", "tfsimples")].reason == (
        "model 'tfsimple2' failed to load: no weights"
    )
    assert statuses[("pipeline", "conditional-routing")].reason == "model 'mul10' is not loaded"
    assert statuses[("pipeline", "chain-base")].state == "Loading"
    assert not any(a.node.pipeline == "tfsimples" for a in planned.agents)


def test_the_pool_reuses_an_unchanged_spec_and_reloads_a_changed_one(tmp_path):
    calls = []

    class Fake:
        def __init__(self, spec):
            self.spec, self.closed = spec, False

        def close(self):
            self.closed = True

    def load(spec):
        calls.append(spec.name)
        if spec.name == "bad":
            raise RuntimeError("cannot load bad")
        return Fake(spec)

    def specs(uri: str):
        text = "".join(
            "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\n"
            f"metadata:\n  name: {name}\nspec:\n  storageUri: {uri}\n---\n"
            for name in ("good", "bad")
        )
        return load_text(text).models

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    pool = ModelPool(load)
    first = pool.sync(specs(str(tmp_path / "a")))
    assert isinstance(first["bad"], RuntimeError) and "cannot load bad" in str(first["bad"])
    assert pool.sync(specs(str(tmp_path / "a")))["good"] is first["good"]
    changed = pool.sync(specs(str(tmp_path / "b")))
    assert changed["good"] is not first["good"] and first["good"].closed
    assert pool.sync({}) == {} and changed["good"].closed
    assert calls == ["good", "bad", "good", "bad"]


def test_the_planner_and_the_test_driver_need_no_kafka_client():
    code = (
        "import sys, engine.runtime.plan, engine.testing; print('confluent_kafka' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.stdout.strip() == "False", result.stderr
