"""Errors of the runtime: what a worker (or the test driver) could not do, built from fields."""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import TensorfluxError


class WorkerError(TensorfluxError):
    """Base class of the runtime's errors."""


class ModelUnavailable(WorkerError):
    """A pipeline names a model the worker does not have running."""

    def __init__(self, model: str, load_error: BaseException | None = None) -> None:
        self.model = model
        self.load_error = load_error
        if load_error is None:
            super().__init__(f"model '{model}' is not loaded")
        else:
            super().__init__(f"model '{model}' failed to load: {load_error}")


class TooManyRevisits(WorkerError):
    """A request of a cyclic pipeline came back to a step once more than maxStepRevisits allows."""

    def __init__(self, step: str, visits: int, max_revisits: int) -> None:
        self.step, self.visits, self.max_revisits = step, visits, max_revisits
        super().__init__(
            f"request visited step '{step}' {visits} times; maxStepRevisits is {max_revisits}"
        )


class JoinTimedOut(WorkerError):
    """A join the pipeline's answer needs closed its window with sources missing."""

    def __init__(self, missing: Iterable[str], arrived: Iterable[str], window_ms: int) -> None:
        self.missing, self.arrived, self.window_ms = tuple(missing), tuple(arrived), window_ms
        super().__init__(
            f"{', '.join(self.missing)} did not arrive within the join window ({window_ms} ms; "
            f"arrived: {', '.join(self.arrived) or 'nothing'}); the pipeline cannot answer "
            "without them"
        )


class ResourcesFailed(WorkerError):
    """Models or pipelines of a topology cannot run (the test driver refuses to start)."""

    def __init__(self, failures: Iterable[tuple[str, str, str]]) -> None:
        self.failures = tuple(failures)
        """(kind, name, reason) of each."""
        listed = "; ".join(f"{kind} '{name}': {reason}" for kind, name, reason in self.failures)
        super().__init__(f"cannot run {listed}")


class UnknownTopic(WorkerError):
    """A record was sent to a topic no agent of the topology reads."""

    def __init__(self, topic: str, read: Iterable[str]) -> None:
        self.topic = topic
        self.read = tuple(sorted(read))
        super().__init__(
            f"no step reads '{topic}'; the topics read are: {', '.join(self.read) or 'none'}"
        )


class UnknownResource(WorkerError):
    """A pipeline or model name the topology does not have."""

    def __init__(self, kind: str, name: str, known: Iterable[str]) -> None:
        self.kind, self.name = kind, name
        self.known = tuple(sorted(known))
        super().__init__(
            f"no {kind} '{name}' in the topology; {kind}s are: {', '.join(self.known) or 'none'}"
        )


class NoRecord(WorkerError, LookupError):
    """No record of a request on a topic (the test driver's `output`)."""

    def __init__(self, topic: str, request_id: str, present: Iterable[str]) -> None:
        self.topic, self.request_id = topic, request_id
        self.present = tuple(sorted(present))
        shown = ", ".join(self.present[:10]) + (" ..." if len(self.present) > 10 else "")
        super().__init__(
            f"no record for request '{request_id}' on {topic}; request ids there: {shown or 'none'}"
        )


class ModelTimedOut(WorkerError):
    """A model call ran past the model's `parameters: timeout`; its thread is abandoned."""

    def __init__(self, model: str, timeout_s: float) -> None:
        self.model, self.timeout_s = model, timeout_s
        super().__init__(
            f"model '{model}' timed out after {timeout_s:g}s (its spec's parameters timeout); "
            "the call was abandoned"
        )


class ModelRefused(WorkerError):
    """Every thread a model may use is stuck in a call past its timeout: calls are refused."""

    def __init__(self, model: str, stuck: int, timeout_s: float) -> None:
        self.model, self.stuck, self.timeout_s = model, stuck, timeout_s
        super().__init__(
            f"model '{model}' refused the call: {stuck} of its calls are stuck past its timeout "
            f"of {timeout_s:g}s; it takes calls again once one of them returns"
        )
