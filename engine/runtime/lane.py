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
from engine.messages import ErrorKind, MessageKind
from engine.observability.spans import NodeSpans
from engine.operators.batch import Batcher
from engine.runtime import metrics
from engine.runtime.errors import ModelRefused, ModelTimedOut
from engine.runtime.model_calls import ModelCalls, Work
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

    def fail(
        self,
        request_id: str,
        stage: str,
        error: BaseException,
        kind: ErrorKind,
        record: Record,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> list[Outgoing]:
        """The error records to write for a request the step cannot answer."""

    @property
    def calls(self) -> ModelCalls:
        """Where the step's model calls run."""

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
    """A step of one source, no triggers, uncounted visits, no batch window, a batchable
    model that runs here (a remote model's cost is the network, not per-record CPU, and a
    failed lane call would be made again on the general path)."""
    return (
        node.kind == "step"
        and len(node.inputs) == 1
        and not node.triggers
        and max_visits is None
        and model is not None
        and model.batchable
        and model.in_process
        and not Batcher(node.batch).holds()
    )


_PLAIN_HEADERS = frozenset({h.REQUEST_ID, h.PIPELINE, h.STEP, h.TRACEPARENT, *h.REPLAY_HEADERS})
"""Headers the engine writes that say nothing of the payload (checked first: every record
written by a step carries some)."""
_PLAIN_VERSIONS = frozenset(version.encode() for version in SUPPORTED_SCHEMA_VERSIONS)


def plain_avro(headers: list[tuple[str, bytes]]) -> bool:
    """No error marker, no JSON, a schema version the codec reads, and not the request of
    a JSON caller (whose answer the general path writes as JSON: engine.runtime.reply_format)."""
    for key, value in headers:
        if key in _PLAIN_HEADERS or (key == h.SCHEMA_VERSION and value in _PLAIN_VERSIONS):
            continue
        lowered = key.lower()
        if lowered == h.ERROR or lowered == h.REPLY_CONTENT_TYPE:
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
        step, match, plans = self.step, self.matcher.match, self._plans
        groups: dict[Layout, tuple[_Plan, list[Record], list[int]]] = {}
        for record in records:
            headers = record.headers
            found = match(record.value) if not headers or plain_avro(headers) else None
            if found is None:
                plan = None
            else:  # the plan of a layout seen before, without a call for each record
                plan = plans[found[0]] if found[0] in plans else self._plan(found[0])
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
            self._call(layout, plan, group_records, id_ends, out, now_ms, source_index)

    def _call(
        self,
        layout: Layout,
        plan: _Plan,
        records: list[Record],
        id_ends: list[int],
        out: list[Outgoing],
        now_ms: int,
        source_index: int,
    ) -> None:
        """Answer every record with one model call, handed off to the step's `calls`."""
        step, model = self.step, self.model
        values = [record.value for record in records]
        inputs = {
            name: column(values, id_ends, layout, index)
            for name, index in zip(plan.names, plan.indexes, strict=True)
        }

        def run() -> tuple[dict, float, float]:
            started = time.perf_counter()
            outputs = model.predict(inputs)
            return outputs, started, time.perf_counter()

        def finish(outcome: object, dropped: frozenset[int], out: list[Outgoing]) -> None:
            kept = records
            if dropped:  # revoked while the model ran: their new owner answers them
                kept = [r for r in records if r.partition not in dropped]
            if isinstance(outcome, ModelTimedOut | ModelRefused):
                self._write(plan, layout, kept, id_ends, None, [], out, failed=outcome)
            elif isinstance(outcome, BaseException) or not self._answered(
                plan, layout, records, id_ends, outcome, dropped, out, now_ms
            ):
                for record in kept:  # the general path finds which request fails, and says why
                    step.process(source_index, record, now_ms, out)

        refs = [(record.topic, record.partition, record.offset) for record in records]
        step.calls.submit(step, model.name, Work(run, finish, refs, len(records)), out)

    def _answered(
        self,
        plan: _Plan,
        layout: Layout,
        records: list[Record],
        id_ends: list[int],
        outcome: object,
        dropped: frozenset[int],
        out: list[Outgoing],
        now_ms: int,
    ) -> bool:
        """Write the requests and answers of a call; False leaves them to the general path."""
        step, model = self.step, self.model
        outputs, started, ended = outcome  # type: ignore[misc]
        count = len(records)
        metrics.observe_model_call(model.name, ended - started, count)
        answer = self._answer_layout(model.name, outputs, count, plan.rows) if outputs else None
        if outputs and answer is None:
            return False
        # Each output's bytes cut into one slice a request, then zipped (in C) into each
        # request's slices: one comprehension per output, not one per request.
        columns = []
        for array in outputs.values():
            data = np.ascontiguousarray(array).tobytes()
            stride = len(data) // count
            columns.append([data[at : at + stride] for at in range(0, stride * count, stride)])
        parts = list(zip(*columns, strict=True))
        if dropped:
            keep = [i for i, r in enumerate(records) if r.partition not in dropped]
            records, id_ends = [records[i] for i in keep], [id_ends[i] for i in keep]
            parts = [parts[i] for i in keep]
        self._write(plan, layout, records, id_ends, answer, parts, out)
        step.metrics.answered(len(records), time.time() - now_ms / 1000)
        spans = step.spans
        if spans is not None:  # tracing on: each request's spans, once the chunk is answered
            wall_end = time.time_ns() - int((time.perf_counter() - ended) * 1e9)
            model_call = (wall_end - int((ended - started) * 1e9), wall_end)
            spans.lane(records, now_ms * 1_000_000, model_call, step.output_spans)
        return True

    def _write(
        self,
        plan: _Plan,
        layout: Layout,
        records: list[Record],
        id_ends: list[int],
        answer: Layout | None,
        parts: list[tuple[bytes, ...]],
        out: list[Outgoing],
        *,
        failed: Exception | None = None,
    ) -> None:
        """Each record's request (to the step's inputs topic), then its answer or error record."""
        step = self.step
        request_topic = step.node.request_topic
        offsets = [layout.offsets[i] for i in plan.indexes]
        # Hot path (every request of the chunk): methods looked up once, not per record.
        headers_for, write_answer, append = step.headers_for, step.answer, out.append
        request_layout = plan.request
        encode_answer = answer.encode if answer is not None else None
        for index, record in enumerate(records):
            request_id = record.key or record.request_id
            headers = headers_for(record.headers, request_id)
            if request_topic is not None:
                if request_layout is None:
                    request = record.value
                else:
                    at, value = id_ends[index], record.value
                    request = request_layout.encode(
                        request_id, [value[at + start : at + end] for start, end in offsets]
                    )
                append(Outgoing(request_topic, request_id, request, headers))
            if failed is not None:
                out.extend(step.fail(request_id, "model", failed, "timeout", record, headers))
            elif encode_answer is not None:
                write_answer(request_id, encode_answer(request_id, parts[index]), headers, out)

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
