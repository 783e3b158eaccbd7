"""Visit counts of cyclic pipelines, carried in the tensorflux-visits header."""

from __future__ import annotations

from engine.operators import revisits


def test_round_trip() -> None:
    visits = {"increment": 3, "below-limit": 2}
    encoded = revisits.format_visits(visits)
    assert encoded == b"below-limit=2,increment=3"  # sorted: stable bytes
    assert revisits.parse(encoded) == visits


def test_missing_or_empty_header_is_no_visits() -> None:
    assert revisits.parse(None) == {}
    assert revisits.parse(b"") == {}


def test_malformed_parts_are_skipped() -> None:
    assert revisits.parse(b"a=1,junk,b=x,=3,c=2,\xff=4") == {"a": 1, "c": 2, "\ufffd": 4}


def test_step_names_may_contain_equals_signs_only_before_the_last() -> None:
    assert revisits.parse(b"a=b=2") == {"a=b": 2}


def test_combine_takes_the_highest_count_of_each_step() -> None:
    assert revisits.combine([{"a": 1, "b": 4}, {"a": 3}, {}]) == {"a": 3, "b": 4}
    assert revisits.combine([]) == {}
