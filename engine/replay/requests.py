"""A recorded request made into a replayed one: new id, same tensors, lineage headers.

The new id is the run id with the original's partition and offset, so it
never meets an original id and `--resume` derives the same one again. Only
the id changes in the payload: an Avro value has its leading id string
swapped and every byte after it kept (tensors byte for byte); a JSON value
gets a new "id". A value neither can read is sent as it was (it failed
before and should fail the same way); its key and header carry the new id.
"""

from __future__ import annotations

import json

from engine import headers as h
from engine.codec.avro_wire import Truncated, encode_string, read_span
from engine.codec.errors import CodecError
from engine.replay.reading import Recorded
from engine.replay.selection import original_id

_DROPPED = frozenset({h.REQUEST_ID, h.PIPELINE, h.STEP, h.TRACEPARENT, h.ERROR, *h.REPLAY_HEADERS})
"""The original's headers that a replay replaces: identity, position, its trace."""


def new_request_id(run: str, record: Recorded) -> str:
    return f"{run}-{record.partition}-{record.offset}"


def replay_headers(
    run: str, record: Recorded, new_id: str, pipeline: str | None
) -> list[tuple[str, bytes]]:
    return RequestMaker(run, pipeline).headers(record, new_id)[0]


class RequestMaker:
    """Makes a run's replayed requests (what is the same for all of them, computed once)."""

    def __init__(self, run: str, pipeline: str | None) -> None:
        self.run = run
        self._run = (h.REPLAY_RUN, run.encode())
        self._tail = [(h.PIPELINE, pipeline.encode())] if pipeline is not None else []
        self._topics: dict[str, str] = {}

    def _topic(self, topic: str) -> str:
        known = self._topics.get(topic)
        if known is None:
            known = self._topics[topic] = f"{topic}:"
        return known

    def headers(self, record: Recorded, new_id: str) -> tuple[list[tuple[str, bytes]], bool]:
        """The replayed request's headers, and whether its payload is JSON."""
        kept: list[tuple[str, bytes]] = []
        is_json = False
        for key, value in record.headers or ():
            lowered = key.lower()
            if lowered in _DROPPED:
                continue
            if lowered == h.CONTENT_TYPE:
                is_json = h.is_json([(key, value)])
            kept.append((key, value))
        kept += [
            (h.REQUEST_ID, new_id.encode()),
            self._run,
            (h.REPLAY_OF, (record.key or original_id(record)).encode()),
            (
                h.REPLAY_SOURCE,
                f"{self._topic(record.topic)}{record.partition}:{record.offset}".encode(),
            ),
            (h.ORIGINAL_TIMESTAMP, str(record.timestamp_ms).encode()),
            *self._tail,
        ]
        return kept, is_json

    def make(self, record: Recorded) -> tuple[str, bytes, list[tuple[str, bytes]]]:
        """(new id, payload, headers) of the replay of `record`."""
        new_id = f"{self.run}-{record.partition}-{record.offset}"
        headers, is_json = self.headers(record, new_id)
        return new_id, _with_id(record.value, is_json, new_id), headers


def with_request_id(value: bytes, headers: list[tuple[str, bytes]], new_id: str) -> bytes:
    """The payload with its id replaced and everything else unchanged."""
    return _with_id(value, h.is_json(headers), new_id)


def _with_id(value: bytes, is_json: bool, new_id: str) -> bytes:
    if is_json:
        try:
            document = json.loads(value)
        except ValueError:
            return value
        if not isinstance(document, dict):
            return value
        document["id"] = new_id
        return json.dumps(document, separators=(",", ":")).encode()
    span = avro_id_end(value)
    if span is None:
        return value
    return encode_string(new_id) + value[span:]


def avro_id_end(value: bytes) -> int | None:
    """Where the Avro string at the start of `value` (a message's id) ends; None if it is not one."""
    try:
        return read_span(value, 0, len(value))[1]
    except (IndexError, Truncated, CodecError):
        return None
