"""Many messages of one layout at once: the step agents' fast lane.

Producers send the same tensors again and again: only the request id and the
tensor contents change from record to record. A `Layout` is the rest of such
a record (every byte that is not the id or contents). A record that fits a
known layout is decoded by slicing: its contents for tensor i of many records
join into one column, ready for one batched model call. Responses are
encoded the same way around: fixed bytes learnt once, id and contents put
between them.

Layouts are built from `avro_wire`'s pieces, laid out as `fast_avro` lays
them, and kept only when they reproduce the record byte for byte, so this path
writes and reads exactly what `fast_avro` (and so fastavro) does; anything unusual (parameters, BYTES
tensors, requested outputs) is left to the general path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from engine.codec import avro_wire, fast_avro
from engine.codec.errors import CodecError
from engine.dtypes import BYTES, dtype_of
from engine.messages import InferenceMessage, MessageKind, Tensor


@dataclass(frozen=True)
class TensorLayout:
    name: str
    datatype: str
    dtype: np.dtype
    shape: tuple[int, ...]
    nbytes: int


@dataclass(frozen=True)
class Layout:
    """A record minus its id and contents: `pieces[0]`, contents 0, `pieces[1]`, ..."""

    kind: MessageKind
    pieces: tuple[bytes, ...]
    tensors: tuple[TensorLayout, ...]
    offsets: tuple[tuple[int, int], ...]
    """(start, end) of each tensor's contents, counted from the end of the id."""
    size_after_id: int
    rows: int | None
    """The common first dimension of every tensor (the batch axis), or None."""

    def __hash__(self) -> int:
        """Computed once: the lanes look a layout up for every record."""
        cached = self.__dict__.get("_hash")
        if cached is None:
            cached = hash((self.kind, self.pieces, self.tensors, self.offsets))
            object.__setattr__(self, "_hash", cached)
        return cached

    @staticmethod
    def of(kind: MessageKind, pieces: list[bytes], tensors: tuple[TensorLayout, ...]) -> Layout:
        offsets, position = [], 0
        for piece, tensor in zip(pieces, tensors, strict=False):
            position += len(piece)
            offsets.append((position, position + tensor.nbytes))
            position += tensor.nbytes
        firsts = {t.shape[0] if t.shape else None for t in tensors}
        rows = firsts.pop() if len(firsts) == 1 else None
        return Layout(
            kind, tuple(pieces), tensors, tuple(offsets), position + len(pieces[-1]), rows
        )

    def encode(self, message_id: str, contents: list[bytes]) -> bytes:
        """The record of this layout with `message_id` and `contents` (one per tensor)."""
        pieces = self.pieces
        parts = [avro_wire.encode_string(message_id)]
        # Indexed, not zip(..., strict=False): a zip given a keyword costs more than the
        # loop for the few tensors of a record, and this runs for every record written.
        for index, content in enumerate(contents):
            parts.append(pieces[index])
            parts.append(content)
        parts.append(pieces[-1])
        return b"".join(parts)


def _parts(message: InferenceMessage) -> tuple[list[bytes], list[bytes]]:
    """Fixed pieces and contents of `message` as `fast_avro.encode` lays them out."""
    pieces: list[bytes] = []
    contents: list[bytes] = []
    current = [
        avro_wire.encode_string(message.model_name),
        avro_wire.encode_string(message.model_version),
        avro_wire.encode_parameters(message.parameters, None),
    ]
    if message.tensors:
        current.append(avro_wire.encode_long(len(message.tensors)))
    for tensor in message.tensors:
        data = tensor.data.tobytes()
        current += [
            avro_wire.encode_name(tensor.name),
            avro_wire.DATATYPE_WIRE[tensor.datatype],
            avro_wire.encode_shape(tensor.shape),
            avro_wire.END,
            avro_wire.encode_long(len(data)),
        ]
        pieces.append(b"".join(current))
        contents.append(data)
        current = []
    current.append(avro_wire.END)
    if message.kind == "request":
        current.append(avro_wire.END)  # no requested outputs
    pieces.append(b"".join(current))
    return pieces, contents


