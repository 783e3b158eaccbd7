"""The fast lane of a step agent: a chunk of same-layout records, one model call, no objects per request.

A step that reads one source (no join, no triggers) and calls a batchable
model does the same work for every record: take the source's tensors (renamed
by the tensorMap), write the request to its inputs topic, call the model, write
the answer. Here that work is done per chunk: records whose bytes fit a known
layout are sliced into one column per tensor (`engine.codec.columnar`), the
model runs once, and requests and answers are laid out from fixed bytes and
their slices (a whole request passed on unchanged is forwarded as it came).
Whatever does not fit (JSON, errors, other layouts, a model that raises or
answers in an unexpected shape) goes through the agent's general path, which
writes the same bytes, only slower.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from engine import headers as h
from engine.codec import SUPPORTED_SCHEMA_VERSIONS
from engine.codec.columnar import Layout, LayoutMatcher, column, layout_for
from engine.codec.errors import CodecError
from engine.dtypes import BYTES, DATATYPE_TO_DTYPE, datatype_of
from engine.messages import MessageKind
from engine.observability.spans import NodeSpans
from engine.operators.batch import Batcher
from engine.runtime import metrics
from engine.runtime.records import Outgoing, Record
from engine.runtimes.base import ModelRuntime
from engine.topology.graph import Node, Source


class LaneStep(Protocol):
    """What the lane needs of the step it works for (a NodeAgent is one)."""

    @property
    def node(self) -> Node: ...

    def process(self, source_index: int, record: Record, now_ms: int, out: list[Outgoing]) -> None:
        """The general path, for a record the lane does not take."""

    def headers_for(
        self, incoming: list[tuple[str, bytes]], request_id: str
    ) -> list[tuple[str, bytes]]:
        """The headers of what the step writes for a request that came with `incoming`."""

    def answer(
        self, request_id: str, value: bytes, headers: list[tuple[str, bytes]], out: list[Outgoing]
    ) -> None:
        """Write the model's answer (and the pipeline's output, when fused into the step)."""

    @property
    def metrics(self) -> metrics.NodeMetrics:
        """The step's metrics (counted per chunk here)."""

    @property
    def spans(self) -> NodeSpans | None:
        """The step's spans; None when tracing is off."""

    @property
    def output_spans(self) -> NodeSpans | None:
        """The fused output's spans, if any."""


def fits_lane(node: Node, model: ModelRuntime | None, max_visits: int | None) -> bool:
    """A step of one source, no triggers, uncounted visits, no batch window, a batchable model."""
    return (
        node.kind == "step"
        and len(node.inputs) == 1
        and not node.triggers
        and max_visits is None
        and model is not None
        and model.batchable
        and not Batcher(node.batch).holds()
    )


_PLAIN_HEADERS = frozenset({h.REQUEST_ID, h.PIPELINE, h.STEP, h.TRACEPARENT, *h.REPLAY_HEADERS})
"""Headers the engine writes that say nothing of the payload (checked first: every record
written by a step carries some)."""
_PLAIN_VERSIONS = frozenset(version.encode() for version in SUPPORTED_SCHEMA_VERSIONS)


def plain_avro(headers: list[tuple[str, bytes]]) -> bool:
    """No error marker, no JSON, a schema version the codec reads."""
    for key, value in headers:
        if key in _PLAIN_HEADERS or (key == h.SCHEMA_VERSION and value in _PLAIN_VERSIONS):
            continue
        lowered = key.lower()
        if lowered == h.ERROR:
            return False
        if lowered == h.CONTENT_TYPE and h.is_json([(key, value)]):
            return False
        if (
            lowered == h.SCHEMA_VERSION
            and value.decode("utf-8", "replace").strip() not in SUPPORTED_SCHEMA_VERSIONS
        ):
            return False
    return True


@dataclass(frozen=True)
class _Plan:
    """What the step does with records of one layout."""

    indexes: tuple[int, ...]
    """The layout's tensors the model gets, in order."""
    names: tuple[str, ...]
    """Their names after the tensorMap."""
    request: Layout | None
    """Layout of the request the step writes; None: the record is forwarded as it came."""
    rows: int


DROP = _Plan((), (), None, 0)
"""The tensor the step reads is absent: conditional routing drops the record here."""


