"""Errors of the model runtimes; messages are built from fields.

Three families, because the dataflow worker treats them differently:
`ModelLoadError` happens once at start-up (fix the YAML or the artifact),
`ModelInputError` means the request does not fit the model (the same record
fails again on retry), `ModelFailure` means the model itself broke.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import TensorfluxError


class ModelError(TensorfluxError):
    """Base of the runtime errors; `model` names the model at fault."""

    def __init__(self, model: str, problem: str) -> None:
        self.model = model
        self.problem = problem
        super().__init__(f"model {model!r}: {problem}")


class ModelLoadError(ModelError):
    """A model that cannot be loaded: no artifact, a bad file, a failing `load()`.

    `transient`: it may load later with nothing changed (a remote server not up or
    not ready yet), so the worker tries again now and then."""

    def __init__(
        self, model: str, path: str | None, cause: str, *, transient: bool = False
    ) -> None:
        self.path = path
        self.cause = cause
        self.transient = transient
        where = f" from {path}" if path is not None else ""
        super().__init__(model, f"cannot load{where}: {cause}")


class ModelInputError(ModelError):
    """Request tensors that do not fit the model's signature (checked before running it)."""

    def __init__(self, model: str, problem: str, *, tensor: str | None = None) -> None:
        self.tensor = tensor
        super().__init__(model, f"input {tensor!r}: {problem}" if tensor is not None else problem)


class MissingInputs(ModelInputError):
    """Inputs the model declares but the request lacks; lists both sides."""

    def __init__(
        self, model: str, missing: Iterable[str], expected: Iterable[str], given: Iterable[str]
    ) -> None:
        self.missing = tuple(missing)
        self.expected = tuple(expected)
        self.given = tuple(given)
        super().__init__(
            model,
            f"missing input tensor(s) {_names(self.missing)}; the model expects "
            f"{_names(self.expected)}, the request has {_names(self.given)}",
            tensor=self.missing[0] if len(self.missing) == 1 else None,
        )


class ModelFailure(ModelError):
    """The model raised (python) or onnxruntime failed; `cause` is the original text."""

    def __init__(self, model: str, cause: str, *, output: str | None = None) -> None:
        self.cause = cause
        self.output = output
        prefix = f"output {output!r}: " if output is not None else ""
        super().__init__(model, f"{prefix}{cause}")


class ModelUnreachable(ModelFailure):
    """A remote model's server could not be reached or did not answer in time. The
    requests are not at fault: every request of a merged call gets this error, and
    none is tried again alone (each would wait out the same timeout)."""


def _names(names: Iterable[str]) -> str:
    return ", ".join(repr(n) for n in names) or "none"
