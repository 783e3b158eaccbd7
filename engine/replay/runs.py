"""A replay run's state, kept on Kafka so `--resume RUN` works from any machine.

The run's manifest (what it selected, where it sends, where its partition
ranges and the target's topics started) is one record on the compacted
`<prefix>.<ns>.replays` topic, keyed by run id. What was already sent is not
kept anywhere else: the target's requests topic says it, since every replayed
record carries the run id and its source coordinates. So a run killed at any
point resumes with nothing sent twice and nothing skipped.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import Producer

from engine import headers as h
from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.replay.diff import Tolerance
from engine.replay.errors import BadInvocation, ReplayError
from engine.replay.reading import RangeReader, latest_values
from engine.replay.selection import Selection
from engine.topic_reader import COMPACTED


def runs_topic(settings: KafkaSettings) -> str:
    return f"{settings.topic_prefix}.{settings.namespace}.replays"


def new_run_id(now_ms: int) -> str:
    moment = dt.datetime.fromtimestamp(now_ms / 1000).strftime("%Y%m%d-%H%M%S")
    return f"r{moment}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class Manifest:
    run: str
    source: str
    """SOURCE as given."""
    into: str | None
    into_model: str | None
    selection: Selection
    diff: Tolerance | None
    """None: the run does not diff."""
    started_ms: int
    ranges: dict[int, tuple[int, int]]
    """The source partitions' [start, end) offsets, fixed when the run started."""
    requests_from: dict[int, int]
    """Where the target's requests topic stood when the run started."""
    answers_from: dict[int, int]
    """Where the target's answers topic stood when the run started."""

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["selection"] = self.selection.to_json()
        data["diff"] = None if self.diff is None else asdict(self.diff)
        return data

    @staticmethod
    def from_json(data: dict[str, Any]) -> Manifest:
        def numbered(value: dict[str, Any]) -> dict[int, Any]:
            return {int(k): (tuple(v) if isinstance(v, list) else v) for k, v in value.items()}

        return Manifest(
            run=data["run"],
            source=data["source"],
            into=data.get("into"),
            into_model=data.get("into_model"),
            selection=Selection.from_json(data["selection"]),
            diff=None if data.get("diff") is None else Tolerance(**data["diff"]),
            started_ms=int(data["started_ms"]),
            ranges=numbered(data["ranges"]),
            requests_from=numbered(data["requests_from"]),
            answers_from=numbered(data["answers_from"]),
        )


def save(settings: KafkaSettings, manifest: Manifest, existing: Mapping[str, int]) -> None:
    """`existing`: the topics known to exist (an admin client costs ~50 ms: only without it)."""
    if runs_topic(settings) not in existing:
        TopicAdmin(settings).ensure([runs_topic(settings)], partitions=1, config=COMPACTED)
    # Not idempotent: its producer id would cost ~0.5 s on the embedded broker, and a
    # retry's duplicate of this one keyed record is harmless on a compacted topic.
    producer = Producer(settings.producer_config(**{"enable.idempotence": False}))
    producer.produce(
        runs_topic(settings), json.dumps(manifest.to_json()).encode(), manifest.run.encode()
    )
    if producer.flush(15):
        raise ReplayError(f"could not record run {manifest.run} on {runs_topic(settings)}")


def load(settings: KafkaSettings, run: str) -> Manifest:
    values = latest_values(settings, runs_topic(settings))
    value = values.get(run)
    if value is None:
        known = sorted(values)[-5:]
        hint = f"; recent runs: {', '.join(known)}" if known else ""
        raise BadInvocation(f"no replay run '{run}' in namespace '{settings.namespace}'{hint}")
    return Manifest.from_json(json.loads(value))


def positions_now(reader: RangeReader, topic: str, partitions: int) -> dict[int, int]:
    """Per partition, an offset at or before where the next record will land."""
    return {p: max(reader.watermarks(topic, p)) for p in range(partitions)}


def already_sent(
    reader: RangeReader, manifest: Manifest, topic: str, partitions: int, now_ms: int
) -> dict[str, str]:
    """Source coordinates → new request id of every request the run already wrote
    to the target's requests topic."""
    ends = reader.ends_now(topic, partitions, now_ms)
    ranges: dict[tuple[str, int], tuple[int, int | None]] = {
        (topic, p): (manifest.requests_from.get(p, 0), ends[p]) for p in range(partitions)
    }
    wanted = manifest.run.encode()
    sent: dict[str, str] = {}
    for message in reader.read(ranges):
        headers = message.headers() or []
        if h.header_bytes(headers, h.REPLAY_RUN) != wanted:
            continue
        source = h.header_value(headers, h.REPLAY_SOURCE)
        if source:
            sent[source] = (message.key() or b"").decode("utf-8", "replace")
    return sent