class FastLane:
    def __init__(
        self,
        step: LaneStep,
        *,
        source: Source,
        kind: MessageKind,
        model: ModelRuntime,
        forwards_request: bool,
    ) -> None:
        self.step = step
        self.source = source
        self.model = model
        self.forwards_request = forwards_request
        """The step passes whole requests on unchanged: no request layout to build."""
        self.matcher = LayoutMatcher(kind)
        self._plans: dict[Layout, _Plan | None] = {}
        self._answers: dict[tuple, Layout | None] = {}

    def _plan(self, layout: Layout) -> _Plan | None:
        """How to feed records of `layout` to the model; None: the general path must."""
        if layout in self._plans:
            return self._plans[layout]
        source, node = self.source, self.step.node
        wanted = source.ref.tensor
        indexes = tuple(
            i for i, t in enumerate(layout.tensors) if wanted is None or t.name == wanted
        )
        plan: _Plan | None
        if wanted is not None and not indexes:
            plan = DROP
        else:
            tensors = [layout.tensors[i] for i in indexes]
            names = tuple(source.rename(t.name) for t in tensors)
            firsts = {t.shape[0] if t.shape else None for t in tensors}
            rows = firsts.pop() if len(firsts) == 1 else None
            if rows is None or len(set(names)) != len(names):
                plan = None  # no common batch axis, or a rename clash: the general path says so
            elif self.forwards_request:
                plan = _Plan(indexes, names, None, rows)
            else:
                request = layout_for(
                    "request",
                    node.model or node.pipeline,
                    [(name, t.datatype, t.shape) for name, t in zip(names, tensors, strict=True)],
                )
                plan = None if request is None else _Plan(indexes, names, request, rows)
        if len(self._plans) < LayoutMatcher.MAX_LAYOUTS * 4:
            self._plans[layout] = plan
        return plan

    def process(
        self, source_index: int, records: list[Record], now_ms: int, out: list[Outgoing]
    ) -> None:
        step = self.step
        groups: dict[Layout, tuple[_Plan, list[Record], list[int]]] = {}
        for record in records:
            found = self.matcher.match(record.value) if plain_avro(record.headers) else None
            plan = self._plan(found[0]) if found is not None else None
            if plan is None:
                step.process(source_index, record, now_ms, out)
                continue
            if plan is DROP:
                continue
            layout, _, id_end = found
            group = groups.get(layout)
            if group is None:
                groups[layout] = (plan, [record], [id_end])
            else:
                group[1].append(record)
                group[2].append(id_end)
        for layout, (plan, group_records, id_ends) in groups.items():
            if not self._call(layout, plan, group_records, id_ends, out, now_ms):
                for record in group_records:
                    step.process(source_index, record, now_ms, out)

    def _call(
        self,
        layout: Layout,
        plan: _Plan,
        records: list[Record],
        id_ends: list[int],
        out: list[Outgoing],
        now_ms: int,
    ) -> bool:
        """Answer every record with one model call; False leaves them all to the general path."""
        step, model = self.step, self.model
        count, rows = len(records), plan.rows
        values = [record.value for record in records]
        inputs = {
            name: column(values, id_ends, layout, index)
            for name, index in zip(plan.names, plan.indexes, strict=True)
        }
        started = time.perf_counter()
        try:
            outputs = model.predict(inputs)
        except Exception:  # the general path finds which request fails, and says why
            return False
        ended = time.perf_counter()
        metrics.observe_model_call(model.name, ended - started, count)
        answer = self._answer_layout(model.name, outputs, count, rows) if outputs else None
        if outputs and answer is None:
            return False
        contents = [np.ascontiguousarray(array).tobytes() for array in outputs.values()]
        strides = [len(data) // count for data in contents]
        slicing = list(zip(contents, strides, strict=True))  # one zip, not one a request
        node = step.node
        offsets = [layout.offsets[i] for i in plan.indexes]
        for index, record in enumerate(records):
            request_id = record.request_id
            headers = step.headers_for(record.headers, request_id)
            if node.request_topic is not None:
                if plan.request is None:
                    request = record.value
                else:
                    at = id_ends[index]
                    request = plan.request.encode(
                        request_id, [record.value[at + start : at + end] for start, end in offsets]
                    )
                out.append(Outgoing(node.request_topic, request_id, request, headers))
            if answer is not None:
                parts = [data[index * s : (index + 1) * s] for data, s in slicing]
                step.answer(request_id, answer.encode(request_id, parts), headers, out)
        step.metrics.answered(count, time.time() - now_ms / 1000)
        spans = step.spans
        if spans is not None:  # tracing on: each request's spans, once the chunk is answered
            wall_end = time.time_ns() - int((time.perf_counter() - ended) * 1e9)
            model_call = (wall_end - int((ended - started) * 1e9), wall_end)
            spans.lane(records, now_ms * 1_000_000, model_call, step.output_spans)
        return True

    def _answer_layout(
        self, model_name: str, outputs: dict, count: int, rows: int | None
    ) -> Layout | None:
        """The layout of one request's answer, when the outputs split evenly into `count` of them."""
        if rows is None:
            return None
        key = []
        for name, array in outputs.items():
            if (
                not isinstance(array, np.ndarray)
                or array.ndim == 0
                or array.shape[0] != count * rows
            ):
                return None
            key.append((name, array.dtype.str, array.shape[1:]))
        key_tuple = (model_name, rows, tuple(key))
        if key_tuple not in self._answers:
            self._answers[key_tuple] = answer_layout(model_name, rows, outputs)
        return self._answers[key_tuple]


def answer_layout(model_name: str, rows: int | None, outputs: dict) -> Layout | None:
    """The layout of an answer of `rows` rows shaped as `outputs` (None: exactly as shaped);
    None when such answers are not laid out here."""
    tensors = []
    for name, array in outputs.items():
        try:
            datatype = datatype_of(array.dtype, tensor=name)
        except CodecError:
            return None
        if datatype == BYTES or DATATYPE_TO_DTYPE[datatype] != array.dtype:
            return None  # BYTES, or e.g. big-endian: the general path converts them
        shape = array.shape if rows is None else (rows, *array.shape[1:])
        tensors.append((name, datatype, shape))
    return layout_for("response", model_name, tensors)
