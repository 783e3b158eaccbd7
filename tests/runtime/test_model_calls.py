"""The call pool without Kafka: answers in submission order, held records not committable until
answered, revoked partitions not answered, a retired agent's records handed back."""

from __future__ import annotations

import threading
import time

from engine.runtime.model_calls import CallPool, Work
from engine.runtime.offsets import OffsetTracker
from engine.runtime.records import Outgoing

TOPIC = "t"


class Agent:
    """Stands for a NodeAgent: the pool only keys on it."""


def _work(offset: int, run, finished: list, partition: int = 0) -> Work:
    def finish(outcome, dropped, out: list[Outgoing]) -> None:
        finished.append((offset, outcome))

    return Work(run, finish, [(TOPIC, partition, offset)], 1)


def _turns(pool: CallPool, until, out: list) -> None:
    deadline = time.monotonic() + 10
    while not until():
        assert time.monotonic() < deadline, "the pool never answered"
        pool.turn(out)
        time.sleep(0.005)


def test_answers_keep_submission_order_and_hold_their_records():
    tracker = OffsetTracker()
    pool = CallPool(tracker, threads=2, max_in_flight=10)
    agent, finished, out = Agent(), [], []
    release = threading.Event()
    tracker.consumed(TOPIC, 0, 1)
    pool.submit(agent, "m", _work(0, lambda: release.wait(10) and "first", finished), out)
    pool.submit(agent, "m", _work(1, lambda: "second", finished), out)
    _turns(pool, lambda: pool.stats("m").in_flight == 2, out)
    time.sleep(0.05)  # the second call has returned by now; it must still wait its turn
    pool.turn(out)
    assert finished == []
    assert tracker.safe_offset((TOPIC, 0)) == 0  # nothing past an unanswered call commits
    release.set()
    _turns(pool, lambda: len(finished) == 2, out)
    assert finished == [(0, "first"), (1, "second")]
    assert tracker.safe_offset((TOPIC, 0)) == 2
    assert pool.stats("m").held == 0
    pool.close()


def test_revoked_partitions_are_not_answered_and_a_retired_agent_hands_its_records_back():
    tracker = OffsetTracker()
    pool = CallPool(tracker, threads=1, max_in_flight=1)
    agent, finished, out = Agent(), [], []
    release = threading.Event()
    for partition in (0, 1):
        tracker.consumed(TOPIC, partition, 0)
    pool.submit(agent, "m", _work(0, lambda: release.wait(10), finished, partition=0), out)
    pool.submit(agent, "m", _work(0, lambda: "kept", finished, partition=1), out)
    assert pool.stats("m").held == 2
    pool.turn(out)
    assert pool.stats("m").in_flight == 1  # the cap: the second call waits its turn
    assert pool.full_agents() == [agent]  # so its partitions are paused
    pool.drop(agent, {0})
    release.set()
    _turns(pool, lambda: finished, out)
    assert finished == [(0, "kept")]  # partition 1's answer; partition 0's was revoked
    assert pool.full_agents() == []

    other = Agent()
    pool.submit(other, "m", _work(5, lambda: release.wait(10), finished, partition=1), out)
    assert tracker.safe_offset((TOPIC, 1)) == 5
    assert pool.abandon(other) == [(TOPIC, 1, 5)]
    assert tracker.safe_offset((TOPIC, 1)) == 1
    pool.close()
