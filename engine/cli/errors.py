"""Errors of the command line: what a command could not do, said in one line.

`engine.cli.main` prints any `TensorfluxError` as `tensorflux: error: ...` and
exits 1; these are the ones the commands raise themselves, each message built
from its fields.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import TensorfluxError


class CliError(TensorfluxError):
    """A command could not do what was asked."""


def _listed(names: Iterable[str], none: str = "none") -> str:
    return ", ".join(names) or none


class UnreadableFile(CliError):
    """A file named on the command line (`@FILE`) cannot be read."""

    def __init__(self, path: object, reason: str | None) -> None:
        self.path = path
        super().__init__(f"cannot read {path}: {reason}")


class BadInputs(CliError):
    """`--inputs` is not an inference request."""

    def __init__(self, problem: str) -> None:
        super().__init__(problem)

    @classmethod
    def not_json(cls, error: Exception) -> BadInputs:
        return cls(f"--inputs is not JSON: {error}")

    @classmethod
    def not_a_request(cls) -> BadInputs:
        return cls('--inputs must be {"inputs": [...]} or a list of tensors')


class BadRequest(CliError):
    """The request does not encode (a bad tensor, named)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(f"bad request: {error}")


class GatewayUnreachable(CliError):
    def __init__(self, url: str, error: Exception) -> None:
        self.url = url
        super().__init__(f"cannot reach the gateway at {url}: {error}")


class Refused(CliError):
    """The gateway answered an inference with an error status."""

    def __init__(self, kind: str, name: str, status: int | str, error: object) -> None:
        self.status = status  # an HTTP status, or a gRPC code's name
        super().__init__(f"{kind} '{name}' answered {status}: {error}")


class InferenceFailed(CliError):
    """The pipeline or model answered with an error record."""

    def __init__(self, kind: str, name: str, error_kind: str, reason: str) -> None:
        self.error_kind = error_kind
        super().__init__(f"{kind} '{name}' failed ({error_kind}): {reason}")


class NoReply(CliError):
    def __init__(self, topic: str, timeout_s: float, request_id: str) -> None:
        self.request_id = request_id
        super().__init__(f"no reply on {topic} within {timeout_s:g}s (request id {request_id})")


class BadReference(CliError):
    """An `inspect` REF that names no topic."""

    def __init__(self, ref: str, *, empty_pipeline: bool = False) -> None:
        self.ref = ref
        if empty_pipeline:
            super().__init__(f"empty pipeline name in {ref!r}")
        else:
            super().__init__(
                f"cannot read reference {ref!r}; use PIPELINE, PIPELINE.(inputs|outputs)[.TENSOR], "
                "PIPELINE.step.STEP or PIPELINE.step.STEP.(inputs|outputs)[.TENSOR]"
            )


class UnknownPipeline(CliError):
    """No pipeline of that name, where the command looked."""

    def __init__(self, pipeline: str, where: str, known: Iterable[str], none: str = "none") -> None:
        self.pipeline = pipeline
        super().__init__(f"no pipeline '{pipeline}' {where}; pipelines: {_listed(known, none)}")


class UnknownStep(CliError):
    def __init__(self, pipeline: str, step: str, known: Iterable[str]) -> None:
        self.step = step
        super().__init__(
            f"pipeline '{pipeline}' has no step '{step}' on the broker; steps: {_listed(known)}"
        )


class BadTime(CliError):
    def __init__(self, text: str) -> None:
        super().__init__(
            f"cannot read time {text!r}: give ISO 8601, epoch milliseconds or an age like '10m'"
        )
