"""The fast lane writes exactly what the general path writes, for every kind of chunk.

A step agent with a lane answers a chunk of same-layout requests with one model
call and sliced bytes; the same chunk through the general path (lane switched
off) must give the same records, byte for byte, in the same order per topic.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from engine import headers as h
from engine.codec import columnar, decode_avro, decode_error, encode_avro, encode_json
from engine.messages import InferenceMessage, Tensor
from engine.runtime.agent import NodeAgent, Outgoing
from engine.runtime.lane import fits_lane
from engine.runtime.offsets import OffsetTracker
from engine.runtime.records import Record
from engine.runtimes import load_model
from engine.topology import TopicNames, compile_topology, load_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOPICS = TopicNames("tf", "lane")


@pytest.fixture(scope="module")
def tfsimple1():
    specs = load_files([EXAMPLES / "models" / "tfsimple1.yaml"])
    model = load_model(specs.models["tfsimple1"])
    yield model
    model.close()


def step_agent(model, *, lane: bool) -> NodeAgent:
    topology = compile_topology(
        load_files(
            [EXAMPLES / "models" / "tfsimple1.yaml", EXAMPLES / "pipelines" / "chain-base.yaml"]
        ),
        TOPICS,
    )
    graph = topology.pipelines["chain-base"]
    node = graph.steps[0]
    assert fits_lane(node, model, None), "tfsimple1 reading whole requests should take the lane"
    return NodeAgent(
        node,
        errors_topic=TOPICS.errors(),
        failure_topic=graph.output_topic,
        tracker=OffsetTracker(),
        model=model,
        lane=lane,
    )


def request(request_id: str, *arrays: np.ndarray, names=("INPUT0", "INPUT1")) -> InferenceMessage:
    return InferenceMessage(
        request_id,
        tuple(Tensor.from_array(n, a) for n, a in zip(names, arrays, strict=True)),
        "request",
    )


def ints(start: int, rows: int = 1) -> np.ndarray:
    return np.arange(start, start + 16 * rows, dtype=np.int32).reshape(rows, 16)


def run(agent: NodeAgent, records: list[Record]) -> dict[str, list[tuple]]:
    """Records written per topic, by request id (records of different ids may come in
    another order: they are independent); error records without their timestamp."""
    out: list[Outgoing] = []
    agent.process_chunk(0, records, 0, out)
    agent.tick(0, out, end_of_chunk=True)
    by_topic: dict[str, list[tuple]] = defaultdict(list)
    for item in out:
        value = item.value
        if h.is_error(item.headers):
            value = dataclasses.replace(decode_error(value), timestamp_ms=0)
        by_topic[item.topic].append((item.key, value, item.headers))
    return {topic: sorted(items, key=lambda item: item[0]) for topic, items in by_topic.items()}


def records_of(*values: tuple[str, bytes, list]) -> list[Record]:
    return [
        Record("in", 0, offset, key, value, headers)
        for offset, (key, value, headers) in enumerate(values)
    ]


def spy_on_general_path(agent: NodeAgent) -> list[str]:
    """The request ids the agent's lane hands to its general path, as they go."""
    handed_over: list[str] = []
    general_process = agent.process

    def process(index, record, now_ms, out):
        handed_over.append(record.key)
        general_process(index, record, now_ms, out)

    agent.process = process  # type: ignore[method-assign]
    return handed_over


def both_paths(model, records: list[Record], *, general_only: set[str]) -> tuple[dict, dict]:
    """Both paths' records; `general_only`: the request ids the lane must hand to the general path."""
    fast = step_agent(model, lane=True)
    handed_over = spy_on_general_path(fast)
    result = run(fast, records), run(step_agent(model, lane=False), records)
    assert set(handed_over) == general_only
    return result


