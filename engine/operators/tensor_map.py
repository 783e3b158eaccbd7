"""Take a source's tensors from a message and rename them by the tensorMap.

A source that names one tensor takes only that tensor; a message without it
is dropped for that edge, which is how conditional routing works (a model that
outputs only OUTPUT1 fires only the steps that read OUTPUT1). Joined sources
concatenate their tensors; two tensors landing on one name in a model's
request is an error that says which sources collide and how to fix it (a
pipeline's output keeps both, as Seldon does).
"""

from __future__ import annotations

from collections.abc import Iterable

from engine.messages import Tensor
from engine.operators.errors import TensorNameClash
from engine.topology.graph import Source

__all__ = ["TensorNameClash", "merge", "select"]


def select(source: Source, tensors: tuple[Tensor, ...]) -> tuple[Tensor, ...] | None:
    """The source's tensors, renamed; None when the one it names is absent."""
    wanted = source.ref.tensor
    if wanted is not None:
        for tensor in tensors:
            if tensor.name == wanted:
                return (_renamed(tensor, source.rename(wanted)),)
        return None
    if not source.renames:
        return tensors
    return tuple(_renamed(tensor, source.rename(tensor.name)) for tensor in tensors)


def merge(
    parts: Iterable[tuple[str, tuple[Tensor, ...]]], *, unique: bool = True
) -> tuple[Tensor, ...]:
    """Concatenate the tensors of joined sources (labelled for error messages).

    `unique`: a name may come once (a model's inputs). A pipeline's output passes
    repeated names on, in order, as Seldon answers them."""
    merged: list[Tensor] = []
    if not unique:
        for _, tensors in parts:
            merged.extend(tensors)
        return tuple(merged)
    origin: dict[str, str] = {}
    for label, tensors in parts:
        for tensor in tensors:
            if tensor.name in origin:
                raise TensorNameClash(tensor.name, origin[tensor.name], label)
            origin[tensor.name] = label
            merged.append(tensor)
    return tuple(merged)


def _renamed(tensor: Tensor, name: str) -> Tensor:
    if name == tensor.name:
        return tensor
    return Tensor(name, tensor.datatype, tensor.shape, tensor.data, tensor.parameters)
