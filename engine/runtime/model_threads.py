"""The threads of one model: its calls run here, off the worker's consume loop.

onnxruntime and numpy release the GIL while they compute, so a model call on
one of these threads overlaps the loop's Kafka I/O. Each model has a few
threads of its own (`size`), so a slow model never holds up the calls of
another. A call that runs past the model's timeout is given up: it is marked
done with `ModelTimedOut`, its thread is abandoned (Python cannot stop a
thread) and a fresh one takes its place, up to `MAX_STUCK` abandoned threads a
model; past that the model's calls are refused (`ModelRefused`) until a stuck
call returns and its thread comes back.

Only `_serve` runs on these threads; everything else is called by the loop.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.runtime.errors import ModelRefused, ModelTimedOut
from engine.runtime.records import Outgoing, RecordRef

MAX_STUCK = 4
"""Abandoned threads (calls stuck past the timeout) a model may leave before it refuses calls."""
QUICK_S = 0.001
"""A model whose calls take less than this is waited for within the loop's turn."""


@dataclass(eq=False, slots=True)
class Work:
    """One model call an agent handed off, and what to do with its outcome."""

    run: Callable[[], object]
    """The call (on a model thread); what it returns, or raises, is its outcome."""
    finish: Callable[[object, frozenset[int], list[Outgoing]], None]
    """On the loop: `finish(outcome, dropped_partitions, out)` writes what the outcome means."""
    refs: list[RecordRef]
    """The records the call answers: held (not committable) until it is finished."""
    requests: int
    holder: str = ""
    started: float | None = None
    seconds: float = 0.0
    outcome: object = None
    done: bool = False
    timed_out: bool = False
    cancelled: bool = False
    dropped: set[int] = field(default_factory=set)
    """Partitions revoked (or rewound) since the call was handed off: not to be answered."""


class ModelThreads:
    def __init__(self, model: str, size: int, on_done: Callable[[], None]) -> None:
        self.model = model
        self.size = size
        self.timeout_s: float | None = None
        self._on_done = on_done
        self._cond = threading.Condition()
        self._queue: deque[Work] = deque()
        self._running: set[Work] = set()
        self.live = 0
        """Threads serving calls (not stuck in an abandoned one)."""
        self.stuck = 0
        self.timed_out = 0
        self.refused = 0
        self.average_s = 0.0
        """Moving average of a call's time (what makes a model quick, `quick`)."""
        self._closed = False
        self._started = 0
        with self._cond:
            for _ in range(size):
                self._start()

    def _start(self) -> None:
        self.live += 1
        self._started += 1
        name = f"tensorflux-model-{self.model}-{self._started}"
        threading.Thread(target=self._serve, name=name, daemon=True).start()

    def put(self, work: Work) -> None:
        with self._cond:
            if self.live == 0:  # every thread is stuck: say so at once
                self._refuse(work)
                return
            self._queue.append(work)
            self._cond.notify()

    def quick(self) -> bool:
        """Calls that end within a loop's turn: no call known slow, none running long."""
        if self.average_s >= QUICK_S:
            return False
        now = time.monotonic()
        return not any(
            w.started is not None and now - w.started >= QUICK_S for w in list(self._running)
        )

    def running_for(self) -> float:
        """How long the oldest running call has been running (0: none runs)."""
        now = time.monotonic()
        started = [w.started for w in list(self._running) if w.started is not None]
        return now - min(started) if started else 0.0

    def busy(self) -> bool:
        return bool(self._queue or self._running)

    def observe(self, work: Work) -> None:
        """A finished call's time, for `quick`."""
        self.average_s = 0.8 * self.average_s + 0.2 * work.seconds

    def expire(self) -> None:
        """Give up the calls running past the timeout; refuse queued ones if no thread is left."""
        timeout = self.timeout_s
        if timeout is None:
            return
        now = time.monotonic()
        with self._cond:
            for work in list(self._running):
                if work.started is not None and now - work.started > timeout:
                    self._running.discard(work)
                    work.timed_out = work.done = True
                    work.outcome = ModelTimedOut(self.model, timeout)
                    self.timed_out += 1
                    self.live -= 1
                    self.stuck += 1
                    if self.stuck <= MAX_STUCK and not self._closed:
                        self._start()
            if self.live == 0:
                while self._queue:
                    self._refuse(self._queue.popleft())

    def _refuse(self, work: Work) -> None:
        work.outcome = ModelRefused(self.model, self.stuck, self.timeout_s or 0.0)
        work.done = True
        self.refused += 1

    def close(self) -> None:
        """Threads end once idle; a stuck one ends when its call returns."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def _serve(self) -> None:
        cond = self._cond
        while True:
            with cond:
                while not self._queue and not self._closed:
                    cond.wait()
                if not self._queue:  # closed
                    self.live -= 1
                    return
                work = self._queue.popleft()
                if work.cancelled:
                    continue
                work.started = time.monotonic()
                self._running.add(work)
            try:
                outcome: object = work.run()
            except Exception as error:  # the agent's finish turns it into error records
                outcome = error
            seconds = time.monotonic() - work.started
            with cond:
                if work.timed_out:
                    # The loop gave up on this call and started a thread in this one's place.
                    self.stuck -= 1
                    if self._closed or self.live >= self.size:
                        return
                    self.live += 1  # back in service, in place of one never started
                    continue
                self._running.discard(work)
                work.outcome, work.seconds, work.done = outcome, seconds, True
            self._on_done()
