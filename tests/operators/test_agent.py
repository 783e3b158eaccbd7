"""NodeAgent: the operators composed into one pipeline node, driven with in-memory records.

No Kafka: records go in, `Outgoing` records come out, and the offset tracker
says what could be committed. Whole pipelines run on `engine.testing.TopologyTestDriver`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine import headers as h
from engine.codec import decode_avro, decode_error, encode_avro
from engine.messages import InferenceMessage, MessageKind, Tensor
from engine.operators import revisits
from engine.runtime.agent import NodeAgent, Outgoing
from engine.runtime.offsets import OffsetTracker
from engine.runtime.records import Record
from engine.runtimes import ModelRuntime, load_model
from engine.testing import TopicRecord, TopologyTestDriver
from engine.topology import TopicNames, Topology, compile_topology, load_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOPICS = TopicNames("tf", "test")
ERRORS = TOPICS.errors()


@pytest.fixture(scope="module")
def topology() -> Topology:
    return compile_topology(load_files([EXAMPLES]), TOPICS)


@pytest.fixture(scope="module")
def models(topology: Topology) -> Iterator[dict[str, ModelRuntime]]:
    loaded = {name: load_model(spec) for name, spec in topology.models.items()}
    yield loaded
    for model in loaded.values():
        model.close()


def driver(topology: Topology, models: dict[str, ModelRuntime]) -> TopologyTestDriver:
    """The worker's own wiring (planner, fast lane, fused outputs), in memory."""
    return TopologyTestDriver(topology, topics=TOPICS, models=models)


def request(rid: str, **arrays: np.ndarray) -> bytes:
    return encode_avro(
        InferenceMessage(rid, tuple(Tensor.from_array(k, v) for k, v in arrays.items()), "request")
    )


def response(rid: str, **arrays: np.ndarray) -> bytes:
    return encode_avro(
        InferenceMessage(rid, tuple(Tensor.from_array(k, v) for k, v in arrays.items()), "response")
    )


def decoded(item: Outgoing | TopicRecord, kind: MessageKind = "response") -> dict[str, list]:
    return {t.name: t.data.tolist() for t in decode_avro(item.value, kind).tensors}


ROW = np.arange(1, 17, dtype=np.int32).reshape(1, 16)


def test_chain_writes_every_step_request_and_response(
    topology: Topology, models: dict[str, ModelRuntime]
) -> None:
    tfsimples = driver(topology, models)
    tfsimples.send(TOPICS.pipeline_inputs("tfsimples"), "r1", request("r1", INPUT0=ROW, INPUT1=ROW))
    [answer] = tfsimples.records(TOPICS.pipeline_outputs("tfsimples"))
    doubled = (2 * ROW).tolist()
    assert decoded(answer) == {"OUTPUT0": doubled, "OUTPUT1": doubled}
    assert h.header_value(answer.headers, h.REQUEST_ID) == "r1"
    # tfsimple2's request is tfsimple1's response renamed by the tensorMap.
    [sent] = tfsimples.records(TOPICS.step_inputs("tfsimples", "tfsimple2"))
    assert decoded(sent, "request") == {"INPUT0": doubled, "INPUT1": np.zeros_like(ROW).tolist()}
    assert tfsimples.tracker.held_count() == 0


def test_half_joined_request_holds_its_offset_until_the_join_completes(
    topology: Topology, models: dict[str, ModelRuntime]
) -> None:
    graph = topology.pipelines["tfsimples-join"]
    node = graph.step("tfsimple3")
    tracker = OffsetTracker()
    agent = NodeAgent(
        node,
        errors_topic=ERRORS,
        failure_topic=graph.output_topic,
        tracker=tracker,
        model=models["tfsimple3"],
    )
    first, second = node.inputs[0].topic, node.inputs[1].topic
    out: list[Outgoing] = []
    tracker.consumed(first, 0, 0)
    agent.process(0, Record(first, 0, 0, "r", response("r", OUTPUT0=ROW, OUTPUT1=ROW), []), 0, out)
    agent.tick(0, out, end_of_chunk=True)
    assert out == [] and tracker.committable() == {(first, 0): 0}
    tracker.consumed(second, 0, 0)
    agent.process(1, Record(second, 0, 0, "r", response("r", OUTPUT0=ROW, OUTPUT1=ROW), []), 5, out)
    agent.tick(5, out, end_of_chunk=True)
    assert [o.topic for o in out] == [node.request_topic, node.output_topic]
    # INPUT0 = tfsimple1.outputs.OUTPUT0, INPUT1 = tfsimple2.outputs.OUTPUT1 (tensorMap).
    assert decoded(out[0], "request") == {"INPUT0": ROW.tolist(), "INPUT1": ROW.tolist()}
    assert tracker.committable() == {(first, 0): 1, (second, 0): 1}