def layout_of(message: InferenceMessage) -> Layout | None:
    """The layout of `message`, or None when the fast lane does not take such messages."""
    if message.parameters or message.requested_outputs:
        return None
    if any(t.datatype == BYTES or t.parameters for t in message.tensors):
        return None
    pieces, _ = _parts(message)
    tensors = tuple(
        TensorLayout(t.name, t.datatype, t.data.dtype, t.shape, t.data.nbytes)
        for t in message.tensors
    )
    return Layout.of(message.kind, pieces, tensors)


def layout_for(
    kind: MessageKind, model_name: str, tensors: list[tuple[str, str, tuple[int, ...]]]
) -> Layout | None:
    """The layout of messages with these (name, datatype, shape) tensors, e.g. a model's answers."""
    message = InferenceMessage(
        "",
        tuple(Tensor(n, d, s, np.zeros(s, dtype=dtype_of(d))) for n, d, s in tensors),
        kind,
        model_name=model_name,
    )
    return layout_of(message)


def learn(payload: bytes, kind: MessageKind) -> Layout | None:
    """The layout of a record, if it has one this lane can use (and is valid at all)."""
    try:
        message = fast_avro.decode(payload, kind)
    except CodecError:
        return None
    layout = layout_of(message)
    if layout is None:
        return None
    pieces, contents = _parts(message)
    if layout.encode(message.id, contents) != payload:
        return None  # a non-canonical encoding (e.g. sized array blocks): no slicing
    return layout


class LayoutMatcher:
    """Finds the layout of each record among those seen before (a few per source)."""

    MAX_LAYOUTS = 8

    def __init__(self, kind: MessageKind) -> None:
        self.kind = kind
        self._known: list[Layout] = []

    def match(self, payload: bytes) -> tuple[Layout, str, int] | None:
        """(layout, request id, where the id ends) when `payload` fits a layout; else None."""
        id_start, id_end = _id_span(payload)
        if id_end < 0:
            return None
        rest = len(payload) - id_end
        for layout in self._known:
            if rest == layout.size_after_id and _fits(payload, id_end, layout):
                try:
                    return layout, payload[id_start:id_end].decode("utf-8"), id_end
                except UnicodeDecodeError:
                    return None
        layout = learn(payload, self.kind)
        if layout is None:
            return None
        if len(self._known) >= self.MAX_LAYOUTS:
            self._known.pop(0)
        self._known.append(layout)
        return layout, payload[id_start:id_end].decode("utf-8"), id_end


def _id_span(payload: bytes) -> tuple[int, int]:
    """Start and end of the id string; (-1, -1) when it is not a short, sane one."""
    if not payload:
        return -1, -1
    b = payload[0]
    if b < 0x80 and not b & 1:
        return 1, 1 + (b >> 1)
    if len(payload) > 1 and not b & 1 and payload[1] < 0x80:  # two-byte varint length
        length = ((b & 0x7F) | (payload[1] << 7)) >> 1
        return 2, 2 + length
    return -1, -1


def _fits(payload: bytes, id_end: int, layout: Layout) -> bool:
    pieces = layout.pieces
    position = id_end
    for index, (_, end) in enumerate(layout.offsets):
        if not payload.startswith(pieces[index], position):
            return False
        position = id_end + end
    return payload.startswith(pieces[-1], position)


def column(payloads: list[bytes], id_ends: list[int], layout: Layout, index: int) -> np.ndarray:
    """Tensor `index` of many records of one layout, stacked along axis 0."""
    start, end = layout.offsets[index]
    tensor = layout.tensors[index]
    joined = b"".join([p[i + start : i + end] for p, i in zip(payloads, id_ends, strict=True)])
    shape = (len(payloads) * tensor.shape[0], *tensor.shape[1:])
    return np.frombuffer(joined, dtype=tensor.dtype).reshape(shape)
