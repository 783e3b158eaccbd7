"""Errors of the codec: every problem with a payload or a tensor is a `CodecError`.

The payload errors live here; `CodecError` and the errors of tensors and
messages live in `engine.tensor_errors` (below `engine.messages`, which raises
them) and are re-exported, so `engine.codec.errors` names every codec failure.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.tensor_errors import (
    CodecError,
    ContentsMismatch,
    DuplicateTensor,
    InvalidMessage,
    InvalidTensor,
    TensorNotFound,
    UnknownDatatype,
)


class MalformedPayload(CodecError):
    """The bytes are not a valid encoding of the schema: truncated, a bad
    length or union index, invalid UTF-8, bytes left over at the end."""


class InvalidShape(CodecError):
    """A shape with a negative or non-integer dimension."""


class InvalidJson(CodecError):
    """A payload that is not Open Inference Protocol V2 JSON (not JSON at all,
    a missing or mistyped field)."""


class UnsupportedSchemaVersion(CodecError):
    """A payload declaring a schema version this engine cannot read."""

    def __init__(self, version: str, header: str, supported: Iterable[str]) -> None:
        self.version = version
        super().__init__(
            f"payload declares schema version {version!r} in header {header!r}; "
            f"this engine reads version(s) {', '.join(supported)}: upgrade the engine "
            f"or produce with a supported version"
        )


__all__ = [
    "CodecError",
    "ContentsMismatch",
    "DuplicateTensor",
    "InvalidJson",
    "InvalidMessage",
    "InvalidShape",
    "InvalidTensor",
    "MalformedPayload",
    "TensorNotFound",
    "UnknownDatatype",
    "UnsupportedSchemaVersion",
]
