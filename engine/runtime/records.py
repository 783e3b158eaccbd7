"""A consumed Kafka record as agents see it: decoded at most once, however many agents read it."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from engine import headers as h
from engine.codec import decode_payload, encode_error
from engine.messages import ErrorRecord, InferenceMessage, MessageKind

log = logging.getLogger("tensorflux.worker")

RecordRef = tuple[str, int, int]
"""(topic, partition, offset): what a commit needs to know about a record."""


@dataclass(slots=True)
class Outgoing:
    """A record to produce."""

    topic: str
    key: str
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str
    value: bytes
    headers: list[tuple[str, bytes]]
    _decoded: dict[str, InferenceMessage] | None = field(default=None, compare=False)
    """Made on the first decode: most records on the fast lane are never decoded."""

    @property
    def ref(self) -> RecordRef:
        return (self.topic, self.partition, self.offset)

    def header(self, name: str) -> bytes | None:
        return h.header_bytes(self.headers, name)

    def is_error(self) -> bool:
        return h.is_error(self.headers)

    def message(self, kind: MessageKind) -> InferenceMessage:
        """The record's value decoded as `kind` (cached); raises CodecError."""
        decoded = self._decoded
        if decoded is None:
            decoded = self._decoded = {}
        message = decoded.get(kind)
        if message is None:
            message = decode_payload(self.value, self.headers, kind, default_id=self.request_id)
            decoded[kind] = message
        return message

    @property
    def request_id(self) -> str:
        """The key, else the x-request-id header, else an id unique to this record: two
        keyless requests must never share an answer (or a join)."""
        return (
            self.key
            or h.header_value(self.headers, h.REQUEST_ID)
            or f"{self.topic}:{self.partition}:{self.offset}"
        )


def chunk_by_topic(
    messages: Iterable[Any], *, partition_eof: int
) -> tuple[dict[str, list[Record]], dict[tuple[str, int], int]]:
    """A consumed chunk (confluent-kafka messages) as each topic's records in order, and the
    last offset consumed per partition; consume errors are logged (but for the end of a
    partition, code `partition_eof`) and skipped."""
    by_topic: dict[str, list[Record]] = {}
    last_offsets: dict[tuple[str, int], int] = {}
    for message in messages:
        error = message.error()
        if error is not None:
            if error.code() != partition_eof:
                log.warning("consume error: %s", error)
            continue
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        last_offsets[(topic, partition)] = offset
        key = message.key()
        record = Record(
            topic,
            partition,
            offset,
            key.decode("utf-8", "replace") if key else "",
            message.value() or b"",
            message.headers() or [],
        )
        records = by_topic.get(topic)
        if records is None:
            by_topic[topic] = [record]
        else:
            records.append(record)
    return by_topic, last_offsets


def error_outgoing(
    record: ErrorRecord,
    headers: list[tuple[str, bytes]],
    errors_topic: str,
    failure_topic: str,
) -> list[Outgoing]:
    """An error record to the errors topic and to where a caller waits for the answer,
    marked with the error header (any earlier mark replaced)."""
    value = encode_error(record)
    marked = [(k, v) for k, v in headers if k != h.ERROR] + [(h.ERROR, record.kind.encode())]
    return [
        Outgoing(errors_topic, record.request_id, value, marked),
        Outgoing(failure_topic, record.request_id, value, marked),
    ]
