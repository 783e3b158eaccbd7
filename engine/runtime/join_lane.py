"""The join lane of a node agent: requests joined, laid out and answered from byte slices.

A joining step (several sources, triggers, a batch window) or a pipeline's
output node does the same work for every request on the general path: decode
each arrival, select and rename its tensors, join, merge, encode the request,
call the model, encode the answer. Here arrivals whose bytes fit a known layout
(`engine.codec.columnar`) wait in the agent's own join as slices of their
records (`Slices`); a completed request is written from a template (the
request's fixed bytes, learnt once per combination of layouts) and the slices,
and queued in the agent's batcher; the requests of a batch go to the model in
one call and are answered from templates too (`engine.runtime.lane_calls`).

The lane shares the agent's join, batcher and offset tracker, so windows,
redeliveries, timeouts, revoked partitions and batch specs behave as they do on
the general path; whatever it cannot lay out (JSON, errors, a rename clash, a
model that raises or answers in another shape) is decoded and handed to the
general path at the point it reached, which writes the same bytes, only slower.
"""

from __future__ import annotations

import itertools
from collections.abc import Container
from dataclasses import dataclass
from typing import Any, Protocol

from engine.codec.columnar import Layout, LayoutMatcher, layout_for
from engine.dtypes import BOOL
from engine.messages import MessageKind
from engine.operators.join import Emission, Join, JoinResult
from engine.operators.tensor_map import select
from engine.runtime.arrivals import Arrival, Ready
from engine.runtime.failures import FailureWriter
from engine.runtime.lane import fits_lane, plain_avro
from engine.runtime.lane_calls import AnsweringStep, LaneCalls, LaneReady, Template
from engine.runtime.records import Outgoing, Record
from engine.runtimes.base import ModelRuntime
from engine.topology.graph import Node


class JoinStep(AnsweringStep, Protocol):
    """What the join lane needs of the agent it works for (a NodeAgent is one)."""

    node: Node
    join: Join[Any]
    forwards_request: bool

    def process(self, source_index: int, record: Record, now_ms: int, out: list[Outgoing]) -> None:
        """The general path, for a record the lane does not take."""

    def joined(
        self,
        result: JoinResult[Any],
        now_ms: int,
        out: list[Outgoing],
        unheld: Container[int] = (),
    ) -> None:
        """Release, emit and report what the join returned (`unheld`: ids of arrivals that
        were never held)."""

    def queue(self, ready: Any, now_ms: int, out: list[Outgoing]) -> None:
        """A joined request to the batcher (and the model, when a batch is due)."""

    def headers_for(
        self, incoming: list[tuple[str, bytes]], request_id: str
    ) -> list[tuple[str, bytes]]: ...


def fits_join_lane(node: Node, model: ModelRuntime | None, max_visits: int | None) -> bool:
    """A pipeline node the fast lane does not take, uncounted visits, and: a step (its model
    called once per batch when batchable, else once per request), or an output node that
    does more than pass one step's bytes on."""
    if not node.pipeline or max_visits is not None:
        return False
    if node.kind == "output":
        source = node.inputs[0]
        passes_bytes = len(node.inputs) == 1 and not node.triggers
        return not (passes_bytes and source.ref.tensor is None and not source.renames)
    return (
        node.kind == "step"
        and model is not None
        and not model.shares_batch_answer
        and not fits_lane(node, model, max_visits)
    )


@dataclass(frozen=True, eq=False)
class _Taken:
    """What one source takes from records of one layout."""

    number: int
    """Tells the combinations of arrivals apart (templates are cached by these)."""
    source_index: int
    spans: tuple[tuple[int, int], ...]
    """Where each taken tensor's contents sit, counted from the end of the id."""
    tensors: tuple[tuple[str, str, tuple[int, ...]], ...]
    """(name after the tensorMap, datatype, shape) of each taken tensor."""
    bools: tuple[tuple[int, int], ...]
    """Spans of every BOOL tensor of the layout: decoding checks them, so the lane does."""


DROP = _Taken(-1, -1, (), (), ())
"""The tensor the source reads is absent: conditional routing drops the record here."""


