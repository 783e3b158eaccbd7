"""A step's model call on the general path: hand the batch off, then write each request's answer.

The call runs wherever the agent's `calls` put it (`model_calls.py`): at once
in the test driver, on the model's threads in the worker. What it returns is
written by `finish`, on the loop: an answer per request, or an error record
naming why (a model failure, bad input, a timeout, a refusal).
"""

from __future__ import annotations

import time
from typing import Protocol

from engine.codec import CodecError, encode_avro
from engine.messages import ErrorKind, InferenceMessage, Tensor
from engine.observability.spans import NodeSpans
from engine.operators.batch import Batcher
from engine.operators.model_call import call_model
from engine.runtime import metrics
from engine.runtime.arrivals import Ready
from engine.runtime.errors import ModelRefused, ModelTimedOut
from engine.runtime.experiment_models import ExperimentModel
from engine.runtime.failures import FailureWriter
from engine.runtime.model_calls import ModelCalls
from engine.runtime.model_threads import Work
from engine.runtime.offsets import OffsetTracker
from engine.runtime.records import Outgoing
from engine.runtimes.base import ModelRuntime
from engine.runtimes.errors import ModelInputError
from engine.topology.graph import Node, Source


class CallingStep(Protocol):
    """What a model call needs of the step making it (a NodeAgent is one)."""

    node: Node
    model: ModelRuntime | None
    label: str
    batcher: Batcher[Ready]
    calls: ModelCalls
    tracker: OffsetTracker
    sources: tuple[Source, ...]
    fail: FailureWriter
    metrics: metrics.NodeMetrics
    spans: NodeSpans | None
    output_spans: NodeSpans | None

    def answer(
        self, request_id: str, value: bytes, headers: list[tuple[str, bytes]], out: list[Outgoing]
    ) -> None: ...


def error_kind(error: BaseException) -> ErrorKind:
    """Who should act on a failed call: the caller (bad input), an operator (timeout), the model."""
    if isinstance(error, ModelInputError):
        return "bad-input"
    if isinstance(error, ModelTimedOut | ModelRefused):
        return "timeout"
    return "model-failure"


def call_step_model(agent: CallingStep, batch: list[Ready], out: list[Outgoing]) -> None:
    """Hand `batch` to the agent's model; its answers are written once it returns."""
    model = agent.model
    assert model is not None, f"{agent.label} has no model"
    if len(batch) > 1 and not model.batchable and not model.shares_batch_answer:
        # One call a request anyway: hand each off alone, so each has its own timeout.
        for ready in batch:
            call_step_model(agent, [ready], out)
        return
    if isinstance(model, ExperimentModel):  # one candidate answers this request
        model, routed = model.route(batch[0], out)
        batch = [routed]
    requested = requested_outputs(agent, batch, model)
    whole_batch = agent.batcher.holds()
    submitted_ns = time.time_ns()

    def run() -> tuple[list, tuple[int, int], float]:
        started, wall = time.perf_counter(), time.time_ns()
        results = call_model(
            model,
            [ready.message.as_arrays() for ready in batch],
            requested,
            whole_batch=whole_batch,
        )
        return results, (wall, time.time_ns()), time.perf_counter() - started

    def finish(outcome: object, dropped: frozenset[int], out: list[Outgoing]) -> None:
        if isinstance(outcome, BaseException):  # timed out, refused: every request fails
            results: list = [outcome] * len(batch)
            model_call = (submitted_ns, time.time_ns())
        else:
            results, model_call, seconds = outcome  # type: ignore[misc]
            metrics.observe_model_call(model.name, seconds, len(batch))
        answered(agent, batch, results, model_call, dropped, out, model)

    refs = [record.ref for ready in batch for record in ready.records]
    agent.calls.submit(agent, model.name, Work(run, finish, refs, len(batch)), out)
    if whole_batch:  # the batch let go of its requests: the call holds them now
        for ready in batch:
            for record in ready.records:
                agent.tracker.release(record.ref)


def requested_outputs(
    agent: CallingStep, batch: list[Ready], model: ModelRuntime | None = None
) -> list[tuple[str, ...]] | None:
    """The OIP `outputs` of direct model calls, for models that answer them (a
    pipeline's request names the pipeline's outputs, not a step's). `model`: the one
    called, when not the agent's own (an experiment's candidate)."""
    model = model or agent.model
    if agent.node.pipeline or model is None or not model.takes_requested_outputs:
        return None
    return [ready.records[0].message("request").requested_outputs for ready in batch]


def answered(
    agent: CallingStep,
    batch: list[Ready],
    results: list,
    model_call: tuple[int, int],
    dropped: frozenset[int],
    out: list[Outgoing],
    model: ModelRuntime | None = None,
) -> None:
    """Write each request's answer, or the error record saying why it has none. `model`:
    the one that answered, when not the agent's own (an experiment's candidate)."""
    model = model or agent.model
    assert model is not None
    if agent.spans is not None:
        agent.spans.answered(
            batch,
            results,
            model_call,
            len(agent.sources) > 1,
            agent.batcher.holds(),
            agent.output_spans,
        )
    for ready, result in zip(batch, results, strict=True):
        first = ready.records[0]
        if first.partition in dropped:
            continue  # revoked while the model ran: its new owner answers it
        request_id = ready.message.id
        if isinstance(result, Exception):
            out.extend(
                agent.fail(request_id, "model", result, error_kind(result), first, ready.headers)
            )
            continue
        if not result:
            continue  # an empty response is not forwarded (Seldon: passEmptyResponses false)
        try:
            tensors = tuple(Tensor.from_array(name, array) for name, array in result.items())
            response = InferenceMessage(request_id, tensors, "response", model_name=model.name)
            value = encode_avro(response)
        except CodecError as error:
            out.extend(agent.fail(request_id, "model-output", error, "model-failure", first))
            continue
        agent.answer(request_id, value, ready.headers, out)
        agent.metrics.answered(1, time.time() - ready.arrived_ms / 1000)
        if len(agent.sources) > 1:
            agent.metrics.join_wait.observe((ready.emitted_ms - ready.arrived_ms) / 1000)
