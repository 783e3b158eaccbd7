"""Errors of the operators: a request the operators cannot carry on.

The agent turns each into an error record for that request (kind bad-input
or internal, as it judges); the stream goes on.
"""

from __future__ import annotations

from engine.errors import TensorfluxError


class OperatorError(TensorfluxError):
    """A request an operator cannot process."""


class TensorNameClash(OperatorError):
    """Joined sources deliver two tensors of one name."""

    def __init__(self, tensor: str, first: str, second: str) -> None:
        self.tensor = tensor
        self.sources = (first, second)
        if first == second:  # e.g. a chained pipeline that answers two tensors of one name
            super().__init__(
                f"tensor '{tensor}' appears twice in {first}; a model's inputs need distinct "
                "names: read the two tensors from the steps that make them, renamed by tensorMap"
            )
            return
        super().__init__(
            f"tensor '{tensor}' arrives from both {first} and {second}; "
            f"rename one of them with tensorMap"
        )