@dataclass(slots=True)
class Slices:
    """An arrival on the lane: its record, what its source takes, where the record's id ends."""

    record: Record
    taken: _Taken
    id_end: int
    at_ms: int


_UNKNOWN: Any = object()


class JoinLane:
    def __init__(
        self,
        step: JoinStep,
        kinds: list[MessageKind],
        model: ModelRuntime | None,
        failures: FailureWriter,
    ) -> None:
        self.step = step
        self.sources = step.node.sources()
        self.kinds = kinds
        self.output_kind: MessageKind = "response" if step.node.kind == "output" else "request"
        matchers: dict[tuple[str, MessageKind], LayoutMatcher] = {}
        self._matchers = [  # sources reading one topic share what they learnt of it
            matchers.setdefault((source.topic, kind), LayoutMatcher(kind))
            for source, kind in zip(self.sources, kinds, strict=True)
        ]
        self._taken: list[dict[int, tuple[Layout, _Taken | None]]] = [{} for _ in self.sources]
        self._templates: dict[tuple[int, ...], Template | None] = {}
        self._numbers = itertools.count()
        self.calls = LaneCalls(step, model, failures, joins=len(self.sources) > 1)

    # -- arrivals ----------------------------------------------------------------------

    def process(
        self, source_index: int, records: list[Record], now_ms: int, out: list[Outgoing]
    ) -> None:
        step = self.step
        matcher, take = self._matchers[source_index], self._take
        joining: list[tuple[tuple[int, str, int], int, Slices, int]] = []
        for record in records:
            value = record.value
            found = matcher.match(value) if plain_avro(record.headers) else None
            taken = take(source_index, found[0]) if found is not None else None
            if taken is None or (taken.bools and not _bools_ok(value, found[2], taken.bools)):
                if joining:  # what came before it joins first, as on the general path
                    self._join(joining, now_ms, out)
                    joining = []
                step.process(source_index, record, now_ms, out)
                continue
            if taken is DROP:
                continue
            # The general path's key: partition, request id, visits (not counted here).
            key = (record.partition, record.request_id, 0)
            joining.append(
                (key, source_index, Slices(record, taken, found[2], now_ms), record.offset)
            )
        if joining:
            self._join(joining, now_ms, out)

    def _join(
        self,
        joining: list[tuple[tuple[int, str, int], int, Slices, int]],
        now_ms: int,
        out: list[Outgoing],
    ) -> None:
        """Arrivals into the agent's join at once. Those the join keeps are held until it is
        done with them (as the general path holds every arrival); one that its chunk
        completes or duplicates is neither held nor released (most of a join's arrivals)."""
        step = self.step
        result = step.join.process_many(joining, now_ms)
        if step.join.passes_through():
            step.joined(result, now_ms, out)
            return
        fresh = {id(arrival) for _, _, arrival, _ in joining}
        used = {id(arrival) for arrival in result.released}
        for emission in result.emitted:
            used.update([id(arrival) for arrival in emission.inputs])
            used.update([id(arrival) for arrival in emission.triggers])
        if not fresh <= used:  # some stay in the join, waiting for their partners
            hold = step.tracker.hold
            for _, _, arrival, _ in joining:
                if id(arrival) not in used:
                    hold(arrival.record.ref)
        step.joined(result, now_ms, out, fresh)

    def _take(self, source_index: int, layout: Layout) -> _Taken | None:
        """What the source takes from records of `layout`; None: the general path must."""
        known = self._taken[source_index].get(id(layout))
        if known is not None and known[0] is layout:
            return known[1]
        source = self.sources[source_index]
        wanted = source.ref.tensor
        indexes = [i for i, t in enumerate(layout.tensors) if wanted is None or t.name == wanted]
        taken: _Taken | None
        if wanted is not None and not indexes:
            taken = DROP
        else:
            tensors = tuple(
                (
                    source.rename(layout.tensors[i].name),
                    layout.tensors[i].datatype,
                    layout.tensors[i].shape,
                )
                for i in indexes
            )
            bools = tuple(
                span
                for t, span in zip(layout.tensors, layout.offsets, strict=True)
                if t.datatype == BOOL
            )
            number = next(self._numbers)
            taken = _Taken(
                number, source_index, tuple(layout.offsets[i] for i in indexes), tensors, bools
            )
        cache = self._taken[source_index]
        if len(cache) >= LayoutMatcher.MAX_LAYOUTS * 4:
            cache.clear()  # bounded: a stream of ever new layouts is the general path's
        cache[id(layout)] = (layout, taken)
        return taken

    # -- joined requests ---------------------------------------------------------------

    def emitted(self, emission: Emission[Any], now_ms: int, out: list[Outgoing]) -> bool:
        """Write or queue a joined request from its slices; False: the general path goes on
        with it (its lane arrivals are decoded into `Arrival`s here)."""
        inputs, triggers = emission.inputs, emission.triggers
        numbers = []
        for a in inputs:
            if type(a) is not Slices:
                self._decode(emission)
                return False
            numbers.append(a.taken.number)
        for a in triggers:
            if type(a) is not Slices:
                self._decode(emission)
                return False
        key = tuple(numbers)
        template = self._templates.get(key, _UNKNOWN)
        if template is _UNKNOWN:
            template = self._template(key, inputs)
        if template is None:
            self._decode(emission)
            return False
        step, node = self.step, self.step.node
        first = (inputs or triggers)[0].record
        request_id = first.request_id
        headers = step.headers_for(first.headers, request_id)
        contents = [
            a.record.value[a.id_end + start : a.id_end + end]
            for a in inputs
            for start, end in a.taken.spans
        ]
        if node.kind != "step":
            step.metrics.output()
            value = template.layout.encode(request_id, contents)
            out.append(Outgoing(node.output_topic, request_id, value, headers))
            return True
        arrivals = inputs + triggers if triggers else inputs
        records = [a.record for a in arrivals]
        arrived_ms = min([a.at_ms for a in arrivals])
        if node.request_topic is not None:
            if step.forwards_request:
                value = first.value
            else:
                value = template.layout.encode(request_id, contents)
            out.append(Outgoing(node.request_topic, request_id, value, headers))
        ready = LaneReady(template, request_id, contents, headers, records, arrived_ms, now_ms)
        step.queue(ready, now_ms, out)
        return True

    def _template(self, numbers: tuple[int, ...], inputs: list[Slices]) -> Template | None:
        """The template of joined requests of these arrivals' layouts (learnt once)."""
        tensors = [tensor for a in inputs for tensor in a.taken.tensors]
        names = [name for name, _, _ in tensors]
        template = None
        if len(set(names)) == len(names):  # else a clash: the general path says which
            node = self.step.node
            layout = layout_for(self.output_kind, node.model or node.pipeline, tensors)
            if layout is not None:
                template = Template(
                    layout,
                    tuple(t.dtype for t in layout.tensors),
                    tuple(t.shape for t in layout.tensors),
                    layout.rows,
                )
        if len(self._templates) >= LayoutMatcher.MAX_LAYOUTS * 16:
            self._templates.clear()
        self._templates[numbers] = template
        return template

    def _decode(self, emission: Emission[Any]) -> None:
        """The emission's lane arrivals as the general path's (records the lane took decode)."""
        emission.inputs = [self._arrival(a) for a in emission.inputs]
        emission.triggers = [self._arrival(a) for a in emission.triggers]

    def _arrival(self, arrival: Any) -> Any:
        if type(arrival) is not Slices:
            return arrival
        index = arrival.taken.source_index
        message = arrival.record.message(self.kinds[index])
        tensors = select(self.sources[index], message.tensors)
        assert tensors is not None  # the lane drops what the general path drops
        return Arrival(arrival.record, tensors, {}, arrival.at_ms)

    # -- the model ---------------------------------------------------------------------

    def call(self, batch: list[Any], out: list[Outgoing]) -> list[Ready]:
        """The batch's lane requests answered (`LaneCalls.call`); the rest returned."""
        return self.calls.call(batch, out)


def _bools_ok(value: bytes, id_end: int, spans: tuple[tuple[int, int], ...]) -> bool:
    """Every BOOL byte is 0 or 1 (else decoding fails, and the general path says so)."""
    return not any(
        value[id_end + start : id_end + end].translate(None, b"\x00\x01") for start, end in spans
    )
