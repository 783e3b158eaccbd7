"""What a node's records carry: the one-pass header building gives exactly the headers the
plain rules give (carried ones in order, the id when absent, the tail, the JSON mark)."""

from __future__ import annotations

import random

from engine import headers as h
from engine.operators import revisits
from engine.runtime.node_headers import CARRIED_HEADERS, carried, headers_for, retailed
from engine.runtime.reply_format import MARK

STEP_TAIL = ((h.PIPELINE, b"p"), (h.STEP, b"s"), (h.SCHEMA_VERSION, b"2"))
OUTPUT_TAIL = ((h.PIPELINE, b"p"), (h.STEP, b"output"), (h.SCHEMA_VERSION, b"2"))
POOL = [
    (h.REQUEST_ID, b"r-1"),
    ("X-Request-Id", b"r-2"),  # not ours: names are matched exactly when carried
    (h.TRACEPARENT, b"00-ab-cd-01"),
    (h.CONTENT_TYPE, b"application/json"),
    ("Content-Type", b"application/json; charset=utf-8"),
    (h.CONTENT_TYPE, b"application/avro"),
    ("CONTENT-TYPE", b"application/vnd.x+json"),
    (h.CONTENT_TYPE, None),
    (h.REPLY_CONTENT_TYPE, b"application/json"),
    (h.REPLAY_RUN, b"run"),
    (h.REPLAY_OF, b"t-1"),
    (h.REPLAY_SOURCE, b"topic:0:1"),
    (h.ORIGINAL_TIMESTAMP, b"1764614400000"),
    (h.PIPELINE, b"upstream"),
    (h.STEP, b"a"),
    (h.SCHEMA_VERSION, b"1"),
    (h.ERROR, b"model"),
    (h.SELDON_ROUTE, b"v2"),
    (revisits.VISITS_HEADER, b"a=1"),
    ("foo", b"bar"),
]


def plain_rules(incoming: list, request_id: str, tail: tuple) -> list:
    """The rules as written before the one-pass version (the reference)."""
    if not incoming:
        return [(h.REQUEST_ID, request_id.encode()), *tail]
    out = [(k, v) for k, v in incoming if k in CARRIED_HEADERS]
    if all(k != h.REQUEST_ID for k, _ in out):
        out.append((h.REQUEST_ID, request_id.encode()))
    out.extend(tail)
    if h.is_json(incoming) and all(k != h.REPLY_CONTENT_TYPE for k, _ in out):
        out.append(MARK)
    return out


def cases(count: int = 3000) -> list[list]:
    rng = random.Random(11)
    return [rng.sample(POOL, rng.randint(0, 8)) for _ in range(count)]


def test_headers_for_follows_the_plain_rules_for_any_mix_of_headers() -> None:
    for incoming in cases():
        assert headers_for(incoming, "new", STEP_TAIL) == plain_rules(incoming, "new", STEP_TAIL)


def test_a_replayed_request_keeps_its_lineage_on_what_the_step_and_its_output_write() -> None:
    lineage = [(h.REQUEST_ID, b"run-0-5"), *POOL[9:13], (h.PIPELINE, b"p")]
    step = headers_for(lineage, "ignored", STEP_TAIL)
    assert step == [(h.REQUEST_ID, b"run-0-5"), *POOL[9:13], *STEP_TAIL]
    assert retailed(step, STEP_TAIL, OUTPUT_TAIL) == [
        (h.REQUEST_ID, b"run-0-5"),
        *POOL[9:13],
        *OUTPUT_TAIL,
    ]


def test_the_fused_output_swaps_the_tail_as_filtering_would() -> None:
    for incoming in cases():
        step = headers_for(incoming, "new", STEP_TAIL)
        expected = [*carried(step), *OUTPUT_TAIL]
        assert retailed(step, STEP_TAIL, OUTPUT_TAIL) == expected


def test_lists_not_built_with_the_tail_are_filtered_header_by_header() -> None:
    for incoming in cases(500):
        step = headers_for(incoming, "new", STEP_TAIL)
        # the visits header rewritten after the tail (a cyclic pipeline), or an error mark
        for changed in (
            h.with_headers(step, **{revisits.VISITS_HEADER: b"s=2"}),
            [*step, (h.ERROR, b"model")],
            [("foo", b"bar"), *[(key, value) for key, value in STEP_TAIL]],  # equal, not its own
        ):
            expected = [*carried(changed), *OUTPUT_TAIL]
            assert retailed(changed, STEP_TAIL, OUTPUT_TAIL) == expected
