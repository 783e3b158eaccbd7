"""Join a request's arrivals from a node's sources, gated on its triggers.

A node reads data sources (joined by `inputs_join`) and trigger sources
(joined by `triggers_join`); both groups must be satisfied for the same key:

  inner  every source of the group has arrived
  outer  every source has arrived, or at the end of the window at least one
  any    at least one source has arrived (the first arrival emits)

A pending key lives for the node's window, measured on the wall clock, so an
outer join emits what it has even when no further traffic comes. Once a key
has emitted, later arrivals for it within the window are released unused
(redeliveries, and an `any` join's other sources), except that an arrival on a
source the emission used, from further on in that source (a larger position,
e.g. Kafka offset), is the same id reused by a new request: it starts a new
join instead of vanishing.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from engine.topology.graph import JoinType

Item = TypeVar("Item")


@dataclass(slots=True)
class Emission(Generic[Item]):
    """A key whose sources satisfied the node: data arrivals and trigger arrivals, in source order."""

    key: Hashable
    inputs: list[Item]
    triggers: list[Item]


class JoinResult(Generic[Item]):
    """What one arrival or one `expire` did. Read it; never add to it (an arrival that
    changed nothing shares one empty result, and its sequences are tuples)."""

    __slots__ = ("emitted", "released", "expired", "unfinished")

    def __init__(
        self,
        emitted: Sequence[Emission[Item]] = (),
        released: Sequence[Item] = (),
        expired: Sequence[Hashable] = (),
        unfinished: Sequence[dict[int, Item]] = (),
    ) -> None:
        self.emitted = emitted
        self.released = released
        """Arrivals that will never be used (duplicates, late arrivals, expired joins)."""
        self.expired = expired
        """Keys whose window closed without emitting."""
        self.unfinished = unfinished
        """What had arrived (by source number) at each expired join that a first arrival
        opened. One reopened by a reused key is left out: it may be a producer's retried
        duplicate of a record already answered, whose partner never comes again."""


_NOTHING: JoinResult[Any] = JoinResult()


class _Pending(Generic[Item]):
    __slots__ = ("deadline_ms", "arrivals", "emitted", "positions", "reopened")

    def __init__(self, deadline_ms: int, *, reopened: bool = False) -> None:
        self.deadline_ms = deadline_ms
        self.arrivals: dict[int, Item] = {}
        self.emitted = False
        self.positions: dict[int, int] = {}
        """Per source, the position of the arrival it holds or used."""
        self.reopened = reopened
        """Opened by a key already answered (a reused id, or a duplicate written later)."""


class Join(Generic[Item]):
    """Join state of one node; sources are numbered inputs first, then triggers."""

    def __init__(
        self,
        n_inputs: int,
        n_triggers: int,
        inputs_join: JoinType,
        triggers_join: JoinType,
        window_ms: int,
    ) -> None:
        self.n_inputs = n_inputs
        self.n_triggers = n_triggers
        self.inputs_join = inputs_join
        self.triggers_join = triggers_join
        self.window_ms = window_ms
        self._passes = n_inputs == 1 and n_triggers == 0
        # Insertion order is deadline order: every key gets the same window.
        self._pending: OrderedDict[Hashable, _Pending[Item]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._pending)

    def passes_through(self) -> bool:
        """One source, no triggers: every arrival emits at once and nothing is kept."""
        return self._passes

    def process(
        self, key: Hashable, source: int, item: Item, now_ms: int, position: int | None = None
    ) -> JoinResult[Item]:
        """`position`: where the item sits in its source (a Kafka offset); it tells a
        redelivered arrival (not past the one used) from a reused key (further on)."""
        return self.process_many([(key, source, item, position)], now_ms)

    def process_many(
        self, arrivals: Iterable[tuple[Hashable, int, Item, int | None]], now_ms: int
    ) -> JoinResult[Item]:
        """`process` each (key, source, item, position) in turn; one result for them all."""
        if self._passes:
            return JoinResult([Emission(key, [item], []) for key, _, item, _ in arrivals])
        emitted: list[Emission[Item]] = []
        released: list[Item] = []
        pendings = self._pending
        deadline_ms = now_ms + self.window_ms
        for key, source, item, position in arrivals:
            pending = pendings.get(key)
            if (
                pending is not None
                and pending.emitted
                and position is not None
                and source in pending.positions
                and position > pending.positions[source]
            ):
                del pendings[key]  # answered; this is a new request under the same key
                pending = pendings[key] = _Pending(deadline_ms, reopened=True)
            if pending is None:
                pending = pendings[key] = _Pending(deadline_ms)
            held = pending.arrivals
            if pending.emitted or source in held:
                # Already answered, or a duplicate of a source we hold: the first one wins.
                released.append(item)
                continue
            held[source] = item
            if position is not None:
                pending.positions[source] = position
            if self._satisfied(held, closing=False):
                emitted.append(self._emit(key, pending))
        if not emitted and not released:
            return _NOTHING
        return JoinResult(emitted, released)

    def expire(self, now_ms: int) -> JoinResult[Item]:
        """Close every window that ended by `now_ms`."""
        emitted: list[Emission[Item]] = []
        released: list[Item] = []
        expired: list[Hashable] = []
        unfinished: list[dict[int, Item]] = []
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if pending.deadline_ms > now_ms:
                break
            del self._pending[key]
            if pending.emitted:
                continue
            if self._satisfied(pending.arrivals, closing=True):
                emitted.append(self._emit(key, pending))
            else:
                expired.append(key)
                if not pending.reopened:
                    unfinished.append(dict(pending.arrivals))
                released.extend(pending.arrivals.values())
        return JoinResult(emitted, released, expired, unfinished)

    def next_deadline_ms(self) -> int | None:
        if not self._pending:
            return None
        return next(iter(self._pending.values())).deadline_ms

    def drop(self, predicate: Any) -> list[Item]:
        """Forget keys for which `predicate(key)` holds (their partition was revoked)."""
        dropped: list[Item] = []
        for key in [key for key in self._pending if predicate(key)]:
            dropped.extend(self._pending.pop(key).arrivals.values())
        return dropped

    def _satisfied(self, arrivals: dict[int, Item], *, closing: bool) -> bool:
        if not self.n_triggers:
            return _group_ok(self.inputs_join, len(arrivals), self.n_inputs, closing)
        inputs = sum(1 for source in arrivals if source < self.n_inputs)
        triggers = len(arrivals) - inputs
        return _group_ok(self.inputs_join, inputs, self.n_inputs, closing) and _group_ok(
            self.triggers_join, triggers, self.n_triggers, closing
        )

    def _emit(self, key: Hashable, pending: _Pending[Item]) -> Emission[Item]:
        pending.emitted = True
        ordered = sorted(pending.arrivals.items())
        pending.arrivals = {}
        if not self.n_triggers:
            return Emission(key, [item for _, item in ordered], [])
        inputs = [item for source, item in ordered if source < self.n_inputs]
        triggers = [item for source, item in ordered if source >= self.n_inputs]
        return Emission(key, inputs, triggers)


def _group_ok(join: JoinType, arrived: int, expected: int, closing: bool) -> bool:
    if join == "any" or (join == "outer" and closing):
        return arrived >= 1
    return arrived == expected
