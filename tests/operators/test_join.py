"""Join: inner/outer/any over inputs, triggers by triggersJoinType, wall-clock windows, duplicates."""

from __future__ import annotations

import pytest

from engine.operators.join import Join

WINDOW = 1000


def join(
    n_inputs: int, inputs: str = "inner", n_triggers: int = 0, triggers: str = "inner"
) -> Join[str]:
    return Join(n_inputs, n_triggers, inputs, triggers, WINDOW)  # type: ignore[arg-type]


def test_one_source_without_triggers_passes_through_and_keeps_nothing() -> None:
    j = join(1)
    result = j.process("k", 0, "a", now_ms=0)
    assert [(e.key, e.inputs, e.triggers) for e in result.emitted] == [("k", ["a"], [])]
    assert len(j) == 0 and j.next_deadline_ms() is None
    # Every arrival emits, even a second one with the same key.
    assert j.process("k", 0, "b", now_ms=1).emitted[0].inputs == ["b"]


def test_inner_waits_for_every_source_and_emits_in_source_order() -> None:
    j = join(3)
    assert not j.process("k", 2, "c", 0).emitted
    assert not j.process("k", 0, "a", 1).emitted
    result = j.process("k", 1, "b", 2)
    assert [e.inputs for e in result.emitted] == [["a", "b", "c"]]


def test_inner_window_expires_on_the_wall_clock_and_releases_what_arrived() -> None:
    j = join(2)
    j.process("k", 0, "a", now_ms=100)
    assert j.next_deadline_ms() == 100 + WINDOW
    assert j.expire(now_ms=100 + WINDOW - 1).expired == []
    result = j.expire(now_ms=100 + WINDOW)
    assert result.expired == ["k"] and result.released == ["a"] and not result.emitted
    assert len(j) == 0
    # The missing source arriving later starts a fresh window; it does not complete the old one.
    assert not j.process("k", 1, "b", now_ms=2000).emitted


def test_outer_emits_at_once_when_complete() -> None:
    j = join(2, "outer")
    j.process("k", 1, "b", 0)
    assert [e.inputs for e in j.process("k", 0, "a", 5).emitted] == [["a", "b"]]


def test_outer_emits_what_arrived_at_window_end_without_more_traffic() -> None:
    j = join(3, "outer")
    j.process("k", 1, "b", now_ms=0)
    assert not j.expire(now_ms=WINDOW - 1).emitted
    result = j.expire(now_ms=WINDOW)
    assert [(e.key, e.inputs) for e in result.emitted] == [("k", ["b"])]
    assert result.expired == [] and result.released == []


def test_any_emits_on_first_arrival_and_releases_later_ones() -> None:
    j = join(2, "any")
    assert [e.inputs for e in j.process("k", 1, "b", 0).emitted] == [["b"]]
    late = j.process("k", 0, "a", 1)
    assert not late.emitted and late.released == ["a"]
    # The emitted key is forgotten at its window end without emitting again.
    assert j.expire(now_ms=WINDOW).emitted == []
    assert len(j) == 0


def test_duplicate_of_a_held_source_is_released_and_the_first_wins() -> None:
    j = join(2)
    j.process("k", 0, "first", 0)
    assert j.process("k", 0, "again", 1).released == ["again"]
    assert j.process("k", 1, "b", 2).emitted[0].inputs == ["first", "b"]
    # After the emission, a duplicate within the window is released unused.
    assert j.process("k", 1, "b2", 3).released == ["b2"]


def test_keys_are_independent() -> None:
    j = join(2)
    j.process("x", 0, "x0", 0)
    j.process("y", 1, "y1", 0)
    assert j.process("y", 0, "y0", 1).emitted[0].key == "y"
    assert len(j) == 2  # x pending; y kept (emitted) until its window ends


def test_triggers_gate_the_inputs_and_are_reported_apart() -> None:
    j = join(1, n_triggers=1)
    assert not j.process("k", 0, "data", 0).emitted
    emission = j.process("k", 1, "go", 1).emitted[0]
    assert emission.inputs == ["data"] and emission.triggers == ["go"]


def test_trigger_alone_does_not_emit() -> None:
    j = join(1, n_triggers=2, triggers="any")
    assert not j.process("k", 1, "t1", 0).emitted
    result = j.expire(WINDOW)
    assert result.expired == ["k"] and result.released == ["t1"]


