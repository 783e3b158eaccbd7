"""A step that writes its pipeline's output itself writes what the output node would have."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine import headers as h
from engine.codec import encode_avro, encode_json
from engine.messages import InferenceMessage, Tensor
from engine.runtime.agent import NodeAgent, Outgoing
from engine.runtime.offsets import OffsetTracker
from engine.runtime.plan import fused_output_step
from engine.runtime.records import Record
from engine.runtimes import load_model
from engine.topology import TopicNames, compile_topology, load_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOPICS = TopicNames("tf", "fuse")


@pytest.fixture(scope="module")
def topology():
    return compile_topology(load_files([EXAMPLES]), TOPICS)


def test_which_outputs_fuse(topology):
    fused = {name: fused_output_step(graph) for name, graph in topology.pipelines.items()}
    assert fused["chain-base"] == "tfsimple1"  # output: the step's answers, whole
    assert fused["tfsimples"] == "tfsimple2"
    assert fused["tfsimples-join"] == "tfsimple3"
    assert fused["conditional-routing"] is None  # two steps, stepsJoin any
    assert fused["pipeline-inputs"] is None  # an output tensorMap renames
    assert fused["counter"] is None  # a cycle counts visits in headers


LINEAGE = [
    (h.REQUEST_ID, b"run-0-7"),
    (h.REPLAY_RUN, b"run"),
    (h.REPLAY_OF, b"r0"),
    (h.REPLAY_SOURCE, b"tf.fuse.pipeline.chain-base.inputs:0:7"),
    (h.ORIGINAL_TIMESTAMP, b"1764614400000"),
    (h.PIPELINE, b"chain-base"),
]
HEADERS = {
    "traced": ([(h.TRACEPARENT, b"00-trace-span-01")], False),
    "replayed": (LINEAGE, False),  # what a replay sends: carried onto every record
    "json caller, marked upstream": ([(h.REPLY_CONTENT_TYPE, b"application/json")], False),
    "json": ([*LINEAGE, (h.CONTENT_TYPE, b"application/json")], True),
}


@pytest.mark.parametrize("headers", sorted(HEADERS))
@pytest.mark.parametrize("lane", [True, False])
def test_fused_step_writes_the_output_nodes_record(topology, lane, headers):
    graph = topology.pipelines["chain-base"]
    model = load_model(topology.models["tfsimple1"])
    step_node, output_node = graph.steps[0], graph.output_node

    def agent(node, *, fuse: bool) -> NodeAgent:
        return NodeAgent(
            node,
            errors_topic=TOPICS.errors(),
            failure_topic=graph.output_topic,
            tracker=OffsetTracker(),
            model=model if node.kind == "step" else None,
            fused_output=output_node if fuse else None,
            lane=lane and node.kind == "step",
        )

    x = np.arange(16, dtype=np.int32).reshape(1, 16)
    message = InferenceMessage(
        "r1", (Tensor.from_array("INPUT0", x), Tensor.from_array("INPUT1", x)), "request"
    )
    incoming_headers, as_json = HEADERS[headers]
    value = encode_json(message) if as_json else encode_avro(message)
    incoming = [Record(graph.input_topic, 0, 0, "r1", value, incoming_headers)]

    def run(step: NodeAgent) -> list[Outgoing]:
        out: list[Outgoing] = []
        step.process_chunk(0, incoming, 0, out)
        step.tick(0, out, end_of_chunk=True)
        return out

    # Unfused: the output node copies the step's answer to the pipeline's outputs.
    unfused = run(agent(step_node, fuse=False))
    answer = next(o for o in unfused if o.topic == step_node.output_topic)
    copied: list[Outgoing] = []
    agent(output_node, fuse=False).process_chunk(
        0, [Record(answer.topic, 0, 0, answer.key, answer.value, answer.headers)], 0, copied
    )
    assert [o.topic for o in copied] == [graph.output_topic]

    fused = run(agent(step_node, fuse=True))
    written = [o for o in fused if o.topic == graph.output_topic]
    assert [(o.key, o.value, o.headers) for o in written] == [
        (c.key, c.value, c.headers) for c in copied
    ]
    assert [o for o in fused if o.topic != graph.output_topic] == unfused
    carried = [item for item in incoming_headers if item[0] in h.REPLAY_HEADERS]
    for item in fused:  # a replay's lineage is on every record written for it
        assert [i for i in item.headers if i[0] in h.REPLAY_HEADERS] == carried
    model.close()
