"""A stop event that SIGINT and SIGTERM set, without the deadlock a plain handler risks.

A Python signal handler runs in the main thread, between two bytecodes of
whatever it was doing. When that was `event.wait()` on the very event the
handler sets, the main thread may hold the event's internal lock at that
moment, and `event.set()` in the handler then waits for a lock its own thread
holds: the process never stops. A clean CI run hit exactly this once
(`tensorflux broker` ignoring SIGTERM). So the handler only starts a thread
that sets the event; the main thread goes on and lets the lock go.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable


def set_from_handler(event: threading.Event) -> None:
    """Set `event` from a signal handler, safely (see the module docstring)."""
    threading.Thread(target=event.set, name="stop-signal", daemon=True).start()


def stop_on_signals(*signums: int) -> threading.Event:
    """An event set when any of `signums` (default SIGINT and SIGTERM) arrives."""
    stop = threading.Event()
    handler: Callable[..., None] = lambda *_: set_from_handler(stop)  # noqa: E731
    for signum in signums or (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, handler)
    return stop
