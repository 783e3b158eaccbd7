"""The headers of what a node writes: some of the incoming ones carried on, then its own.

Carried: the request id, the W3C trace context, a cyclic pipeline's visit
counts, a replayed request's lineage (so every record written for a replay
says so), where an experiment's split wants the answer copied, and the mark of a request that came as JSON (engine.runtime.reply_format). Its own, at the end: pipeline, step and schema version.
"""

from __future__ import annotations

from typing import Final

from engine import headers as h
from engine.codec import SCHEMA_VERSION
from engine.operators import revisits
from engine.runtime.reply_format import marked
from engine.topology.graph import Node

Headers = list[tuple[str, bytes]]

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


def header_tail(node: Node) -> tuple[tuple[str, bytes], ...]:
    """What every record a node writes ends its headers with: who wrote it, in which schema."""
    return (
        (h.PIPELINE, node.pipeline.encode()),
        (h.STEP, node.name.encode()),
        (h.SCHEMA_VERSION, str(SCHEMA_VERSION).encode()),
    )


def carried(incoming: Headers) -> Headers:
    return [(key, value) for key, value in incoming if key in CARRIED_HEADERS]


def headers_for(incoming: Headers, request_id: str, tail: tuple[tuple[str, bytes], ...]) -> Headers:
    """The carried headers (the request id added when absent), then `tail`."""
    if not incoming:  # the common case at a pipeline's inputs: nothing to carry over
        return [(h.REQUEST_ID, request_id.encode()), *tail]
    headers = carried(incoming)
    for key, _ in headers:  # a loop, not any(genexpr): this runs for every record written
        if key == h.REQUEST_ID:
            break
    else:
        headers.append((h.REQUEST_ID, request_id.encode()))
    headers.extend(tail)
    return marked(incoming, headers)
