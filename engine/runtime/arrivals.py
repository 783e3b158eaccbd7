"""What a node agent holds between a record's arrival and its model call.

An `Arrival` is one source's part of a request, decoded, waiting in the join;
a `Ready` is a joined request on its way to the model (through the batcher).
The join lane (`engine.runtime.join_lane`) keeps its own, undecoded kinds of
both in the same join and batcher, and turns them into these when it hands a
request to the general path.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.messages import InferenceMessage, MessageKind, Tensor
from engine.runtime.records import Record
from engine.topology.graph import Source


@dataclass(slots=True)
class Arrival:
    record: Record
    tensors: tuple[Tensor, ...]
    visits: dict[str, int]
    at_ms: int = 0
    """When its chunk was consumed."""


@dataclass(slots=True)
class Ready:
    """A joined request on its way to the model."""

    message: InferenceMessage
    headers: list[tuple[str, bytes]]
    records: list[Record]
    arrived_ms: int = 0
    """When its first record's chunk was consumed."""
    emitted_ms: int = 0
    """When its join released it (to the batch, or the model)."""


def kind_of(source: Source) -> MessageKind:
    """Inputs topics carry requests, outputs topics responses."""
    return "request" if source.ref.port == "inputs" else "response"
