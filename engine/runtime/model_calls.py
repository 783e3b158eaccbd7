"""Model calls handed off by the agents: run inline (the test driver) or on model threads (the worker).

An agent builds a `Work` (the call, and what to write once it is answered)
and submits it; it never waits for it. `InlineCalls` runs it at once, so the
test driver answers within the same chunk. `CallPool`, the worker's, holds the
records a call answers in the offset tracker (nothing past them is committed
until their answers are written), runs the call on its model's threads
(`model_threads.py`), and gives the outcomes back to the loop in the order
each agent submitted them, so an agent's answers keep their partition order.

Memory is bounded per model: at most `max_in_flight` requests are running or
queued on a model's threads (a single call bigger than that runs alone), and
once as many are held (in flight, or consumed and waiting their turn) the
worker pauses the partitions feeding that model (`full_agents`), resuming them
when half have been answered. Held requests stay under `max_in_flight` plus
one consumed chunk.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from engine.runtime import metrics
from engine.runtime.model_threads import ModelThreads, Work
from engine.runtime.offsets import OffsetTracker
from engine.runtime.records import Outgoing, RecordRef
from engine.topology.specs import ModelSpec

__all__ = ["CallPool", "CallStats", "InlineCalls", "ModelCalls", "Work"]

QUICK_WAIT_S = 0.005
"""How long a loop turn waits for the calls it handed to quick models."""
WAIT_MIN_S, WAIT_MAX_S = 0.001, 0.02
"""Bounds of how long the loop waits for records while calls are out (`wait_s`)."""


class ModelCalls(Protocol):
    def submit(self, agent: object, model: str, work: Work, out: list[Outgoing]) -> None:
        """Run `work` for `agent`; its finish writes to `out` now (inline) or in a later turn."""

    def drop(self, agent: object, partitions: set[int]) -> None:
        """The partitions were revoked: calls of `agent` answer none of their requests."""

    def abandon(self, agent: object) -> list[RecordRef]:
        """`agent` is retired: forget its calls; the records they held, released."""


class InlineCalls:
    """Calls run at once on the caller's thread (the test driver; no timeouts)."""

    def submit(self, agent: object, model: str, work: Work, out: list[Outgoing]) -> None:
        try:
            outcome: object = work.run()
        except Exception as error:
            outcome = error
        work.finish(outcome, frozenset(), out)

    def drop(self, agent: object, partitions: set[int]) -> None:
        pass

    def abandon(self, agent: object) -> list[RecordRef]:
        return []

    # The worker's side, for a worker that runs its calls on the loop (`model_threads: 0`).

    def configure(self, specs: Mapping[str, ModelSpec]) -> None:
        pass

    def turn(self, out: list[Outgoing]) -> None:
        pass

    def in_flight(self) -> bool:
        return False

    def wait_s(self) -> float | None:
        return None

    def full_agents(self) -> list[object]:
        return []

    def stats(self, model: str) -> CallStats:
        return CallStats(0, 0, 0, 0, 0, 0, 0)

    def close(self) -> None:
        pass


INLINE = InlineCalls()


@dataclass(frozen=True)
class CallStats:
    """One model's calls, as the pool counts them (requests, not calls)."""

    held: int
    """Requests handed off and not yet answered: in flight or waiting their turn."""
    in_flight: int
    """Requests running or queued on the model's threads."""
    peak_held: int
    peak_in_flight: int
    timed_out: int
    """Calls given up after the model's timeout."""
    refused: int
    """Calls refused while every thread of the model was stuck."""
    serving: int
    """The model's threads serving calls (not stuck in one past its timeout)."""


class _Model:
    """The loop's bookkeeping of one model's calls."""

    def __init__(self, threads: ModelThreads) -> None:
        self.threads = threads
        self.waiting: deque[Work] = deque()
        self.admitted: set[Work] = set()
        self.held = 0
        self.in_flight = 0
        self.peak_held = 0
        self.peak_in_flight = 0
        self.full = False


