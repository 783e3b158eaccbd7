"""The model calls of the join lane: laid-out requests answered in one call per template.

The join lane (`engine.runtime.join_lane`) queues each joined request as a
`LaneReady`: its template and its tensors' contents, sliced from the records it
joined. Here the requests of a batch that share a template go to a batchable
model in one call, their contents joined into one column per tensor, and each
answer is laid out from a template of its own, as the fast lane lays them
(`engine.runtime.lane`); an unbatchable model is called once a request, as the
general path calls it, and its failure becomes that request's error records.
Whatever cannot be answered so (a merged call that raises, answers of another
shape) goes back to the general path, decoded.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engine.codec import CodecError, encode_avro, fast_avro
from engine.codec.columnar import Layout, LayoutMatcher
from engine.messages import ErrorKind, InferenceMessage, Tensor
from engine.operators.batch import Batcher
from engine.operators.model_call import call_model
from engine.runtime import metrics
from engine.runtime.arrivals import Ready
from engine.runtime.failures import FailureWriter
from engine.runtime.lane import answer_layout
from engine.runtime.offsets import OffsetTracker
from engine.runtime.records import Outgoing, Record
from engine.runtimes.base import ModelRuntime
from engine.runtimes.errors import ModelInputError


class AnsweringStep(Protocol):
    """What the calls need of the agent they answer for (a NodeAgent is one)."""

    batcher: Batcher[Any]
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
        """Answer the batch's lane requests: one model call per template for a batchable
        model, else one per request (as the general path calls them); what is left (the
        general path's requests, and lane ones the lane could not answer) is returned."""
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
                part = group[start : start + most] if most else group
                if not self._answer(part, out):
                    rest.extend(self._ready(ready) for ready in part)
        if alone:
            self._answer_alone(alone, out)
        return rest

    def _ready(self, ready: LaneReady) -> Ready:
        """A lane request as the general path's (its request decoded from the template)."""
        value = ready.template.layout.encode(ready.request_id, ready.contents)
        message = fast_avro.decode(value, "request")
        return Ready(message, ready.headers, ready.records, ready.arrived_ms, ready.emitted_ms)

    def _answer(self, group: list[LaneReady], out: list[Outgoing]) -> bool:
        """Answer every request of `group` with one model call; False: the general path must."""
        step, model = self.step, self.model
        assert model is not None and self._calls is not None
        template, count = group[0].template, len(group)
        inputs = {}
        for index, tensor in enumerate(template.layout.tensors):
            joined = b"".join([ready.contents[index] for ready in group])
            shape = template.shapes[index]
            inputs[tensor.name] = np.ndarray(
                (count * shape[0], *shape[1:]), template.dtypes[index], joined
            )
        started = time.perf_counter()
        try:
            outputs = model.predict(inputs)
        except Exception:  # the general path finds which request fails, and says why
            return False
        self._calls.observe(time.perf_counter() - started, count)
        if outputs:
            answer = self._answer_layout(model.name, outputs, count, template.rows)
            if answer is None:
                return False
            contents = [np.ascontiguousarray(array).tobytes() for array in outputs.values()]
            strides = [len(data) // count for data in contents]
            slicing = list(zip(contents, strides, strict=True))  # one zip, not one a request
            for index, ready in enumerate(group):
                parts = [data[index * s : (index + 1) * s] for data, s in slicing]
                step.answer(
                    ready.request_id, answer.encode(ready.request_id, parts), ready.headers, out
                )
        self._done(group, group if outputs else [])
        return True

    def _answer_alone(self, readies: list[LaneReady], out: list[Outgoing]) -> None:
        """Requests the model gets as the general path gives them (`call_model`: one call
        each for an unbatchable model, merged where a batchable one can be): a failure, or
        an answer that cannot be encoded, is that request's own."""
        model = self.model
        assert model is not None and self._calls is not None
        requests = []
        for ready in readies:
            template = ready.template
            requests.append(
                {
                    tensor.name: np.ndarray(shape, dtype, data)
                    for tensor, data, dtype, shape in zip(
                        template.layout.tensors,
                        ready.contents,
                        template.dtypes,
                        template.shapes,
                        strict=True,
                    )
                }
            )
        started = time.perf_counter()
        results = call_model(model, requests)
        self._calls.observe(time.perf_counter() - started, len(readies))
        answered = []
        for ready, result in zip(readies, results, strict=True):
            if isinstance(result, Exception):
                kind: ErrorKind = (
                    "bad-input" if isinstance(result, ModelInputError) else "model-failure"
                )
                self._fail(ready, out, "model", result, kind, ready.headers)
            elif result:  # an empty answer is not forwarded (as on the general path)
                value = self._encoded(ready, result, out)
                if value is not None:
                    self.step.answer(ready.request_id, value, ready.headers, out)
                    answered.append(ready)
        self._done(readies, answered)

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

    def _done(self, group: list[LaneReady], answered: list[LaneReady]) -> None:
        """Release what a batch window held; count the answers."""
        step = self.step
        if step.batcher.holds():
            for ready in group:
                for record in ready.records:
                    step.tracker.release(record.ref)
        count = len(answered)
        if count:
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