def test_a_uniform_chunk_is_answered_identically(tfsimple1):
    records = records_of(
        *[(f"r{i}", encode_avro(request(f"r{i}", ints(i), ints(100 + i))), []) for i in range(50)]
    )
    fast, general = both_paths(tfsimple1, records, general_only=set())
    assert fast == general
    answers = [
        decode_avro(value, "response")
        for _, value, _ in fast[TOPICS.step_outputs("chain-base", "tfsimple1")]
    ]
    assert sorted(a.id for a in answers) == sorted(f"r{i}" for i in range(50))
    answers = {a.id: a for a in answers}
    assert answers["r7"].tensor("OUTPUT0").data.tolist() == (ints(7) + ints(107)).tolist()
    assert answers["r7"].tensor("OUTPUT1").data.tolist() == (ints(7) - ints(107)).tolist()
    # The request each step sent its model is the record as it came: not re-encoded.
    forwarded = fast[TOPICS.step_inputs("chain-base", "tfsimple1")]
    assert sorted(value for _, value, _ in forwarded) == sorted(r.value for r in records)


def test_a_replayed_chunk_is_answered_identically_and_keeps_its_lineage(tfsimple1):
    def lineage(i: int) -> list[tuple[str, bytes]]:
        return [
            (h.REQUEST_ID, f"run-0-{i}".encode()),
            (h.REPLAY_RUN, b"run"),
            (h.REPLAY_OF, f"r{i}".encode()),
            (h.REPLAY_SOURCE, f"tf.lane.pipeline.chain-base.inputs:0:{i}".encode()),
            (h.ORIGINAL_TIMESTAMP, b"1764614400000"),
            (h.PIPELINE, b"chain-base"),
        ]

    records = records_of(
        *[
            (f"run-0-{i}", encode_avro(request(f"run-0-{i}", ints(i), ints(i))), lineage(i))
            for i in range(20)
        ]
    )
    fast, general = both_paths(tfsimple1, records, general_only=set())
    assert fast == general
    written = [item for items in fast.values() for item in items]
    assert len(written) == 2 * 20  # the step's request and its answer
    for key, _, headers in written:
        i = int(key.rsplit("-", 1)[1])
        assert headers == [*lineage(i)[:5], (h.PIPELINE, b"chain-base"), *headers[-2:]]
        assert headers[-2][0] == h.STEP


def test_a_mixed_chunk_is_answered_identically(tfsimple1):
    json_headers = [(h.CONTENT_TYPE, b"application/json")]
    records = records_of(
        ("a", encode_avro(request("a", ints(1), ints(2))), [(h.TRACEPARENT, b"00-abc-def-01")]),
        ("b", encode_avro(request("b", ints(1, rows=3), ints(2, rows=3))), []),  # another layout
        ("c", b"\x00\xffgarbage", []),  # undecodable: an error record
        (
            "d",
            encode_json(request("d", ints(3), ints(4))),
            json_headers,
        ),  # JSON: re-encoded as Avro
        (
            "e",
            encode_avro(request("e", ints(5), ints(6), names=("INPUT0", "WRONG"))),
            [],
        ),  # model refuses
        (
            "f",
            encode_avro(request("f", ints(7), ints(8))),
            [(h.SCHEMA_VERSION, b"99")],
        ),  # unknown version
        ("g", encode_avro(request("g-in-body", ints(9), ints(10))), []),  # id: the key wins
        ("h", encode_avro(request("h", ints(11), ints(12))), []),
    )
    fast, general = both_paths(tfsimple1, records, general_only={"c", "d", "e", "f"})
    assert fast == general
    outputs = {key: value for key, value, _ in fast[TOPICS.step_outputs("chain-base", "tfsimple1")]}
    assert set(outputs) == {"a", "b", "d", "g", "h"}
    errors = {key for key, _, _ in fast[TOPICS.errors()]}
    assert errors == {"c", "e", "f"}


def test_layouts_reproduce_the_codec_byte_for_byte():
    for message in (
        request("x", ints(0), ints(1)),
        request("a-much-longer-request-id-" * 8, ints(0, rows=4), ints(1, rows=4)),
        InferenceMessage(
            "y",
            (Tensor.from_array("F", np.linspace(0, 1, 7, dtype=np.float16)),),
            "response",
            model_name="m",
        ),
        InferenceMessage("z", (), "request"),
    ):
        layout = columnar.layout_of(message)
        assert layout is not None
        contents = [t.data.tobytes() for t in message.tensors]
        assert layout.encode(message.id, contents) == encode_avro(message)
        assert columnar.learn(encode_avro(message), message.kind) == layout


