"""What drives a replay run besides its stages: a clock per stage, calls on threads of
their own, and the cyclic garbage collector kept off while the run holds its records."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def without_cyclic_gc() -> Iterator[None]:
    """No cyclic garbage collection while a run holds its records (the selection, the
    answers and the originals: acyclic, freed by reference counting): each full collection
    walks all of them. At 50,000 requests (bench/replay_bench.py) the collections took
    1.2 s of the replay's 5.3 s of CPU; without them it used 3.6 s. The collector's state
    is restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class Stages:
    """Wall seconds per stage, each from the end of the one before."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        self.seconds[stage] = now - self._last
        self._last = now


class Background:
    """A call on its own thread; `result()` waits for it (and raises what it raised)."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def run() -> None:
            try:
                self._value = call()
            except BaseException as error:  # handed to the caller of result()
                self._error = error

        self._thread = threading.Thread(target=run, name="replay-background", daemon=True)
        self._thread.start()

    def succeeded(self) -> bool:
        """Returned a value (without waiting: False while it runs)."""
        return not self._thread.is_alive() and self._error is None

    def result(self) -> Any:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
