"""The headers of what a node writes: some of the incoming ones carried on, then its own.

Carried: the request id, the W3C trace context, a cyclic pipeline's visit
counts, a replayed request's lineage (so every record written for a replay
says so), where an experiment's split wants the answer copied, and the mark of a request that came as JSON (engine.runtime.reply_format). Its own, at the end: pipeline, step and schema version.

Hot path (bench/agent_bench.py --lineage): a replayed request comes with six
headers and every one of its records carries five of them on, so each header
is looked at once per list built (no lower-casing of names tensorflux itself
writes), and a fused output's list is the step's own with its tail swapped.
"""

from __future__ import annotations

from typing import Final

from engine import headers as h
from engine.codec import SCHEMA_VERSION
from engine.operators import revisits
from engine.runtime.reply_format import MARK
from engine.topology.graph import Node

Headers = list[tuple[str, bytes]]
Tail = tuple[tuple[str, bytes], ...]

ANSWER_TO: Final = "tensorflux-answer-to"
"""On a request an experiment's split sent from its default pipeline to another candidate:
the default's outputs topic, where the answer is copied (engine.runtime.experiment_relays)."""

CARRIED_HEADERS = frozenset(
    {
        h.REQUEST_ID,
        h.TRACEPARENT,
        revisits.VISITS_HEADER,
        h.REPLY_CONTENT_TYPE,
        ANSWER_TO,
        *h.REPLAY_HEADERS,
    }
)
"""Incoming headers a node passes on."""
_NOT_CONTENT_TYPE = frozenset({h.PIPELINE, h.STEP, h.SCHEMA_VERSION, h.ERROR, h.SELDON_ROUTE})
"""Names tensorflux writes that are not carried and cannot be a content-type in any case."""


def header_tail(node: Node) -> Tail:
    """What every record a node writes ends its headers with: who wrote it, in which schema."""
    return (
        (h.PIPELINE, node.pipeline.encode()),
        (h.STEP, node.name.encode()),
        (h.SCHEMA_VERSION, str(SCHEMA_VERSION).encode()),
    )


def carried(incoming: Headers) -> Headers:
    return [(key, value) for key, value in incoming if key in CARRIED_HEADERS]


def headers_for(incoming: Headers, request_id: str, tail: Tail) -> Headers:
    """The carried headers (the request id added when absent), then `tail`; a request that
    came as JSON (its last content-type, any case, says so) is marked after them, once."""
    if not incoming:  # the common case at a pipeline's inputs: nothing to carry over
        return [(h.REQUEST_ID, request_id.encode()), *tail]
    headers: Headers = []
    has_id = is_marked = False
    content_type: bytes | None = None
    for item in incoming:  # one pass, no per-header call: this runs for every record written
        key = item[0]
        if key in CARRIED_HEADERS:
            headers.append(item)
            if key == h.REQUEST_ID:
                has_id = True
            elif key == h.REPLY_CONTENT_TYPE:
                is_marked = True
        elif key not in _NOT_CONTENT_TYPE and key.lower() == h.CONTENT_TYPE:
            content_type = item[1]
    if not has_id:
        headers.append((h.REQUEST_ID, request_id.encode()))
    headers.extend(tail)
    if content_type is not None and not is_marked and h.is_json([(h.CONTENT_TYPE, content_type)]):
        headers.append(MARK)
    return headers


def retailed(headers: Headers, own: Tail, tail: Tail) -> Headers:
    """`carried(headers)` then `tail`, for `headers` a node wrote with its tail `own`: what
    a step writes as its fused pipeline output. A list `headers_for` built with `own` (its
    tuples, so nothing was inserted since) holds only carried headers before the tail and
    at most the JSON mark after it, so it is sliced, not filtered header by header."""
    end = len(headers) - len(own)
    if end >= 0 and headers[end] is own[0] and tuple(headers[end:]) == own:
        return [*headers[:end], *tail]
    if end >= 1 and headers[-1] == MARK and headers[end - 1] is own[0]:
        if tuple(headers[end - 1 : -1]) == own:
            return [*headers[: end - 1], MARK, *tail]
    return [*carried(headers), *tail]
