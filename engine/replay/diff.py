"""Comparing a replayed answer with the recorded original of its request.

Integers, booleans and BYTES compare exactly; floats with numpy `allclose`
semantics (|replayed - original| <= atol + rtol * |original|, NaN equal to
NaN). A tensor one side lacks, or with another datatype or shape, is changed.
Answers whose bytes after the id are the same are the same without decoding
them twice (the common case when nothing changed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.codec import CodecError, decode_payload
from engine.codec.columnar import Layout, LayoutMatcher
from engine.dtypes import BOOL, BYTES
from engine.messages import InferenceMessage, Tensor
from engine.replay.requests import avro_id_end

FLOATS = frozenset({"FP16", "FP32", "FP64"})


@dataclass(frozen=True)
class Tolerance:
    atol: float = 1e-8
    """numpy's default absolute tolerance."""
    rtol: float = 1e-5
    """numpy's default relative tolerance."""


@dataclass(frozen=True)
class TensorDiff:
    changed: bool
    max_abs_diff: float | None
    """None where no number says it (BYTES, another shape or datatype, one side missing)."""


def compare_tensors(replayed: Tensor, original: Tensor, tolerance: Tolerance) -> TensorDiff:
    if replayed.datatype != original.datatype or replayed.shape != original.shape:
        return TensorDiff(True, None)
    if replayed.datatype == BYTES:
        return TensorDiff(replayed.data.tolist() != original.data.tolist(), None)
    a, b = replayed.data, original.data
    if replayed.datatype in FLOATS:
        wide_a, wide_b = a.astype(np.float64), b.astype(np.float64)
        close = np.allclose(
            wide_a, wide_b, rtol=tolerance.rtol, atol=tolerance.atol, equal_nan=True
        )
        with np.errstate(invalid="ignore"):
            alike = (np.isnan(wide_a) & np.isnan(wide_b)) | (wide_a == wide_b)
            gaps = np.where(alike, 0.0, np.abs(wide_a - wide_b))
        if not np.all(np.isfinite(gaps)):
            return TensorDiff(True, None)  # a NaN or an infinity where the other side has none
        return TensorDiff(not close, float(gaps.max()) if gaps.size else 0.0)
    if np.array_equal(a, b):
        return TensorDiff(False, 0.0)
    if replayed.datatype == BOOL:
        return TensorDiff(True, 1.0)
    if a.dtype == np.uint64:
        gaps = np.abs(a.astype(np.float64) - b.astype(np.float64))
    else:
        gaps = np.abs(a.astype(np.int64) - b.astype(np.int64))
    return TensorDiff(True, float(gaps.max()) if gaps.size else 0.0)


def compare_messages(
    replayed: InferenceMessage, original: InferenceMessage, tolerance: Tolerance
) -> dict[str, TensorDiff]:
    """Per tensor name of either side."""
    theirs = {t.name: t for t in original.tensors}
    ours = {t.name: t for t in replayed.tensors}
    out: dict[str, TensorDiff] = {}
    for name in dict.fromkeys([*ours, *theirs]):
        if name not in ours or name not in theirs:
            out[name] = TensorDiff(True, None)
        else:
            out[name] = compare_tensors(ours[name], theirs[name], tolerance)
    return out


def same_bytes(replayed: bytes, original: bytes) -> bool:
    """Whether two Avro answers are identical after their id (JSON answers never are)."""
    a, b = avro_id_end(replayed), avro_id_end(original)
    return a is not None and b is not None and replayed[a:] == original[b:]


_SAME = TensorDiff(False, 0.0)


@dataclass
class TensorTally:
    changed: int = 0
    max_abs_diff: float | None = None
    """The largest difference a number says; None while none has (BYTES, missing tensors)."""

    def add(self, diff: TensorDiff) -> None:
        self.changed += diff.changed
        if diff.max_abs_diff is None:
            return
        if self.max_abs_diff is None or diff.max_abs_diff > self.max_abs_diff:
            self.max_abs_diff = diff.max_abs_diff