@pytest.mark.parametrize(
    ("triggers", "arrive", "fires"),
    [
        ("inner", [1], False),
        ("inner", [1, 2], True),
        ("any", [2], True),
        ("outer", [1, 2], True),
        ("outer", [1], False),  # before the window ends
    ],
)
def test_triggers_join_type(triggers: str, arrive: list[int], fires: bool) -> None:
    j = join(1, n_triggers=2, triggers=triggers)
    j.process("k", 0, "data", 0)
    emitted = [e for source in arrive for e in j.process("k", source, f"t{source}", 1).emitted]
    assert bool(emitted) is fires
    if fires:
        assert emitted[0].triggers == [f"t{s}" for s in sorted(arrive)]


def test_outer_triggers_fire_with_what_arrived_at_window_end() -> None:
    j = join(1, n_triggers=2, triggers="outer")
    j.process("k", 0, "data", 0)
    j.process("k", 2, "t2", 0)
    emission = j.expire(WINDOW).emitted[0]
    assert emission.inputs == ["data"] and emission.triggers == ["t2"]


def test_outer_inputs_still_need_inner_triggers_at_window_end() -> None:
    j = join(2, "outer", n_triggers=1, triggers="inner")
    j.process("k", 0, "a", 0)
    result = j.expire(WINDOW)
    assert not result.emitted and result.expired == ["k"]


def test_expiry_follows_arrival_order_and_stops_at_the_first_open_window() -> None:
    j = join(2)
    j.process("early", 0, "e", now_ms=0)
    j.process("late", 0, "l", now_ms=500)
    assert j.expire(WINDOW).expired == ["early"]
    assert j.next_deadline_ms() == 500 + WINDOW


def test_drop_forgets_keys_of_revoked_partitions() -> None:
    j = join(2)
    j.process((0, "a"), 0, "a0", 0)
    j.process((1, "b"), 0, "b0", 0)
    assert j.drop(lambda key: key[0] == 1) == ["b0"]
    assert len(j) == 1


def test_a_key_reused_further_on_after_its_answer_is_a_new_request() -> None:
    j = join(2)
    j.process("k", 0, "a1", 0, position=10)
    assert [e.inputs for e in j.process("k", 1, "b1", 1, position=20).emitted] == [["a1", "b1"]]
    # The same id again, later in both sources: a second request, answered too.
    assert not j.process("k", 0, "a2", 2, position=11).emitted
    assert [e.inputs for e in j.process("k", 1, "b2", 3, position=21).emitted] == [["a2", "b2"]]


def test_a_redelivered_arrival_of_an_answered_key_is_released_not_answered_again() -> None:
    j = join(2)
    j.process("k", 0, "a", 0, position=10)
    j.process("k", 1, "b", 1, position=20)
    # Consumed again (a rewind, a rebalance): at or before what was used.
    for source, item, position in ((0, "a-again", 10), (1, "b-again", 20), (0, "older", 9)):
        result = j.process("k", source, item, 2, position=position)
        assert not result.emitted and result.released == [item]


def test_any_join_late_arrivals_of_other_sources_stay_released() -> None:
    j = join(2, "any")
    assert [e.inputs for e in j.process("k", 0, "a", 0, position=5).emitted] == [["a"]]
    # The other source of the same request, arriving after the first answered: not a new one.
    result = j.process("k", 1, "b", 1, position=50)
    assert not result.emitted and result.released == ["b"]


def test_a_reopened_join_that_expires_is_not_reported_unfinished() -> None:
    # A producer's retry can write a record again further on: after the answer, that
    # duplicate opens a join whose partner never comes. It expires quietly.
    j = join(2)
    j.process("k", 0, "a", 0, position=10)
    j.process("k", 1, "b", 1, position=20)
    j.process("k", 0, "a-retried", 2, position=11)
    result = j.expire(2 + WINDOW)
    assert result.expired == ["k"] and result.released == ["a-retried"]
    assert result.unfinished == []
    # A first arrival that never completes is reported.
    j.process("other", 0, "x", 3, position=12)
    assert j.expire(3 + WINDOW).unfinished == [{0: "x"}]