class CallPool:
    def __init__(self, tracker: OffsetTracker, *, threads: int = 1, max_in_flight: int = 4000):
        self.tracker = tracker
        self.threads = threads
        self.max_in_flight = max_in_flight
        self._models: dict[str, _Model] = {}
        self._timeouts: dict[str, float | None] = {}
        self._sizes: dict[str, int] = {}
        """Threads per model: its `max_in_flight` parameter, else `threads`."""
        self._agents: dict[int, tuple[object, deque[Work]]] = {}
        self._model_of: dict[int, str] = {}
        self._done = threading.Condition()
        self._fresh_quick = False

    def configure(self, specs: Mapping[str, ModelSpec]) -> None:
        """Each model's timeout and threads from its spec (checked at compile time); models
        gone stop, and so do the threads of one whose `max_in_flight` changed (once idle:
        the next call starts them anew)."""
        self._timeouts = {name: spec.timeout_s() for name, spec in specs.items()}
        self._sizes = {name: spec.max_in_flight() or self.threads for name, spec in specs.items()}
        for name in list(self._models):
            model = self._models[name]
            if name in specs and model.threads.size == self._sizes[name]:
                continue
            if not model.held:
                model.threads.close()
                del self._models[name]
        for name, model in self._models.items():
            model.threads.timeout_s = self._timeouts.get(name)

    # -- the agents' side --------------------------------------------------------------

    def submit(self, agent: object, model: str, work: Work, out: list[Outgoing]) -> None:
        tracker = self.tracker
        work.holder = tracker.holder
        tracker.hold_all(work.refs)
        key = id(agent)
        queued = self._agents.get(key)
        if queued is None:
            queued = self._agents[key] = (agent, deque())
        queued[1].append(work)
        self._model_of[key] = model
        state = self._model(model)
        state.waiting.append(work)
        state.held += work.requests
        state.peak_held = max(state.peak_held, state.held)
        if state.held >= self.max_in_flight:
            state.full = True

    def drop(self, agent: object, partitions: set[int]) -> None:
        queued = self._agents.get(id(agent))
        for work in queued[1] if queued else ():
            work.dropped |= partitions

    def abandon(self, agent: object) -> list[RecordRef]:
        queued = self._agents.pop(id(agent), None)
        model_name = self._model_of.pop(id(agent), None)
        if queued is None or model_name is None:
            return []
        refs: list[RecordRef] = []
        state = self._models[model_name]
        for work in queued[1]:
            work.cancelled = True
            self._forget(state, work)
            self.tracker.holder = work.holder
            for ref in work.refs:
                if ref[1] not in work.dropped:
                    self.tracker.release(ref)
                    refs.append(ref)
        return refs

    # -- the loop's side ---------------------------------------------------------------

    def turn(self, out: list[Outgoing]) -> None:
        """Start what may start, wait briefly for quick models, write what was answered."""
        self._admit()
        if self._fresh_quick:
            self._fresh_quick = False
            quick = [m.threads for m in self._models.values() if m.threads.quick()]
            with self._done:
                self._done.wait_for(lambda: not any(t.busy() for t in quick), timeout=QUICK_WAIT_S)
        for state in self._models.values():
            state.threads.expire()
        self._collect(out)
        self._admit()
        for name, state in self._models.items():
            metrics.MODEL_HELD_REQUESTS.labels(name).set(state.held)

    def in_flight(self) -> bool:
        """Calls are handed off and not yet answered (the loop should not sleep long)."""
        return any(state.held for state in self._models.values())

    def wait_s(self) -> float | None:
        """How long the loop may wait for records before an answer is likely due (None:
        no call is out): a quarter of what a call takes, or has been running, between
        1 and 20 ms, so a blocked model does not keep the loop spinning."""
        waits = [
            min(WAIT_MAX_S, max(WAIT_MIN_S, max(t.average_s, t.running_for()) / 4))
            for t in (state.threads for state in self._models.values() if state.held)
        ]
        return min(waits) if waits else None

    def full_agents(self) -> list[object]:
        """Agents whose model holds too much: their partitions are to be paused."""
        full = {name for name, state in self._models.items() if state.full}
        if not full:
            return []
        return [
            agent for key, (agent, _) in self._agents.items() if self._model_of.get(key) in full
        ]

    def stats(self, model: str) -> CallStats:
        state = self._models.get(model)
        if state is None:
            return CallStats(0, 0, 0, 0, 0, 0, 0)
        t = state.threads
        return CallStats(
            state.held,
            state.in_flight,
            state.peak_held,
            state.peak_in_flight,
            t.timed_out,
            t.refused,
            t.live,
        )

    def close(self) -> None:
        for state in self._models.values():
            state.threads.close()

    # -- inside ------------------------------------------------------------------------

    def _model(self, name: str) -> _Model:
        state = self._models.get(name)
        if state is None:
            threads = ModelThreads(name, self._sizes.get(name) or self.threads, self._notify)
            threads.timeout_s = self._timeouts.get(name)
            state = self._models[name] = _Model(threads)
        return state

    def _notify(self) -> None:
        with self._done:
            self._done.notify_all()

    def _admit(self) -> None:
        cap = self.max_in_flight
        for state in self._models.values():
            waiting = state.waiting
            while waiting and (
                state.in_flight == 0 or state.in_flight + waiting[0].requests <= cap
            ):
                work = waiting.popleft()
                state.in_flight += work.requests
                state.peak_in_flight = max(state.peak_in_flight, state.in_flight)
                state.admitted.add(work)
                if not self._fresh_quick and state.threads.quick():
                    self._fresh_quick = True
                state.threads.put(work)

    def _collect(self, out: list[Outgoing]) -> None:
        tracker = self.tracker
        for key, (_, queued) in list(self._agents.items()):
            state = self._models[self._model_of[key]]
            while queued and queued[0].done:
                work = queued.popleft()
                self._forget(state, work)
                if not work.timed_out and work.started is not None:
                    state.threads.observe(work)
                tracker.holder = work.holder
                dropped = work.dropped
                tracker.release_all(work.refs, dropped)
                if dropped and all(ref[1] in dropped for ref in work.refs):
                    continue  # every request it answers is another worker's (or redone) now
                work.finish(work.outcome, frozenset(dropped), out)
            if not queued:
                del self._agents[key]

    def _forget(self, state: _Model, work: Work) -> None:
        if work in state.admitted:
            state.admitted.discard(work)
            state.in_flight -= work.requests
        else:
            try:
                state.waiting.remove(work)
            except ValueError:
                pass
        state.held -= work.requests
        if state.full and state.held <= self.max_in_flight // 2:
            state.full = False
