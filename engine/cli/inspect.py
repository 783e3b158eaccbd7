"""`tensorflux pipeline inspect REF`: the records (decoded tensors) on a pipeline's topics.

What a REF names is read back from the topics on the broker with
`TopicNames.parse`, so a pipeline's steps are the ones that have topics, and
the records are read with the shared `RangeReader` (engine/topic_reader.py).
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import threading
import time
from typing import TYPE_CHECKING

from engine.cli.errors import BadReference, BadTime, UnknownPipeline, UnknownStep
from engine.cli.options import add_kafka_options, settings_from
from engine.cli.records import Row, RowPrinter, Target, decode_row
from engine.cli.stopping import stop_on_signals
from engine.config import KafkaSettings
from engine.topology import TopicNames

if TYPE_CHECKING:
    from engine.topic_reader import RangeReader

DEFAULT_LAST = 10
OUTPUTS_ORDER = 1_000_000
"""The pipeline's outputs come after all its steps in a listing."""


def register(commands: argparse._SubParsersAction) -> None:
    inspect = commands.add_parser(
        "inspect",
        help="show the records (decoded tensors) on a pipeline's topics",
        description="REF is a pipeline ('p': all its topics), a step ('p.step.s' or 'p.s': its "
        "inputs and outputs), a topic ('p.inputs', 'p.step.s.outputs') or a tensor "
        "('p.step.s.outputs.OUTPUT0'). Shows the last N records per partition, or from "
        "--from-offset/--from-time on; --request-id keeps one request's records (searching the "
        "whole topic unless a position is given).",
    )
    inspect.add_argument("ref", metavar="REF")
    inspect.add_argument("--request-id", help="only this request's records")
    position = inspect.add_mutually_exclusive_group()
    position.add_argument(
        "--from-offset", type=int, metavar="N", help="start at offset N in every partition"
    )
    position.add_argument(
        "--from-time",
        metavar="T",
        help="start at this time: ISO 8601 ('2025-01-31T12:00:00'), epoch ms, or ago ('10m', '2h')",
    )
    inspect.add_argument(
        "-n",
        "--last",
        "--offset",  # Seldon's `inspect --offset N`: the last N messages
        dest="last",
        type=int,
        metavar="N",
        help=f"the last N records per partition (default {DEFAULT_LAST}; "
        "all from --from-offset/--from-time/--request-id)",
    )
    inspect.add_argument(
        "-o",
        "--output",
        "--format",
        dest="output",
        choices=("table", "json", "raw"),
        default="table",
        help="table; json (one array, or one object a line with --follow); raw (Seldon's: "
        "topic, request id and the record as compact JSON, one line each)",
    )
    inspect.add_argument(
        "-t", "--truncate", action="store_true", help="show at most 8 values of each tensor"
    )
    inspect.add_argument(
        "-f", "--follow", action="store_true", help="then print new records as they come"
    )
    inspect.add_argument("-v", "--verbose", action="store_true", help="show record headers")
    add_kafka_options(inspect)
    inspect.set_defaults(handler=run_inspect)


def resolve_ref(ref: str, topics: TopicNames, existing: dict[str, int]) -> list[Target]:
    """The topics (and tensor) a reference names; a bare pipeline means all its topics."""
    parts = ref.split(".")
    pipeline, rest = parts[0], parts[1:]
    if not pipeline:
        raise BadReference(ref, empty_pipeline=True)
    if not rest:
        return _pipeline_targets(pipeline, topics, existing)
    if rest[0] in ("inputs", "outputs") and len(rest) <= 2:
        topic = (
            topics.pipeline_inputs(pipeline)
            if rest[0] == "inputs"
            else topics.pipeline_outputs(pipeline)
        )
        order = 0 if rest[0] == "inputs" else OUTPUTS_ORDER
        return [Target(topic, rest[0], order, rest[1] if len(rest) == 2 else None)]
    if rest[0] == "step":
        rest = rest[1:]
    if not rest or len(rest) > 3 or (len(rest) > 1 and rest[1] not in ("inputs", "outputs")):
        raise BadReference(ref)
    step = rest[0]
    ports = [rest[1]] if len(rest) > 1 else ["inputs", "outputs"]
    tensor = rest[2] if len(rest) == 3 else None
    targets = []
    for index, port in enumerate(ports):
        topic = (
            topics.step_inputs(pipeline, step)
            if port == "inputs"
            else topics.step_outputs(pipeline, step)
        )
        targets.append(Target(topic, f"step.{step}.{port}", 1 + index, tensor))
    if not any(t.topic in existing for t in targets):
        raise UnknownStep(pipeline, step, _steps(pipeline, topics, existing))
    return targets


def _steps(pipeline: str, topics: TopicNames, existing: dict[str, int]) -> list[str]:
    """The steps of `pipeline` that have topics on the broker, sorted."""
    owners = (topics.parse(topic) for topic in existing)
    return sorted(
        {o.step for o in owners if o is not None and o.kind == "step" and o.pipeline == pipeline}
    )


