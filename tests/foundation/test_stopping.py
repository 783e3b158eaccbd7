"""SIGINT/SIGTERM stop the CLI's long-running commands, whatever the main thread is doing."""

import os
import signal

from engine.cli.stopping import stop_on_signals


def test_a_signal_arriving_inside_the_events_own_wait_still_sets_it():
    previous = signal.getsignal(signal.SIGUSR1)
    stop = stop_on_signals(signal.SIGUSR1)
    try:
        # Event.wait() holds the event's lock for a few bytecodes; a handler that
        # called set() itself would wait forever for a lock its own thread holds.
        with stop._cond:
            os.kill(os.getpid(), signal.SIGUSR1)  # the handler runs here, in this thread
        assert stop.wait(10), "the signal never set the stop event"
    finally:
        signal.signal(signal.SIGUSR1, previous)
