"""The model calls of the join lane: laid-out requests answered in one call per template.

The join lane (`engine.runtime.join_lane`) queues each joined request as a
`LaneReady`: its template and its tensors' contents, sliced from the records it
joined. Here the requests of a batch that share a template go to a batchable
model in one call, their contents joined into one column per tensor, and each
answer is laid out from a template of its own, as the fast lane lays them
(`engine.runtime.lane`); an unbatchable model is called once a request, as the
general path calls it, and its failure becomes that request's error records.

Each call is handed to the step's `calls` as a `Work` (`model_calls.py`), as
the fast lane's and the general path's are: in the worker it runs on the
model's threads, under the model's timeout and in-flight cap, and its answers
are written by `finish` on the loop, in the step's submission order. A merged
call that raises, or answers in a shape that does not split, is made again on
the same thread as the general path makes it (`call_model`: merged, then
request by request), so its errors are the general path's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engine.codec import CodecError, encode_avro
from engine.codec.columnar import Layout, LayoutMatcher
from engine.messages import ErrorKind, InferenceMessage, Tensor
from engine.operators.batch import Batcher
from engine.operators.model_call import call_model
from engine.runtime import metrics
from engine.runtime.arrivals import Ready
from engine.runtime.failures import FailureWriter
from engine.runtime.lane import answer_layout
from engine.runtime.model_calls import ModelCalls, Work
from engine.runtime.offsets import OffsetTracker
from engine.runtime.records import Outgoing, Record
from engine.runtime.step_call import error_kind
from engine.runtimes.base import ModelRuntime


class AnsweringStep(Protocol):
    """What the calls need of the agent they answer for (a NodeAgent is one)."""

    batcher: Batcher[Any]
    calls: ModelCalls
    tracker: OffsetTracker
    metrics: metrics.NodeMetrics

    def answer(
        self, request_id: str, value: bytes, headers: list[tuple[str, bytes]], out: list[Outgoing]
    ) -> None: ...


@dataclass(frozen=True, eq=False)
class Template:
    """A joined request of one combination of layouts: its layout and batch axis."""

    layout: Layout
    dtypes: tuple[np.dtype, ...]
    shapes: tuple[tuple[int, ...], ...]
    rows: int | None
    """The first dimension every tensor shares (the batch axis), or None: no merged call."""


@dataclass(slots=True)
class LaneReady:
    """A joined request on the lane, on its way to the model (through the agent's batcher)."""

    template: Template
    request_id: str
    contents: list[bytes]
    headers: list[tuple[str, bytes]]
    records: list[Record]
    arrived_ms: int
    emitted_ms: int


class LaneCalls:
    def __init__(
        self,
        step: AnsweringStep,
        model: ModelRuntime | None,
        failures: FailureWriter,
        *,
        joins: bool,
    ) -> None:
        self.step = step
        self.model = model
        self.failures = failures
        """The agent's: a request its model failed on becomes these error records."""
        self.joins = joins
        """The step joins several sources: its join wait is observed."""
        self._answers: dict[tuple, Layout | None] = {}
        self._calls = metrics.ModelCalls(model.name) if model is not None else None

    def call(self, batch: list[Any], out: list[Outgoing]) -> list[Ready]:
        """Hand the batch's lane requests to the step's `calls`: one model call per template
        for a batchable model, else one per request (as the general path calls them); the
        general path's requests are returned, for it to answer."""
        rest: list[Ready] = []
        groups: dict[int, list[LaneReady]] = {}
        alone: list[LaneReady] = []
        model = self.model
        assert model is not None
        for ready in batch:
            if type(ready) is not LaneReady:
                rest.append(ready)
            elif model.batchable and ready.template.rows is not None:
                groups.setdefault(id(ready.template), []).append(ready)
            else:
                alone.append(ready)
        most = model.max_batch_size
        for group in groups.values():
            if len(group) == 1:
                alone.append(group[0])
                continue
            for start in range(0, len(group), most or len(group)):
                self._submit(group[start : start + most] if most else group, out, merged=True)
        if alone:
            if model.batchable:
                self._submit(alone, out, merged=False)
            else:  # one call a request anyway: each handed off alone, with its own timeout
                for ready in alone:
                    self._submit([ready], out, merged=False)
        step = self.step
        if step.batcher.holds():  # the batch let go of its requests: the calls hold them now
            for ready in batch:
                if type(ready) is LaneReady:
                    for record in ready.records:
                        step.tracker.release(record.ref)
        return rest

    def _submit(self, part: list[LaneReady], out: list[Outgoing], *, merged: bool) -> None:
        """Hand `part` to the step's `calls` as one `Work`: `merged`, one model call on the
        template's columns, else `call_model` (as the general path calls the model). A merged
        call that raises, or answers in a shape that does not split, is made again by
        `call_model` on the same thread, as the general path would make it."""
        model = self.model
        assert model is not None
        count, rows = len(part), part[0].template.rows

        def run() -> tuple[dict | None, list | None, float]:
            started = time.perf_counter()
            if merged:
                try:
                    outputs = model.predict(_columns(part))
                except Exception:  # call_model finds which request fails, and says why
                    outputs = None
                if outputs is not None and _splits(outputs, count, rows):
                    return outputs, None, time.perf_counter() - started
            results = call_model(model, [_arrays(ready) for ready in part])
            return None, results, time.perf_counter() - started

        def finish(outcome: object, dropped: frozenset[int], out: list[Outgoing]) -> None:
            self._finish(part, outcome, dropped, out)

        refs = [record.ref for ready in part for record in ready.records]
        self.step.calls.submit(self.step, model.name, Work(run, finish, refs, count), out)

    def _finish(
        self, part: list[LaneReady], outcome: object, dropped: frozenset[int], out: list[Outgoing]
    ) -> None:
        """On the loop: write each request's answer, or the error record saying why it has
        none (a timeout, a refusal, the model's failure); revoked partitions are skipped."""
        assert self._calls is not None
        if isinstance(outcome, BaseException):  # timed out or refused: every request fails
            kind = error_kind(outcome)
            for ready in part:
                if ready.records[0].partition not in dropped:
                    self._fail(ready, out, "model", outcome, kind, ready.headers)
            return
        outputs, results, seconds = outcome  # type: ignore[misc]
        count = len(part)
        self._calls.observe(seconds, count)
        if results is None:
            if not outputs:
                return  # an empty answer is not forwarded (as on the general path)
            self._answer(part, outputs, dropped, out)
            return
        self._write_each(part, results, dropped, out)

    def _answer(
        self, part: list[LaneReady], outputs: dict, dropped: frozenset[int], out: list[Outgoing]
    ) -> None:
        """Split a merged call's outputs into each request's answer, laid out from a template
        where their datatypes allow (else encoded as the general path encodes them)."""
        model = self.model
        assert model is not None
        count, rows = len(part), part[0].template.rows
        answer = self._answer_layout(model.name, outputs, count, rows)
        if answer is None:  # BYTES, say: each request's rows, encoded as the general path does
            assert rows is not None  # `_splits` said so
            each = [
                {n: a[i * rows : (i + 1) * rows] for n, a in outputs.items()} for i in range(count)
            ]
            self._write_each(part, each, dropped, out)
            return
        answered = []
        contents = [np.ascontiguousarray(array).tobytes() for array in outputs.values()]
        strides = [len(data) // count for data in contents]
        slicing = list(zip(contents, strides, strict=True))  # one zip, not one a request
        step = self.step
        for index, ready in enumerate(part):
            if dropped and ready.records[0].partition in dropped:
                continue
            parts = [data[index * s : (index + 1) * s] for data, s in slicing]
            step.answer(
                ready.request_id, answer.encode(ready.request_id, parts), ready.headers, out
            )
            answered.append(ready)
        self._done(answered)

    def _write_each(
        self, part: list[LaneReady], results: list, dropped: frozenset[int], out: list[Outgoing]
    ) -> None:
        """Each request's own result: its answer, or the error record of its failure."""
        answered = []
        for ready, result in zip(part, results, strict=True):
            if ready.records[0].partition in dropped:
                continue  # revoked while the model ran: its new owner answers it
            if isinstance(result, Exception):
                self._fail(ready, out, "model", result, error_kind(result), ready.headers)
            elif result:  # an empty answer is not forwarded (as on the general path)
                value = self._encoded(ready, result, out)
                if value is not None:
                    self.step.answer(ready.request_id, value, ready.headers, out)
                    answered.append(ready)
        self._done(answered)

    def _encoded(self, ready: LaneReady, result: dict, out: list[Outgoing]) -> bytes | None:
        """One request's answer, laid out, or else encoded as the general path encodes it
        (BYTES, say); None: it cannot be (its error records are written)."""
        model = self.model
        assert model is not None
        answer = self._answer_layout(model.name, result, 1, None)
        if answer is not None:
            parts = [np.ascontiguousarray(array).tobytes() for array in result.values()]
            return answer.encode(ready.request_id, parts)
        try:
            tensors = tuple(Tensor.from_array(name, array) for name, array in result.items())
            response = InferenceMessage(
                ready.request_id, tensors, "response", model_name=model.name
            )
            return encode_avro(response)
        except CodecError as error:
            self._fail(ready, out, "model-output", error, "model-failure", None)
            return None

    def _done(self, answered: list[LaneReady]) -> None:
        """Count the answers (and, for a join, how long their arrivals waited)."""
        count = len(answered)
        if count:
            step = self.step
            arrived = sum(ready.arrived_ms for ready in answered) / count
            step.metrics.answered(count, time.time() - arrived / 1000)
            if self.joins:
                waited = sum(ready.emitted_ms - ready.arrived_ms for ready in answered) / count
                metrics.observe_many(step.metrics.join_wait, waited / 1000, count)

    def _fail(
        self,
        ready: LaneReady,
        out: list[Outgoing],
        stage: str,
        error: Exception,
        kind: ErrorKind,
        headers: list[tuple[str, bytes]] | None,
    ) -> None:
        record = ready.records[0]
        out.extend(self.failures(ready.request_id, stage, error, kind, record, headers))

    def _answer_layout(
        self, model_name: str, outputs: dict, count: int, rows: int | None
    ) -> Layout | None:
        """One request's answer layout: as shaped for one request, else when the outputs
        split evenly into `count` answers of `rows` rows."""
        key = []
        alone = count == 1
        for name, array in outputs.items():
            if not isinstance(array, np.ndarray) or array.ndim == 0:
                return None
            if not alone and array.shape[0] != count * (rows or 0):
                return None
            key.append((name, array.dtype.str, array.shape if alone else array.shape[1:]))
        cache_key = (model_name, None if alone else rows, tuple(key))
        if cache_key not in self._answers:
            if len(self._answers) >= LayoutMatcher.MAX_LAYOUTS * 16:
                self._answers.clear()
            self._answers[cache_key] = answer_layout(model_name, None if alone else rows, outputs)
        return self._answers[cache_key]


def _columns(part: list[LaneReady]) -> dict[str, np.ndarray]:
    """The requests' contents joined into one column per tensor of their template."""
    template, count = part[0].template, len(part)
    inputs = {}
    for index, tensor in enumerate(template.layout.tensors):
        joined = b"".join([ready.contents[index] for ready in part])
        shape = template.shapes[index]
        inputs[tensor.name] = np.ndarray(
            (count * shape[0], *shape[1:]), template.dtypes[index], joined
        )
    return inputs


def _arrays(ready: LaneReady) -> dict[str, np.ndarray]:
    """One request's tensors, as the general path decodes them."""
    template = ready.template
    return {
        tensor.name: np.ndarray(shape, dtype, data)
        for tensor, data, dtype, shape in zip(
            template.layout.tensors, ready.contents, template.dtypes, template.shapes, strict=True
        )
    }


def _splits(outputs: dict, count: int, rows: int | None) -> bool:
    """The merged call's outputs split into `count` answers of `rows` rows each (as
    `call_model` splits them)."""
    return all(
        isinstance(array, np.ndarray) and array.ndim > 0 and array.shape[0] == count * (rows or 0)
        for array in outputs.values()
    )