def test_what_the_lane_leaves_alone():
    with_parameters = InferenceMessage(
        "p", (Tensor.from_array("X", ints(0)),), "request", parameters={"a": 1}
    )
    with_bytes = InferenceMessage(
        "b", (Tensor.from_array("X", np.array([b"x"], dtype=object), "BYTES"),), "request"
    )
    asking = InferenceMessage(
        "o", (Tensor.from_array("X", ints(0)),), "request", requested_outputs=("Y",)
    )
    for message in (with_parameters, with_bytes, asking):
        assert columnar.layout_of(message) is None
        assert columnar.LayoutMatcher("request").match(encode_avro(message)) is None


def chained_agent(pipeline: str, step: str, model, *, lane: bool) -> NodeAgent:
    topology = compile_topology(load_files([EXAMPLES]), TOPICS)
    graph = topology.pipelines[pipeline]
    node = graph.step(step)
    agent = NodeAgent(
        node,
        errors_topic=TOPICS.errors(),
        failure_topic=graph.output_topic,
        tracker=OffsetTracker(),
        model=model,
        lane=lane,
    )
    assert fits_lane(node, model, None) and not agent.forwards_request
    return agent


def response(request_id: str, model: str, **arrays: np.ndarray) -> bytes:
    tensors = tuple(Tensor.from_array(name, array) for name, array in arrays.items())
    return encode_avro(InferenceMessage(request_id, tensors, "response", model_name=model))


def test_a_chained_step_renames_and_answers_identically():
    """tfsimples: tfsimple2 reads tfsimple1's answers whole, OUTPUT0/1 renamed INPUT0/1."""
    model = load_model(load_files([EXAMPLES / "models" / "tfsimple2.yaml"]).models["tfsimple2"])
    records = records_of(
        *[
            (f"r{i}", response(f"r{i}", "tfsimple1", OUTPUT0=ints(i), OUTPUT1=ints(50 + i)), [])
            for i in range(20)
        ],
        ("odd", response("odd", "tfsimple1", OUTPUT0=ints(1)), []),  # INPUT1 missing: model refuses
    )
    fast = chained_agent("tfsimples", "tfsimple2", model, lane=True)
    handed_over = spy_on_general_path(fast)
    fast_out = run(fast, records)
    assert fast_out == run(chained_agent("tfsimples", "tfsimple2", model, lane=False), records)
    assert handed_over == ["odd"]
    requests = {
        key: decode_avro(value, "request")
        for key, value, _ in fast_out[TOPICS.step_inputs("tfsimples", "tfsimple2")]
    }
    assert requests["r3"].names() == ("INPUT0", "INPUT1")
    assert requests["r3"].tensor("INPUT1").data.tolist() == ints(53).tolist()
    model.close()


def test_conditional_routing_drops_what_a_step_does_not_read():
    """conditional-routing: mul10 reads conditional.outputs.OUTPUT0 only."""
    model = load_model(load_files([EXAMPLES / "models" / "mul10.yaml"]).models["mul10"])
    four = np.array([1, 2, 3, 4], dtype=np.float32)
    records = records_of(
        ("zero", response("zero", "conditional", OUTPUT0=four), []),
        ("one", response("one", "conditional", OUTPUT1=four), []),
        ("zero2", response("zero2", "conditional", OUTPUT0=four * 2), []),
    )
    fast_out = run(chained_agent("conditional-routing", "mul10", model, lane=True), records)
    assert fast_out == run(
        chained_agent("conditional-routing", "mul10", model, lane=False), records
    )
    answers = {
        key: decode_avro(value, "response")
        for key, value, _ in fast_out[TOPICS.step_outputs("conditional-routing", "mul10")]
    }
    assert set(answers) == {"zero", "zero2"}
    assert answers["zero2"].tensor("OUTPUT").data.tolist() == [20, 40, 60, 80]
    model.close()
