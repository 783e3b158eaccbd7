"""Errors of tensors and messages, and `CodecError`, the root of every data error.

They sit below `engine.messages` (which raises them when a Tensor or an
InferenceMessage is built from parts that disagree) and below `engine.codec`
(whose payload errors derive from `CodecError`), so neither imports the other
to name a failure. Messages are built from fields (the tensor, the datatype)
so the runtime can turn them into error records and a reader can fix the
producer. All of them mean "bad input": retrying the same bytes fails the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.errors import TensorfluxError


class CodecError(TensorfluxError):
    """A payload, tensor or header the codec cannot read or write.

    `tensor` names the tensor at fault when there is one, so error records can
    point at it; the message always says what is wrong and, where it can, what
    was expected instead.
    """

    def __init__(self, problem: str, *, tensor: str | None = None) -> None:
        self.problem = problem
        self.tensor = tensor
        super().__init__(f"tensor {tensor!r}: {problem}" if tensor is not None else problem)


class UnknownDatatype(CodecError):
    """A datatype that is not one of the Open Inference Protocol's."""

    def __init__(self, datatype: object, *, tensor: str | None, known: Iterable[str]) -> None:
        self.datatype = datatype
        super().__init__(
            f"unknown datatype {datatype!r}; known datatypes are: {', '.join(known)}",
            tensor=tensor,
        )


class ContentsMismatch(CodecError):
    """The contents do not fit the shape and datatype: wrong byte count,
    wrong number of elements, a BOOL byte that is neither 0 nor 1, a value out
    of range for the datatype, an array whose dtype does not match."""


class InvalidTensor(CodecError):
    """A Tensor built from parts that do not agree (dtype, shape, name type)."""


class InvalidMessage(CodecError):
    """An InferenceMessage or ErrorRecord built from invalid parts."""


class DuplicateTensor(CodecError):
    """Two tensors of one message share a name, so a name would be ambiguous."""


class TensorNotFound(CodecError):
    """A tensor asked for by name that the message does not carry."""

    def __init__(self, name: str, present: Iterable[str]) -> None:
        self.present = tuple(present)
        listed = ", ".join(repr(n) for n in self.present) or "none"
        super().__init__(f"not in this message; tensors present: {listed}", tensor=name)
