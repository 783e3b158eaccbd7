"""Batcher: chunk batching without a spec, size and windowMs with one."""

from __future__ import annotations

from engine.operators.batch import Batcher
from engine.topology import Batch


def batcher(size: int | None = None, window_ms: int | None = None) -> Batcher[int]:
    spec = None if size is None and window_ms is None else Batch(size, window_ms, False)
    return Batcher(spec)


def test_without_spec_a_chunk_goes_to_the_model_together() -> None:
    b = batcher()
    assert not b.holds()
    assert [b.process(i, now_ms=0) for i in range(3)] == [[], [], []]
    assert b.flush(0, end_of_chunk=True) == [[0, 1, 2]]
    assert len(b) == 0 and b.flush(0, end_of_chunk=True) == []


def test_size_emits_a_full_batch_at_once() -> None:
    b = batcher(size=3, window_ms=50)
    assert b.process(1, 0) == [] and b.process(2, 0) == []
    assert b.process(3, 0) == [[1, 2, 3]]
    assert len(b) == 0


def test_window_holds_across_chunks_until_the_oldest_waited_long_enough() -> None:
    b = batcher(size=10, window_ms=50)
    assert b.holds()
    b.process(1, now_ms=100)
    b.process(2, now_ms=120)
    assert b.flush(130, end_of_chunk=True) == []
    assert b.next_deadline_ms() == 150
    assert b.flush(149, end_of_chunk=False) == []
    assert b.flush(150, end_of_chunk=False) == [[1, 2]]
    assert b.next_deadline_ms() is None


def test_window_restarts_with_the_next_request() -> None:
    b = batcher(window_ms=50)
    b.process(1, now_ms=0)
    assert b.flush(50, end_of_chunk=False) == [[1]]
    b.process(2, now_ms=70)
    assert b.next_deadline_ms() == 120


def test_size_without_window_flushes_what_it_has_at_the_end_of_a_chunk() -> None:
    b = batcher(size=4)
    b.process(1, 0)
    assert b.flush(0, end_of_chunk=False) == []
    assert b.flush(0, end_of_chunk=True) == [[1]]


def test_every_request_is_in_exactly_one_batch() -> None:
    b = batcher(size=4, window_ms=10)
    batches = [batch for i in range(10) for batch in b.process(i, now_ms=i)]
    batches += b.flush(100, end_of_chunk=True)
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_drain_gives_back_the_waiting_requests() -> None:
    b = batcher(size=4, window_ms=10)
    b.process(1, 0)
    b.process(2, 0)
    assert b.drain() == [1, 2] and len(b) == 0 and b.next_deadline_ms() is None


def test_retain_keeps_the_chosen_requests_in_order() -> None:
    # A rebalance revoked some partitions: their waiting requests belong to another worker now.
    b = batcher(size=10, window_ms=50)
    for i in range(5):
        b.process(i, now_ms=100 + i)
    b.retain(lambda item: item % 2 == 0)
    assert len(b) == 3 and b.next_deadline_ms() == 150
    b.retain(lambda item: False)
    assert len(b) == 0 and b.next_deadline_ms() is None
