"""Kafka header names tensorflux reads and writes, and helpers for them.

confluent-kafka gives headers as a list of (str, bytes | None) tuples, or
None when a record has none; producers accept the same list. Names are
matched case-insensitively (producers such as kcat may write `Content-Type`)
and the last occurrence wins, as Kafka's `Headers.lastHeader` does.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from typing import Final

Headers = Sequence[tuple[str, bytes | None]] | None

REQUEST_ID: Final = "x-request-id"
PIPELINE: Final = "pipeline"
STEP: Final = "step"
TRACEPARENT: Final = "traceparent"  # W3C trace context
CONTENT_TYPE: Final = "content-type"
ERROR: Final = "tensorflux-error"  # on error records; the value is the error kind
SCHEMA_VERSION: Final = "tensorflux-schema-version"  # Avro schema version; absent means 1
# Lineage of a replayed request (PRODUCT.md "Replay and lineage"): every record a
# pipeline writes for it carries them on, so consumers can tell replays from live traffic.
SELDON_ROUTE: Final = "x-seldon-route"  # the experiment candidate that answered
REPLAY_RUN: Final = "tensorflux-replay-run"  # the replay run's id
REPLAY_OF: Final = "tensorflux-replay-of"  # the original request id
REPLAY_SOURCE: Final = "tensorflux-replay-source"  # topic:partition:offset of the original
ORIGINAL_TIMESTAMP: Final = "tensorflux-original-timestamp"  # the original's timestamp, ms
REPLAY_HEADERS: Final = (REPLAY_RUN, REPLAY_OF, REPLAY_SOURCE, ORIGINAL_TIMESTAMP)
# A request that came as JSON is answered as JSON: the node that read it says so here, and
# every node after it carries the header on to whatever writes the answer.
REPLY_CONTENT_TYPE: Final = "tensorflux-reply-content-type"

JSON_CONTENT_TYPE: Final = "application/json"
AVRO_CONTENT_TYPE: Final = "application/avro"


def header_bytes(headers: Headers, name: str) -> bytes | None:
    """The value of the last header called `name` (any case), or None."""
    if not headers:
        return None
    wanted = name.lower()
    for key, value in reversed(headers):
        if key == name or key.lower() == wanted:
            return value
    return None


def header_value(headers: Headers, name: str, default: str | None = None) -> str | None:
    """`header_bytes` decoded as UTF-8 (undecodable bytes replaced), or `default`."""
    value = header_bytes(headers, name)
    if value is None:
        return default
    if isinstance(value, str):  # tolerate producers that hand strings through
        return value
    return value.decode("utf-8", "replace")


def is_json(headers: Headers) -> bool:
    """Whether the content-type header names JSON (application/json, or any
    `+json` media type, parameters such as charset ignored)."""
    value = header_value(headers, CONTENT_TYPE)
    if not value:
        return False
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type == JSON_CONTENT_TYPE or media_type.endswith("+json")


def is_error(headers: Headers) -> bool:
    """Whether the record is an error record (carries the tensorflux-error header)."""
    return header_bytes(headers, ERROR) is not None


def build_headers(
    *,
    request_id: str | None = None,
    pipeline: str | None = None,
    step: str | None = None,
    traceparent: str | None = None,
    content_type: str | None = None,
    schema_version: int | str | None = None,
    error: str | None = None,
    extra: Iterable[tuple[str, str | bytes]] = (),
) -> list[tuple[str, bytes]]:
    """A confluent-kafka header list of the given values, skipping those that are None."""
    named = (
        (REQUEST_ID, request_id),
        (PIPELINE, pipeline),
        (STEP, step),
        (TRACEPARENT, traceparent),
        (CONTENT_TYPE, content_type),
        (SCHEMA_VERSION, None if schema_version is None else str(schema_version)),
        (ERROR, error),
    )
    out = [(key, value.encode("utf-8")) for key, value in named if value is not None]
    out.extend(
        (key, value if isinstance(value, bytes) else value.encode("utf-8")) for key, value in extra
    )
    return out


def with_headers(headers: Headers, **values: str | bytes | None) -> list[tuple[str, bytes]]:
    """A copy of `headers` where each keyword (underscores become dashes, e.g.
    `x_request_id`) replaces every header of that name; None removes it."""
    replacing = {key.replace("_", "-").lower(): value for key, value in values.items()}
    out = [(k, v) for k, v in (headers or ()) if k.lower() not in replacing]
    for key, value in replacing.items():
        if value is not None:
            out.append((key, value if isinstance(value, bytes) else value.encode("utf-8")))
    return out


_SELDON_VERSION = re.compile(r"_[0-9]+$")


def route_candidate(value: str | None, candidates: Collection[str]) -> str | None:
    """The candidate of `candidates` an `x-seldon-route` value names, or None. tensorflux
    writes the bare name (`mul10`); Seldon Core 2 writes `:mul10_1:` (the model's name
    and version between colons, one such segment per model a request went through,
    `NAME.pipeline` for a pipeline), and a Seldon client sends it back to stay on it."""
    if not value:
        return None
    if value in candidates:
        return value
    for segment in filter(None, value.split(":")):
        for name in (segment, segment.removesuffix(".pipeline"), _SELDON_VERSION.sub("", segment)):
            if name in candidates:
                return name
    return None
