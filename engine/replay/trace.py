"""`pipeline trace`: every record one request left, in time order — the audit trail.

A request's records share its id as their key across its pipeline, its steps,
its error records and the pipelines chained on it; replays of it carry its id
in `tensorflux-replay-of` on every record they leave, and a replayed request
names its original the same way, so one pass over the namespace's data topics
finds the request and its replays, and a second (from the original's
timestamp) the original it replays.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine import headers as h
from engine.admin import TopicAdmin
from engine.codec import CodecError, decode_error, decode_payload
from engine.config import KafkaSettings
from engine.errors import TensorfluxError
from engine.replay.reading import TP, RangeReader, Recorded
from engine.topology import TopicNames

DATA_KINDS = ("pipeline", "step", "model", "errors")
SKEW_MS = 60_000
"""Clock skew allowed between the producers of a request's records."""
_RANK = {"pipeline-inputs": 0, "step-inputs": 1, "step-outputs": 2, "model-inputs": 1}


class TraceError(TensorfluxError):
    """Nothing to trace."""


@dataclass
class Hop:
    record: Recorded
    kind: str
    pipeline: str | None
    step: str | None
    tensors: list[dict[str, Any]]
    error: dict[str, str] | None
    rank: int

    @property
    def request_id(self) -> str:
        return self.record.key

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "topic": self.record.topic,
            "partition": self.record.partition,
            "offset": self.record.offset,
            "timestamp_ms": self.record.timestamp_ms,
            "kind": self.kind,
            "pipeline": self.pipeline,
            "step": self.step,
            "tensors": self.tensors,
            "request_id": self.request_id,
        }
        if self.error is not None:
            out["error"] = self.error
        return out


def trace(settings: KafkaSettings, request_id: str, *, from_ms: int | None = None) -> list[Hop]:
    topics = settings.topics()
    existing = TopicAdmin(settings).existing()
    data = {
        topic: count
        for topic, count in existing.items()
        if (owner := topics.parse(topic)) is not None and owner.kind in DATA_KINDS
    }
    reader = RangeReader(settings)
    try:
        found = _scan(reader, data, from_ms, lambda key, of: request_id in (key, of))
        originals = {
            of
            for record in found
            if record.key == request_id
            and (of := h.header_value(record.headers, h.REPLAY_OF)) is not None
        }
        if originals:
            stamps = [
                int(h.header_value(r.headers, h.ORIGINAL_TIMESTAMP) or 0)
                for r in found
                if r.key == request_id
            ]
            since = max(0, min(stamps) - SKEW_MS) if stamps else None
            found += _scan(reader, data, since, lambda key, of: key in originals)
    finally:
        reader.close()
    if not found:
        raise TraceError(
            f"no record of request '{request_id}' on the topics of namespace '{topics.namespace}'"
        )
    unique = {(r.topic, r.partition, r.offset): r for r in found}
    hops = [_hop(record, topics) for record in unique.values()]
    hops.sort(
        key=lambda hop: (hop.record.timestamp_ms, hop.rank, hop.record.topic, hop.record.offset)
    )
    return hops


def _scan(
    reader: RangeReader, data: Mapping[str, int], since_ms: int | None, keep: Any
) -> list[Recorded]:
    ranges: dict[TP, tuple[int, int | None]] = {}
    for topic, partitions in data.items():
        starts = (
            reader.first_at_or_after(topic, partitions, since_ms) if since_ms is not None else {}
        )
        for partition in range(partitions):
            low, high = reader.watermarks(topic, partition)
            if high <= low:
                continue
            start = starts.get(partition, low)
            if start >= 0:
                ranges[(topic, partition)] = (max(low, start), None)
    found = []
    for message in reader.read(ranges):
        raw = message.key()
        key = raw.decode("utf-8", "replace") if raw else ""
        of = h.header_value(message.headers(), h.REPLAY_OF)
        if keep(key, of):
            found.append(Recorded.of(message))
    return found


def _hop(record: Recorded, topics: TopicNames) -> Hop:
    owner = topics.parse(record.topic)
    assert owner is not None
    pipeline = owner.pipeline or None
    step = owner.step or None
    if owner.kind == "errors":
        pipeline = h.header_value(record.headers, h.PIPELINE) or None
        step = h.header_value(record.headers, h.STEP) or None
    rank = _RANK.get(f"{owner.kind}-{owner.port}", 3)
    if h.is_error(record.headers):
        try:
            failure = decode_error(record.value)
            error = {"kind": failure.kind, "stage": failure.stage, "reason": failure.reason}
        except CodecError as problem:
            error = {"kind": "?", "stage": "", "reason": f"cannot decode: {problem}"}
        return Hop(record, "error", pipeline, step, [], error, 4)
    kind = "request" if owner.port == "inputs" else "response"
    try:
        message = decode_payload(record.value, record.headers, kind)  # type: ignore[arg-type]
        tensors = [
            {"name": t.name, "datatype": t.datatype, "shape": list(t.shape)}
            for t in message.tensors
        ]
    except CodecError:
        tensors = []
    return Hop(record, kind, pipeline, step, tensors, None, rank)


def print_trace(request_id: str, hops: list[Hop], topics: TopicNames) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"trace of {request_id}: {len(hops)} record(s)")
    for column in ("time", "+ms", "kind", "topic", "p:offset", "request id", "tensors"):
        table.add_column(column, no_wrap=column != "tensors")
    prefix = f"{topics.prefix}.{topics.namespace}."
    previous: int | None = None
    for hop in hops:
        stamp = hop.record.timestamp_ms
        since = "" if previous is None else str(stamp - previous)
        previous = stamp
        if hop.error is not None:
            what = f"{hop.error['kind']} at {hop.error['stage']}: {hop.error['reason']}"
        else:
            what = ", ".join(f"{t['name']} {t['datatype']}{t['shape']}" for t in hop.tensors)
        table.add_row(
            dt.datetime.fromtimestamp(stamp / 1000).isoformat(timespec="milliseconds"),
            since,
            hop.kind,
            hop.record.topic.removeprefix(prefix),
            f"{hop.record.partition}:{hop.record.offset}",
            hop.request_id,
            what,
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=200)
    console.print(table)
