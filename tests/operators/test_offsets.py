"""OffsetTracker: never commit past a record whose effects are not yet written."""

from __future__ import annotations

from engine.runtime.offsets import OffsetTracker

T = "topic"


def test_commits_one_past_the_last_consumed_record() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.consumed(T, 0, offset)
    assert tracker.committable() == {(T, 0): 5}


def test_a_held_record_caps_its_partition_only() -> None:
    tracker = OffsetTracker()
    for offset in range(5):
        tracker.consumed(T, 0, offset)
        tracker.consumed(T, 1, offset)
    tracker.hold((T, 0, 2))
    tracker.hold((T, 0, 3))
    assert tracker.committable() == {(T, 0): 2, (T, 1): 5}
    tracker.release((T, 0, 2))
    assert tracker.committable() == {(T, 0): 3, (T, 1): 5}
    tracker.release((T, 0, 3))
    assert tracker.committable()[(T, 0)] == 5
    assert tracker.held_count() == 0


def test_a_record_held_twice_needs_two_releases() -> None:
    # One record feeding two agents (or a join and then a batch) is held by each.
    tracker = OffsetTracker()
    tracker.consumed(T, 0, 7)
    tracker.hold((T, 0, 7))
    tracker.hold((T, 0, 7))
    tracker.release((T, 0, 7))
    assert tracker.committable() == {(T, 0): 7}
    tracker.release((T, 0, 7))
    assert tracker.committable() == {(T, 0): 8}


def test_releasing_an_unknown_record_is_harmless() -> None:
    tracker = OffsetTracker()
    tracker.consumed(T, 0, 0)
    tracker.release((T, 0, 0))
    tracker.release(("other", 3, 9))
    assert tracker.committable() == {(T, 0): 1}


def test_only_moved_offsets_are_due_after_a_commit() -> None:
    tracker = OffsetTracker()
    tracker.consumed(T, 0, 0)
    tracker.consumed(T, 1, 0)
    tracker.mark_committed(tracker.committable())
    assert tracker.committable() == {}
    tracker.consumed(T, 1, 1)
    assert tracker.committable() == {(T, 1): 2}


def test_held_offsets_out_of_order() -> None:
    tracker = OffsetTracker()
    for offset in range(10):
        tracker.consumed(T, 0, offset)
    for offset in (8, 3, 5):
        tracker.hold((T, 0, offset))
    tracker.release((T, 0, 5))
    assert tracker.committable() == {(T, 0): 3}
    tracker.release((T, 0, 3))
    assert tracker.committable() == {(T, 0): 8}


def test_forget_drops_revoked_partitions() -> None:
    tracker = OffsetTracker()
    tracker.consumed(T, 0, 4)
    tracker.hold((T, 0, 4))
    tracker.consumed(T, 1, 4)
    tracker.forget([(T, 0)])
    assert tracker.committable() == {(T, 1): 5}
    assert tracker.held_count() == 0
    # Reassigned later: starts clean.
    tracker.consumed(T, 0, 9)
    assert tracker.committable() == {(T, 0): 10, (T, 1): 5}


def test_rewind_makes_nothing_past_the_offset_committable() -> None:
    tracker = OffsetTracker()
    for offset in range(10):
        tracker.consumed("t", 0, offset)
    tracker.rewind("t", 0, 4)
    assert tracker.committable() == {("t", 0): 4}
    tracker.rewind("t", 0, 7)  # never forward
    assert tracker.committable() == {("t", 0): 4}
    tracker.consumed("t", 0, 4)
    assert tracker.committable() == {("t", 0): 5}


def test_a_model_call_holds_its_records_at_once_and_releases_all_but_revoked_ones() -> None:
    # The fast lane's call holds a chunk's records together; a partition revoked while
    # the model ran was forgotten (and may be reassigned): its holds are not released
    # again, and the kept partition's records stop capping its commits.
    tracker = OffsetTracker()
    refs = [(T, partition, offset) for offset in range(3) for partition in (0, 1)]
    for topic, partition, offset in refs:
        tracker.consumed(topic, partition, offset)
    tracker.hold((T, 1, 1))  # another agent's hold of a record the call also holds
    tracker.hold_all(refs)
    assert tracker.committable() == {(T, 0): 0, (T, 1): 0}
    tracker.release_all(refs, {1})
    assert tracker.committable() == {(T, 0): 3, (T, 1): 0}
    tracker.release_all(refs, set())
    assert tracker.committable() == {(T, 0): 3, (T, 1): 1}
    assert tracker.held_count() == 1
