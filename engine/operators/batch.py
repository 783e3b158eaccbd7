"""Gather ready requests for one model call: `batch.size` and `batch.windowMs`.

Without a batch spec, the requests that became ready together (from one
consumed chunk of records) go to the model together. With one, requests wait
until `size` are gathered or the oldest has waited `window_ms`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

from engine.topology.graph import Batch

Item = TypeVar("Item")


class Batcher(Generic[Item]):
    def __init__(self, spec: Batch | None) -> None:
        self.size = spec.size if spec and spec.size else None
        self.window_ms = spec.window_ms if spec and spec.window_ms else None
        self._waiting: list[Item] = []
        self._oldest_ms: int | None = None

    def __len__(self) -> int:
        return len(self._waiting)

    def holds(self) -> bool:
        """Whether requests may wait here across consumed chunks."""
        return self.size is not None or self.window_ms is not None

    def process(self, item: Item, now_ms: int) -> list[list[Item]]:
        """Add a ready request; returns the batches now complete."""
        if not self._waiting:
            self._oldest_ms = now_ms
        self._waiting.append(item)
        if self.size is not None and len(self._waiting) >= self.size:
            return [self._take()]
        return []

    def flush(self, now_ms: int, *, end_of_chunk: bool) -> list[list[Item]]:
        """Batches due now: everything at the end of a chunk when not holding, or on window expiry."""
        if not self._waiting:
            return []
        if not self.holds() and end_of_chunk:
            return [self._take()]
        oldest_ms = self._oldest_ms if self._oldest_ms is not None else now_ms
        if self.window_ms is not None and now_ms - oldest_ms >= self.window_ms:
            return [self._take()]
        if self.size is not None and self.window_ms is None and end_of_chunk:
            # A size without a window would wait forever at low traffic; Seldon's
            # batcher flushes what it has when no more is coming, and so do we.
            return [self._take()]
        return []

    def next_deadline_ms(self) -> int | None:
        if not self._waiting or self.window_ms is None or self._oldest_ms is None:
            return None
        return self._oldest_ms + self.window_ms

    def drain(self) -> list[Item]:
        items, self._waiting, self._oldest_ms = self._waiting, [], None
        return items

    def retain(self, keep: Callable[[Item], bool]) -> None:
        """Keep only the waiting requests for which `keep` holds (the rest went elsewhere)."""
        self._waiting = [item for item in self._waiting if keep(item)]
        if not self._waiting:
            self._oldest_ms = None

    def _take(self) -> list[Item]:
        if self.size is not None and len(self._waiting) > self.size:
            batch, self._waiting = self._waiting[: self.size], self._waiting[self.size :]
            return batch
        return self.drain()