def _pipeline_targets(pipeline: str, topics: TopicNames, existing: dict[str, int]) -> list[Target]:
    inputs, outputs = topics.pipeline_inputs(pipeline), topics.pipeline_outputs(pipeline)
    if inputs not in existing and outputs not in existing:
        owners = (topics.parse(topic) for topic in existing)
        known = sorted({o.pipeline for o in owners if o is not None and o.pipeline})
        raise UnknownPipeline(pipeline, f"on the broker (namespace '{topics.namespace}')", known)
    targets = [Target(inputs, "inputs", 0)]
    for index, step in enumerate(_steps(pipeline, topics, existing)):
        targets.append(
            Target(topics.step_inputs(pipeline, step), f"step.{step}.inputs", 1 + 2 * index)
        )
        targets.append(
            Target(topics.step_outputs(pipeline, step), f"step.{step}.outputs", 2 + 2 * index)
        )
    targets.append(Target(outputs, "outputs", OUTPUTS_ORDER))
    return targets


def parse_time(text: str, now_ms: int | None = None) -> int:
    """Epoch ms from ISO 8601, epoch ms digits, or an age like '10m' / '90s' / '2h'."""
    now_ms = now_ms if now_ms is not None else time.time_ns() // 1_000_000
    if text.isdigit():
        return int(text)
    age = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", text.strip())
    if age:
        unit = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}[age.group(2)]
        return now_ms - int(float(age.group(1)) * unit)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadTime(text) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()  # local time, as a user typing it means
    return int(moment.timestamp() * 1000)


def read_records(
    settings: KafkaSettings,
    targets: list[Target],
    *,
    last: int | None = None,
    offset: int | None = None,
    from_ms: int | None = None,
    request_id: str | None = None,
) -> list[Row]:
    """The records of `targets`, decoded, in topic order then offset order."""
    from engine.topic_reader import RangeReader

    with RangeReader(settings, "inspect") as reader:
        return _read_backlog(
            reader,
            settings,
            targets,
            last=last,
            offset=offset,
            from_ms=from_ms,
            request_id=request_id,
        )


def _read_backlog(
    reader: RangeReader,
    settings: KafkaSettings,
    targets: list[Target],
    *,
    last: int | None,
    offset: int | None,
    from_ms: int | None,
    request_id: str | None,
) -> list[Row]:
    from engine.admin import TopicAdmin

    existing = TopicAdmin(settings).existing()
    targets = [t for t in targets if t.topic in existing]
    positioned = offset is not None or from_ms is not None
    if last is None and not positioned and request_id is None:
        last = DEFAULT_LAST
    by_topic = {t.topic: t for t in targets}
    rows: dict[tuple[str, int], list[Row]] = {}
    starts = []
    for target in targets:
        found = reader.start_offsets(
            target.topic,
            existing[target.topic],
            last=None if request_id else last,
            offset=offset,
            from_ms=from_ms,
        )
        starts += [(target.topic, p, o) for p, o in found.items()]
    for message in reader.read(starts):
        row = decode_row(by_topic[message.topic()], message, from_ms, request_id)
        if row is not None:
            rows.setdefault((message.topic(), message.partition()), []).append(row)
    out: list[Row] = []
    for found_rows in rows.values():
        found_rows.sort(key=lambda r: r.offset)
        out.extend(found_rows[-last:] if last else found_rows)
    out.sort(key=lambda r: (r.target.order, r.partition, r.offset))
    return out


def run_inspect(args: argparse.Namespace) -> int:
    from engine.admin import TopicAdmin
    from engine.topic_reader import RangeReader

    settings = settings_from(args)
    # A follower stops on SIGTERM from its first moment: a signal that came while the
    # backlog was still being read (and printed) would otherwise kill it with -15.
    stop = stop_on_signals() if args.follow else None
    topics = settings.topics()
    targets = resolve_ref(args.ref, topics, TopicAdmin(settings).existing())
    from_ms = parse_time(args.from_time) if args.from_time else None
    with RangeReader(settings, "inspect") as reader:
        rows = _read_backlog(
            reader,
            settings,
            targets,
            last=args.last,
            offset=args.from_offset,
            from_ms=from_ms,
            request_id=args.request_id,
        )
        if args.request_id and len({r.target.topic for r in rows}) > 1:
            rows.sort(key=lambda r: (r.timestamp_ms, r.target.order, r.offset))
        show = RowPrinter(args.output, verbose=args.verbose, truncate=args.truncate)
        if args.follow:
            for row in rows:
                show.line(row)
            assert stop is not None  # made above for every follower
            _follow(reader, targets, show, args.request_id, stop)
        else:
            show.all(rows, args.ref)
    return 0


def _follow(
    reader: RangeReader,
    targets: list[Target],
    show: RowPrinter,
    request_id: str | None,
    stop: threading.Event,
) -> None:
    """Print what arrives until Ctrl-C or SIGTERM (then exit 0, as `tail -f` users expect)."""
    by_topic = {t.topic: t for t in targets}
    for message in reader.follow(stop):
        target = by_topic.get(message.topic())
        row = decode_row(target, message, None, request_id) if target else None
        if row is not None:
            show.line(row)
