"""The selected requests' values within a memory budget, read back ahead of the sender.

The selection read keeps each selected record's value while the values held fit
the budget (`VALUE_BUDGET`, `ReplayRequest.value_budget`); past it a record keeps
only its place, time, original id and size. When all of them fit (the common
case), they are held until the run ends, as before, at no cost. When some were
not kept, the records to send are split where the first one without its value is
(in sending order): the values before it are sent as they are, and a reader
thread of its own (one consumer for the whole run) reads the rest back a chunk at
a time, each chunk waiting until the budget has room for it, so the sender finds
them read when it gets there; each value is let go once its request is made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from engine import headers as h
from engine.config import KafkaSettings
from engine.replay.errors import ReplayError
from engine.replay.reading import RangeReader, Recorded

T = TypeVar("T")
VALUE_BUDGET = 64 << 20
"""Bytes of selected values a replay holds at most (one value larger than it is held alone)."""
CHUNK_RECORDS = 5000
"""Records read back at a time, at most (and at most a quarter of the budget's bytes)."""


class Stopped(Exception):
    """The run was stopped while the sender waited for values being read back."""


class ValueBudget:
    """The bytes of values held, against a limit, and the most ever held."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"a replay's value budget must be 1 byte or more, got {limit}")
        self.limit = limit
        self.held = 0
        self.peak = 0
        self._room = threading.Condition()

    def keep(self, record: Recorded) -> None:
        """Hold the value of a record just read if it fits; else let it go."""
        size = len(record.value)
        if self.held + size <= self.limit:
            self.held += size
            self.peak = max(self.peak, self.held)
        else:
            let_go(record)

    def release(self, record: Recorded) -> None:
        """Let a held value go (nothing if it was not held)."""
        if record.size < 0:
            size = len(record.value)
            let_go(record)
            with self._room:
                self.held -= size
                self._room.notify_all()

    def take(self, size: int, stop: threading.Event) -> bool:
        """Wait until `size` more bytes fit (or nothing is held); False if stopped."""
        with self._room:
            while self.held and self.held + size > self.limit:
                if stop.is_set():
                    return False
                self._room.wait(0.05)
            self.held += size
            self.peak = max(self.peak, self.held)
            return True


def let_go(record: Recorded) -> None:
    """Keep a record's place, time, original id and value size; drop its value and headers."""
    if record.size >= 0:
        return
    record.size = len(record.value)
    record.value = b""
    request_id = None if record.key else h.header_value(record.headers, h.REQUEST_ID)
    record.headers = [(h.REQUEST_ID, request_id.encode())] if request_id else []


class ValueFetcher:
    """Gives the sender each record with its value, in sending order: `make` wraps
    what makes a request of a record (the value is let go once it is made)."""

    def __init__(
        self,
        settings: KafkaSettings,
        records: Sequence[Recorded],
        sending: Sequence[Recorded],
        budget: ValueBudget,
        stop: threading.Event,
    ) -> None:
        """`records`: the selection; `sending`: those of them to send, in order."""
        self.budget, self._stop = budget, stop
        if sending is not records:  # --resume: the values of what was sent are not needed
            wanted = {id(record) for record in sending}
            for record in records:
                if id(record) not in wanted:
                    budget.release(record)
        first = next((i for i, r in enumerate(sending) if r.size >= 0), len(sending))
        for record in sending[first:]:  # read back in order from the first one not kept
            budget.release(record)
        self._first = first
        self._later = list(sending[first:])
        self._made = 0
        self._ready = 0
        """Records of `_later` read back so far."""
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        if self._later:
            self._thread = threading.Thread(
                target=self._run, args=(settings,), name="replay-values", daemon=True
            )
            self._thread.start()

    def make(self, maker: Callable[[Recorded], T]) -> Callable[[Recorded], T]:
        if not self._later:  # all held (the common case): sent as before, at no cost
            return maker

        def made(record: Recorded) -> T:
            later = self._made - self._first
            self._made += 1
            if later >= 0 and self._ready <= later:
                self._wait(later)
            result = maker(record)
            self.budget.release(record)
            return result

        return made

    def _wait(self, index: int) -> None:
        with self._changed:
            while self._ready <= index:
                if self._error is not None:
                    raise self._error
                if self._stop.is_set():
                    raise Stopped
                self._changed.wait(0.05)

    def _run(self, settings: KafkaSettings) -> None:
        chunk_bytes = max(1, self.budget.limit // 4)
        # A fetch about a chunk long: a chunk's read stops at its last record, and what
        # a fetch brought past it is read again by the next chunk.
        reader = RangeReader(settings, fetch_bytes=min(8 << 20, max(64 << 10, chunk_bytes)))
        try:
            start = 0
            while start < len(self._later) and not self._stop.is_set():
                end, size = start, 0
                while end < len(self._later) and end - start < CHUNK_RECORDS:
                    if end > start and size + self._later[end].size > chunk_bytes:
                        break
                    size += self._later[end].size
                    end += 1
                if not self.budget.take(size, self._stop):
                    return
                _read_back(reader, self._later[start:end])
                with self._changed:
                    self._ready = end
                    self._changed.notify_all()
                start = end
        except BaseException as error:  # handed to the sender, which waits on it
            with self._changed:
                self._error = error
                self._changed.notify_all()
        finally:
            reader.close()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(10)


def _read_back(reader: RangeReader, chunk: list[Recorded]) -> None:
    """Each record's value and headers again, from where the selection found it (one
    range read of the chunk's offsets per partition). The value's bytes were taken
    from the budget for the chunk: the record holds them from now on."""
    wanted = {(r.topic, r.partition, r.offset): r for r in chunk}
    ranges: dict[tuple[str, int], tuple[int, int | None]] = {}
    for record in chunk:
        tp = (record.topic, record.partition)
        low, high = ranges.get(tp, (record.offset, record.offset + 1))
        assert high is not None
        ranges[tp] = (min(low, record.offset), max(high, record.offset + 1))
    for message in reader.read(ranges):
        record = wanted.pop((message.topic(), message.partition(), message.offset()), None)
        if record is not None:
            record.value = message.value() or b""
            record.headers = message.headers() or []
            record.size = -1
    if wanted:
        gone = sorted(wanted)[:5]
        where = ", ".join(f"{t}:{p}:{o}" for t, p, o in gone)
        raise ReplayError(
            f"{len(wanted)} selected request(s) are no longer on the topic (deleted by "
            f"retention since the selection?): {where}"
        )
