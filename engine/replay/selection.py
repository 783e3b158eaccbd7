"""Which recorded requests a replay takes: bounds per partition, then record by record.

A partition's range is fixed when the run starts (its end is what was on the
topic then, so a replay never chases new traffic, and `--resume` sees the same
records). Within the range every record is checked against the window itself:
offsets from inclusive and to exclusive, timestamps likewise, since the
embedded broker answers `offsets_for_times` with a batch's base offset (or
earlier). Error records and records of earlier replays are not requests to
replay.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine import headers as h
from engine.replay.errors import BadInvocation
from engine.replay.fetching import ValueBudget
from engine.replay.reading import RangeReader, Recorded

_NOT_REQUESTS = frozenset({h.ERROR, h.REPLAY_RUN})
"""Error records, and earlier replays (replaying a pipeline into itself writes them)."""
LATE_MS = 60_000
"""A record stamped this long after --to-time ends its partition's read: records
created before the window's end but written later than that are not looked for."""


@dataclass(frozen=True)
class Selection:
    """What the user asked for (times in epoch ms)."""

    from_ms: int | None = None
    to_ms: int | None = None
    from_offset: int | None = None
    to_offset: int | None = None
    request_ids: tuple[str, ...] | None = None
    limit: int | None = None

    def check(self) -> None:
        """An impossible selection is a bad invocation."""
        if self.from_ms is not None and self.to_ms is not None and self.from_ms >= self.to_ms:
            raise BadInvocation(
                f"--from-time ({_iso(self.from_ms)}) is not before --to-time ({_iso(self.to_ms)})"
            )
        if (
            self.from_offset is not None
            and self.to_offset is not None
            and self.from_offset >= self.to_offset
        ):
            raise BadInvocation(
                f"--from-offset {self.from_offset} is not below --to-offset {self.to_offset}"
            )
        for name, value in (
            ("--from-offset", self.from_offset),
            ("--to-offset", self.to_offset),
        ):
            if value is not None and value < 0:
                raise BadInvocation(f"{name} must be 0 or more, got {value}")
        if self.limit is not None and self.limit < 1:
            raise BadInvocation(f"--limit must be 1 or more, got {self.limit}")
        if self.request_ids is not None and not self.request_ids:
            raise BadInvocation("--request-id names no request id")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(data: dict[str, Any]) -> Selection:
        ids = data.get("request_ids")
        return Selection(**{**data, "request_ids": None if ids is None else tuple(ids)})


def read_request_ids(values: Iterable[str]) -> tuple[str, ...]:
    """--request-id values; `@FILE` stands for the ids in FILE, one a line ('#' comments)."""
    ids: list[str] = []
    for value in values:
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                text = path.read_text()
            except OSError as error:
                raise BadInvocation(
                    f"cannot read request ids from {path}: {error.strerror}"
                ) from None
            ids += [line.strip() for line in text.splitlines() if line.strip() and line[:1] != "#"]
        else:
            ids.append(value)
    return tuple(dict.fromkeys(ids))


def partition_ranges(
    reader: RangeReader, topic: str, partitions: int, selection: Selection, started_ms: int
) -> tuple[dict[int, tuple[int, int]], list[str]]:
    """Per partition the [start, end) offsets to read, and warnings about records
    the window wants that retention has deleted."""
    ends = reader.ends_now(topic, partitions, started_ms)
    firsts = (
        reader.first_at_or_after(topic, partitions, selection.from_ms)
        if selection.from_ms is not None
        else {}
    )
    ranges: dict[int, tuple[int, int]] = {}
    warnings: list[str] = []
    for partition in range(partitions):
        low, _ = reader.watermarks(topic, partition)
        end = ends[partition]
        if selection.to_offset is not None:
            end = min(end, selection.to_offset)
        start = low
        if selection.from_offset is not None:
            start = max(start, selection.from_offset)
            if selection.from_offset < low:
                warnings.append(
                    f"{topic}[{partition}]: offsets {selection.from_offset}-{low - 1} are gone "
                    f"(deleted by retention): {low - selection.from_offset} record(s) not replayed"
                )
        if selection.from_ms is not None:
            first = firsts.get(partition, -1)
            if first < 0:
                start = end  # Kafka: nothing on this partition is that recent
            else:
                start = max(start, first)
                gone = _gone_before(reader, topic, partition, low, selection.from_ms)
                if gone:
                    warnings.append(gone)
        ranges[partition] = (start, max(start, end))
    return ranges, warnings


def _gone_before(
    reader: RangeReader, topic: str, partition: int, low: int, from_ms: int
) -> str | None:
    """Retention deleted the records before `low`: say how many, when the oldest one
    left is newer than the window's start (some of the window is gone)."""
    if low <= 0:
        return None
    found = list(reader.read({(topic, partition): (low, low + 1)}))
    if not found or found[0].timestamp()[1] <= from_ms:
        return None
    return retention_message(topic, partition, low, found[0].timestamp()[1], from_ms)


def retention_message(topic: str, partition: int, low: int, oldest_ms: int, from_ms: int) -> str:
    return (
        f"{topic}[{partition}]: --from-time is {_iso(from_ms)} but the oldest record left "
        f"(offset {low}) is from {_iso(oldest_ms)}: the {low} record(s) before it are gone "
        "(deleted by retention) and are not replayed"
    )


def select(
    reader: RangeReader,
    topic: str,
    ranges: dict[int, tuple[int, int]],
    selection: Selection,
    budget: ValueBudget | None = None,
) -> list[Recorded]:
    """The requests in the ranges that the selection keeps, in time order (then
    partition and offset), cut to --limit; with a budget, only the values that fit
    it are kept (engine.replay.fetching)."""
    wanted = set(selection.request_ids) if selection.request_ids is not None else None
    from_ms, to_ms = selection.from_ms, selection.to_ms
    chosen: list[Recorded] = []
    bounds = {(topic, p): (start, end) for p, (start, end) in ranges.items()}
    for message in reader.read(bounds):
        timestamp = message.timestamp()[1]
        if to_ms is not None and timestamp >= to_ms:
            if timestamp >= to_ms + LATE_MS:
                reader.finish((topic, message.partition()))
            continue
        if from_ms is not None and timestamp < from_ms:
            continue
        headers = message.headers() or []
        if headers and not _NOT_REQUESTS.isdisjoint([key for key, _ in headers]):
            continue
        record = Recorded.of(message, headers)
        if wanted is not None:
            request_id = record.key or h.header_value(headers, h.REQUEST_ID) or ""
            if request_id not in wanted:
                continue
        if budget is not None:
            budget.keep(record)
        chosen.append(record)
    chosen.sort(key=lambda r: (r.timestamp_ms, r.partition, r.offset))
    if selection.limit is not None:
        if budget is not None:
            for record in chosen[selection.limit :]:
                budget.release(record)
        del chosen[selection.limit :]
    return chosen


def original_id(record: Recorded) -> str:
    return record.key or h.header_value(record.headers, h.REQUEST_ID) or ""


def _iso(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000).isoformat(timespec="milliseconds")
