"""Experiments over pipelines on Kafka: what is produced to the default's inputs is split.

A request produced straight to pipeline D's inputs topic, D being an experiment's
`default`, goes to one candidate by weight, as over HTTP. The worker does it with
two relays and a screen, so a pipeline in no experiment runs exactly as before:

- the split relay reads D's inputs; a request that falls on another candidate C is
  copied, unchanged, to C's inputs, marked with `x-seldon-route: C` and with where
  its answer goes (`ANSWER_TO`, carried through C's nodes like the request id);
- D's own agents reading D's inputs screen those requests out (the same choice);
- the return relay reads C's outputs and copies the answers marked for D's outputs
  there (`x-seldon-route: C` on them), where D's Kafka caller waits.

The choice is the one `ExperimentModel` makes for models: by weight, drawn from the
request id (so a record consumed again goes the same way), pinned by an incoming
`x-seldon-route` that names a candidate with traffic (the gateway writes the one it
chose). The mirror gets a copy of its percent of the requests on its inputs topic.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

from engine import headers as h
from engine.runtime.node_headers import ANSWER_TO
from engine.runtime.records import Outgoing, Record, RecordRef
from engine.topology.graph import Node, Source, TensorRef
from engine.topology.specs import ExperimentSpec
from engine.topology.topics import TopicNames


def choose(spec: ExperimentSpec, record: Record) -> str:
    """The candidate `record` goes to (the weights, the request id, a sticky route)."""
    names = {candidate.name for candidate in spec.candidates}
    sticky = h.route_candidate(h.header_value(record.headers, h.SELDON_ROUTE), names)
    for candidate in spec.candidates:
        if candidate.name == sticky and candidate.weight > 0:
            return sticky
    point = zlib.crc32(record.request_id.encode("utf-8", "replace"))
    point %= sum(c.weight for c in spec.candidates)
    for candidate in spec.candidates:
        if point < candidate.weight:
            return candidate.name
        point -= candidate.weight
    raise AssertionError("unreachable: the point lies below the sum of the weights")


def screen_for(spec: ExperimentSpec, default: str) -> Callable[[list[Record]], list[Record]]:
    """What the default's own agents keep of a chunk on its inputs: its own requests."""

    def keep(records: list[Record]) -> list[Record]:
        return [r for r in records if r.is_error() or choose(spec, r) == default]

    return keep


class _Relay:
    """An agent that only copies records: nothing held, nothing timed, no model."""

    model = None
    lane = None
    join_lane = None
    max_visits = None
    fused_node = None
    reports_timeouts = False

    def __init__(self, node: Node) -> None:
        self.node = node
        self.sources = node.inputs
        self.failure_topic = node.output_topic

    def tick(self, now_ms: int, out: list[Outgoing], *, end_of_chunk: bool) -> None:
        pass

    def next_deadline_ms(self) -> int | None:
        return None

    def drop_partitions(self, partitions: set[int]) -> None:
        pass

    def abandon(self) -> list[RecordRef]:
        return []


class SplitRelay(_Relay):
    def __init__(self, spec: ExperimentSpec, topics: TopicNames) -> None:
        default = spec.default
        assert default is not None, "only an experiment with a default splits a topic"
        inputs = topics.pipeline_inputs(default)
        source = Source(TensorRef(default, None, "inputs", None), inputs, ())
        super().__init__(_relay_node(default, f"split:{spec.name}", source, inputs))
        self.spec = spec
        self.answer_to = topics.pipeline_outputs(default).encode()
        self.inputs_of = {c.name: topics.pipeline_inputs(c.name) for c in spec.candidates}
        self.mirror = None
        if spec.mirror is not None:
            m = spec.mirror
            self.mirror = (m.name, m.percent, topics.pipeline_inputs(m.name))

    def process_chunk(
        self, source_index: int, records: list[Record], now_ms: int, out: list[Outgoing]
    ) -> None:
        default = self.spec.default
        for record in records:
            if record.is_error():
                continue
            chosen = choose(self.spec, record)
            request_id = record.request_id  # a keyless record's own id travels with it
            if chosen != default:
                headers = h.with_headers(
                    record.headers,
                    **{h.SELDON_ROUTE: chosen, ANSWER_TO: self.answer_to, h.REQUEST_ID: request_id},
                )
                out.append(Outgoing(self.inputs_of[chosen], request_id, record.value, headers))
            if self.mirror is not None and self.mirror[0] != chosen:
                name, percent, topic = self.mirror
                salted = b"mirror:" + request_id.encode("utf-8", "replace")
                if zlib.crc32(salted) % 100 < percent:
                    headers = h.with_headers(
                        record.headers, **{h.SELDON_ROUTE: name, h.REQUEST_ID: request_id}
                    )
                    out.append(Outgoing(topic, request_id, record.value, headers))


class ReturnRelay(_Relay):
    def __init__(self, spec: ExperimentSpec, topics: TopicNames) -> None:
        default = spec.default
        assert default is not None, "only an experiment with a default splits a topic"
        others = [c.name for c in spec.candidates if c.name != default]
        outputs = topics.pipeline_outputs(default)
        node = _relay_node(default, f"return:{spec.name}", None, outputs)
        sources = tuple(
            Source(TensorRef(name, None, "outputs", None), topics.pipeline_outputs(name), ())
            for name in others
        )
        super().__init__(node)
        self.sources = sources
        self.outputs = outputs
        self.answer_to = outputs.encode()
        self.names = others

    def process_chunk(
        self, source_index: int, records: list[Record], now_ms: int, out: list[Outgoing]
    ) -> None:
        route = self.names[source_index]
        for record in records:
            if record.header(ANSWER_TO) == self.answer_to:
                headers = h.with_headers(record.headers, **{h.SELDON_ROUTE: route, ANSWER_TO: None})
                out.append(Outgoing(self.outputs, record.request_id, record.value, headers))


def _relay_node(pipeline: str, name: str, source: Source | None, output_topic: str) -> Node:
    """A node for what the worker asks of every agent (its name in committed metadata)."""
    return Node(
        pipeline=pipeline,
        name=name,
        kind="input",
        model=None,
        inputs=(source,) if source is not None else (),
        triggers=(),
        inputs_join="inner",
        triggers_join="inner",
        join_window_ms=0,
        batch=None,
        request_topic=None,
        output_topic=output_topic,
    )