@dataclass
class Diff:
    """What the comparison found over a run."""

    tolerance: Tolerance
    same: int = 0
    changed: int = 0
    no_original: int = 0
    changed_ids: list[str] = field(default_factory=list)
    """Original request ids whose answer changed."""
    tensors: dict[str, TensorTally] = field(default_factory=dict)
    first_divergent_step: dict[str, int] = field(default_factory=dict)
    _layouts: LayoutMatcher = field(default_factory=lambda: LayoutMatcher("response"), repr=False)
    _tallied: set[Layout] = field(default_factory=set, repr=False)
    """Layouts an unchanged answer has had: its tensors' tallies were touched then, and
    touching them again changes nothing (an unchanged tensor counts 0 changed and a
    difference of 0.0; a tally's largest difference only grows), so later ones only count."""

    def add(
        self,
        original_id: str,
        replayed: tuple[bytes, list[tuple[str, bytes]]],
        original: tuple[bytes, list[tuple[str, bytes]]] | None,
    ) -> bool:
        """Compare one answered request (`original` None: it has no original answer);
        True when its answer changed. Values are (payload, headers)."""
        if original is None:
            self.no_original += 1
            return False
        found = self._layouts.match(replayed[0])
        if found is not None:  # the common case, laid out: compared after the ids as bytes
            layout, _, end = found
            value = original[0]
            # Hot path (every answer): an id under 64 bytes is one length byte (zigzag).
            first = value[0] if value else 1
            start = 1 + (first >> 1) if first < 0x80 and not first & 1 else avro_id_end(value)
            if start is not None and replayed[0][end:] == value[start:]:
                if layout in self._tallied:
                    self.same += 1
                else:
                    self._unchanged(layout)
                return False
        elif same_bytes(replayed[0], original[0]):
            names = self._names(replayed)
            if names is not None:
                for name in names:
                    self._tally(name).add(_SAME)
                self.same += 1
                return False
        try:
            ours: InferenceMessage | None = decode_payload(replayed[0], replayed[1], "response")
        except CodecError:
            ours = None
        try:
            theirs = decode_payload(original[0], original[1], "response")
        except CodecError:
            self.no_original += 1  # the recorded answer is unreadable: nothing to compare with
            return False
        if ours is None:
            diffs = {t.name: TensorDiff(True, None) for t in theirs.tensors}
        else:
            diffs = compare_messages(ours, theirs, self.tolerance)
        for name, diff in diffs.items():
            self._tally(name).add(diff)
        if any(diff.changed for diff in diffs.values()) or not diffs and ours is None:
            self.changed += 1
            self.changed_ids.append(original_id)
            return True
        self.same += 1
        return False

    def _unchanged(self, layout: Layout) -> None:
        for tensor in layout.tensors:
            self._tally(tensor.name).add(_SAME)
        self._tallied.add(layout)
        self.same += 1

    def _names(self, answer: tuple[bytes, list[tuple[str, bytes]]]) -> list[str] | None:
        """The answer's tensor names, decoded (no layout fits it)."""
        try:
            return list(decode_payload(answer[0], answer[1], "response").names())
        except CodecError:
            return None

    def _tally(self, name: str) -> TensorTally:
        tally = self.tensors.get(name)
        if tally is None:
            tally = self.tensors[name] = TensorTally()
        return tally

    def to_json(self) -> dict[str, Any]:
        return {
            "same": self.same,
            "changed": self.changed,
            "no_original": self.no_original,
            "changed_ids": list(self.changed_ids),
            "tensors": {
                name: {"changed": t.changed, "max_abs_diff": t.max_abs_diff}
                for name, t in sorted(self.tensors.items())
            },
            "first_divergent_step": dict(sorted(self.first_divergent_step.items())),
        }