def test_an_inner_join_that_never_completes_is_released_at_its_window_end(
    topology: Topology, models: dict[str, ModelRuntime]
) -> None:
    graph = topology.pipelines["tfsimples-join"]
    node = graph.step("tfsimple3")
    tracker = OffsetTracker()
    agent = NodeAgent(
        node,
        errors_topic=ERRORS,
        failure_topic=graph.output_topic,
        tracker=tracker,
        model=models["tfsimple3"],
    )
    topic = node.inputs[0].topic
    out: list[Outgoing] = []
    tracker.consumed(topic, 0, 0)
    agent.process(0, Record(topic, 0, 0, "r", response("r", OUTPUT0=ROW), []), 1000, out)
    assert agent.next_deadline_ms() == 1000 + node.join_window_ms
    agent.tick(1000 + node.join_window_ms, out, end_of_chunk=True)
    assert out == [] and tracker.committable() == {(topic, 0): 1}


def test_conditional_routing_fires_only_the_branch_that_got_its_tensor(
    topology: Topology, models: dict[str, ModelRuntime]
) -> None:
    routing = driver(topology, models)
    inputs = TOPICS.pipeline_inputs("conditional-routing")
    routing.send(
        inputs,
        "c1",
        request("c1", INPUT=np.array([1, 2, 3, 4], np.float32), CHOICE=np.array([1], np.int32)),
    )
    assert routing.records(TOPICS.step_inputs("conditional-routing", "mul10")) == []
    [answer] = routing.records(TOPICS.pipeline_outputs("conditional-routing"))
    assert decoded(answer) == {"OUTPUT": [11, 12, 13, 14]}


def test_undecodable_record_becomes_an_error_record_on_both_topics(
    topology: Topology, models: dict[str, ModelRuntime]
) -> None:
    tfsimples = driver(topology, models)
    tfsimples.send(TOPICS.pipeline_inputs("tfsimples"), "bad", b"\x01\x02garbage")
    for topic in (ERRORS, TOPICS.pipeline_outputs("tfsimples")):
        [item] = tfsimples.records(topic)
        assert h.is_error(item.headers)
        error = decode_error(item.value)
        assert (error.pipeline, error.step, error.request_id, error.stage) == (
            "tfsimples",
            "tfsimple1",
            "bad",
            "decode",
        )


def test_counter_loops_until_done(topology: Topology, models: dict[str, ModelRuntime]) -> None:
    counter = driver(topology, models)
    counter.send(
        TOPICS.pipeline_inputs("counter"), "n", request("n", COUNT=np.array([0], np.int32))
    )
    [answer] = counter.records(TOPICS.pipeline_outputs("counter"))
    assert decoded(answer) == {"COUNT": [10]}
    assert revisits.parse(h.header_bytes(answer.headers, revisits.VISITS_HEADER)) == {
        "increment": 10,
        "below-limit": 10,
    }


def test_a_visit_past_max_step_revisits_is_an_error(
    topology: Topology, models: dict[str, ModelRuntime]
) -> None:
    graph = topology.pipelines["counter"]
    node = graph.step("increment")
    agent = NodeAgent(
        node,
        errors_topic=ERRORS,
        failure_topic=graph.output_topic,
        tracker=OffsetTracker(),
        model=models["increment"],
        max_visits=graph.max_step_revisits + 1,
    )
    loop_back = node.inputs[1].topic
    visits = revisits.format_visits({"increment": graph.max_step_revisits + 1})
    out: list[Outgoing] = []
    value = response("n", CONTINUE=np.array([3], np.int32))
    agent.process(
        1, Record(loop_back, 0, 0, "n", value, [(revisits.VISITS_HEADER, visits)]), 0, out
    )
    assert [o.topic for o in out] == [ERRORS, graph.output_topic]
    error = decode_error(out[0].value)
    assert (error.step, error.stage) == ("increment", "revisits")
    assert "maxStepRevisits is 20" in error.reason
    # One visit fewer still runs the model.
    out.clear()
    fewer = revisits.format_visits({"increment": graph.max_step_revisits})
    agent.process(1, Record(loop_back, 0, 1, "n", value, [(revisits.VISITS_HEADER, fewer)]), 0, out)
    agent.tick(0, out, end_of_chunk=True)
    assert decoded(out[-1]) == {"COUNT": [4]}
