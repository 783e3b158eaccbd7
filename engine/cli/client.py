"""Client commands: `tensorflux gateway`, `pipeline|model infer` and `pipeline inspect`.

`register(subparsers)` adds the top-level `gateway` command;
`register_pipeline` / `register_model` add `infer` (and `inspect`) to the
`pipeline` / `model` groups that `engine.cli.resources` creates.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import re
import signal
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from engine import headers as h
from engine.cli.options import add_kafka_options, configure_logging, settings_from
from engine.config import KafkaSettings
from engine.errors import TensorfluxError
from engine.topology import TopicNames

DEFAULT_URL = "http://127.0.0.1:9000"
DEFAULT_LAST = 10
IDLE_END_S = 0.3
"""Reading to the end: the embedded broker's high watermark is approximate, so
the end is where every partition reported EOF and nothing came for a moment."""


READ_LIMIT_S = 60.0
"""Longest `inspect` reads before showing what it has."""


class ClientError(TensorfluxError):
    """A client command could not do what was asked."""


# -- registration ----------------------------------------------------------------------


def register(subparsers: argparse._SubParsersAction) -> None:
    gateway = subparsers.add_parser(
        "gateway",
        help="run the Open Inference Protocol HTTP gateway alone (a scale-out unit)",
        description="Serve OIP V2 over HTTP: requests go to the pipelines' and models' Kafka "
        "topics and replies come back from their outputs topics. What exists comes from the "
        "control topic, or from -f SPECS when given. Run as many as you like.",
    )
    gateway.add_argument("--host", default="127.0.0.1", help="address to listen on")
    gateway.add_argument("--port", type=int, default=9000, help="HTTP port (default 9000)")
    gateway.add_argument(
        "--timeout", type=float, default=30.0, help="seconds to wait for a reply (default 30)"
    )
    gateway.add_argument(
        "-f",
        "--file",
        dest="files",
        action="append",
        default=[],
        metavar="SPECS",
        help="serve these specs instead of following the control topic",
    )
    gateway.add_argument("-v", "--verbose", action="store_true")
    add_kafka_options(gateway)
    gateway.set_defaults(handler=run_gateway_command)


def register_pipeline(commands: argparse._SubParsersAction) -> None:
    _register_infer(commands, "pipeline")
    inspect = commands.add_parser(
        "inspect",
        help="show the records (decoded tensors) on a pipeline's topics",
        description="REF is a pipeline ('p': all its topics), a step ('p.step.s' or 'p.s': its "
        "inputs and outputs), a topic ('p.inputs', 'p.step.s.outputs') or a tensor "
        "('p.step.s.outputs.OUTPUT0'). Shows the last N records per partition, or from "
        "--offset/--from-time on; --request-id keeps one request's records (searching the "
        "whole topic unless a position is given).",
    )
    inspect.add_argument("ref", metavar="REF")
    inspect.add_argument("--request-id", help="only this request's records")
    position = inspect.add_mutually_exclusive_group()
    position.add_argument("--offset", type=int, help="start at this offset in every partition")
    position.add_argument(
        "--from-time",
        metavar="T",
        help="start at this time: ISO 8601 ('2025-01-31T12:00:00'), epoch ms, or ago ('10m', '2h')",
    )
    inspect.add_argument(
        "-n",
        "--last",
        type=int,
        help=f"records per partition (default: the last {DEFAULT_LAST}; "
        "all from --offset/--from-time/--request-id)",
    )
    inspect.add_argument("-o", "--output", choices=("table", "json"), default="table")
    inspect.add_argument("-v", "--verbose", action="store_true", help="show record headers")
    add_kafka_options(inspect)
    inspect.set_defaults(handler=run_inspect)


def register_model(commands: argparse._SubParsersAction) -> None:
    _register_infer(commands, "model")


def _register_infer(commands: argparse._SubParsersAction, kind: str) -> None:
    infer = commands.add_parser(
        "infer",
        help=f"send one inference request to a {kind} (HTTP gateway, or --kafka)",
        description=f"Send an Open Inference Protocol V2 request to a {kind} and print the "
        'response JSON. --inputs is a request object ({"inputs": [...]}) or a list of '
        "tensors, as JSON text or @FILE.",
    )
    infer.add_argument("name", metavar="NAME")
    infer.add_argument("--inputs", required=True, metavar="JSON|@FILE")
    via = infer.add_mutually_exclusive_group()
    via.add_argument("--http", action="store_true", help="through the HTTP gateway (default)")
    via.add_argument("--kafka", action="store_true", help="straight to the Kafka topics")
    infer.add_argument(
        "--url",
        default=os.environ.get("TENSORFLUX_GATEWAY_URL", DEFAULT_URL),
        help=f"gateway URL (default: TENSORFLUX_GATEWAY_URL, else {DEFAULT_URL})",
    )
    infer.add_argument("--request-id", help="request id (default: a new uuid)")
    infer.add_argument("--timeout", type=float, default=30.0, help="seconds to wait (default 30)")
    add_kafka_options(infer)
    infer.set_defaults(handler=run_infer, kind=kind)


# -- gateway ---------------------------------------------------------------------------


def run_gateway_command(args: argparse.Namespace) -> int:
    from engine.gateway import ControlCatalog, StaticCatalog, run_gateway
    from engine.topology import compile_topology, load_files

    configure_logging(args.verbose)
    settings = settings_from(args)
    topics = settings.topics()
    if args.files:
        catalog: Any = StaticCatalog.from_topology(
            compile_topology(load_files(args.files), topics), topics
        )
    else:
        catalog = ControlCatalog(settings)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    print(
        f"tensorflux gateway: http://{args.host}:{args.port}/v2 "
        f"(bootstrap {settings.bootstrap}, namespace {settings.namespace})",
        flush=True,
    )
    try:
        run_gateway(settings, catalog, args.host, args.port, stop, timeout_s=args.timeout)
    finally:
        close = getattr(catalog, "close", None)
        if close is not None:
            close()
    return 0


# -- infer -----------------------------------------------------------------------------


def read_request(text: str) -> dict[str, Any]:
    """An OIP request object from JSON text or @FILE; a bare list is its inputs."""
    if text.startswith("@"):
        path = Path(text[1:])
        try:
            text = path.read_text()
        except OSError as error:
            raise ClientError(f"cannot read {path}: {error.strerror}") from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise ClientError(f"--inputs is not JSON: {error}") from None
    if isinstance(document, list):
        document = {"inputs": document}
    if not isinstance(document, dict) or not isinstance(document.get("inputs"), list):
        raise ClientError('--inputs must be {"inputs": [...]} or a list of tensors')
    return document


def run_infer(args: argparse.Namespace) -> int:
    document = read_request(args.inputs)
    request_id = args.request_id or document.get("id") or str(uuid.uuid4())
    if args.kafka:
        response = infer_kafka(
            settings_from(args), args.kind, args.name, document, request_id, args.timeout
        )
    else:
        response = infer_http(args.url, args.kind, args.name, document, request_id, args.timeout)
    print(json.dumps(response, indent=2))
    return 0


def infer_http(
    url: str, kind: str, name: str, document: dict[str, Any], request_id: str, timeout_s: float
) -> dict[str, Any]:
    import httpx

    endpoint = f"{url.rstrip('/')}/v2/{kind}s/{name}/infer"
    try:
        reply = httpx.post(
            endpoint, json=document, headers={h.REQUEST_ID: request_id}, timeout=timeout_s + 5
        )
    except httpx.HTTPError as error:
        raise ClientError(f"cannot reach the gateway at {url}: {error}") from None
    try:
        body = reply.json()
    except ValueError:
        body = {"error": reply.text}
    if reply.status_code != 200:
        raise ClientError(
            f"{kind} '{name}' answered {reply.status_code}: {body.get('error', body)}"
        )
    return body


def infer_kafka(
    settings: KafkaSettings,
    kind: str,
    name: str,
    document: dict[str, Any],
    request_id: str,
    timeout_s: float,
) -> dict[str, Any]:
    """Produce the request to the inputs topic, wait for its record on the outputs topic."""
    from engine.codec import (
        CodecError,
        avro_headers,
        decode_error,
        decode_payload,
        encode_avro,
        message_from_document,
        message_to_document,
    )
    from engine.gateway.router import ReplyRouter

    topics = settings.topics()
    if kind == "pipeline":
        topic, reply_topic = topics.pipeline_inputs(name), topics.pipeline_outputs(name)
    else:
        topic, reply_topic = topics.model_inputs(name), topics.model_outputs(name)
    try:
        message = message_from_document(document, "request", default_id=request_id)
    except CodecError as error:
        raise ClientError(f"bad request: {error}") from None
    message = message.replace(id=request_id, model_name=name)
    headers = avro_headers(message, pipeline=name if kind == "pipeline" else None)
    router = ReplyRouter(settings).start()
    try:
        reply = asyncio.run(
            router.request(topic, reply_topic, request_id, encode_avro(message), headers, timeout_s)
        )
    except TimeoutError:
        raise ClientError(
            f"no reply on {reply_topic} within {timeout_s:g}s (request id {request_id})"
        ) from None
    finally:
        router.close()
    if h.is_error(reply.headers):
        record = decode_error(reply.value)
        raise ClientError(f"{kind} '{name}' failed ({record.kind}): {record.reason}")
    result = message_to_document(decode_payload(reply.value, reply.headers, "response"))
    result["model_name"] = name
    return result


# -- inspect ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """One topic to read and, optionally, the one tensor to show from it."""

    topic: str
    label: str
    """How the table names it: 'inputs', 'step.s.outputs', ..."""
    order: int
    tensor: str | None = None


@dataclass
class Row:
    target: Target
    partition: int
    offset: int
    timestamp_ms: int
    key: str
    headers: list[tuple[str, bytes]]
    message: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    problem: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def resolve_ref(ref: str, topics: TopicNames, existing: dict[str, int]) -> list[Target]:
    """The topics (and tensor) a reference names; a bare pipeline means all its topics."""
    parts = ref.split(".")
    pipeline, rest = parts[0], parts[1:]
    if not pipeline:
        raise ClientError(f"empty pipeline name in {ref!r}")
    if not rest:
        return _pipeline_targets(pipeline, topics, existing)
    if rest[0] in ("inputs", "outputs") and len(rest) <= 2:
        topic = (
            topics.pipeline_inputs(pipeline)
            if rest[0] == "inputs"
            else topics.pipeline_outputs(pipeline)
        )
        order = 0 if rest[0] == "inputs" else 1_000_000
        return [Target(topic, rest[0], order, rest[1] if len(rest) == 2 else None)]
    if rest[0] == "step":
        rest = rest[1:]
    if not rest or len(rest) > 3 or (len(rest) > 1 and rest[1] not in ("inputs", "outputs")):
        raise ClientError(
            f"cannot read reference {ref!r}; use PIPELINE, PIPELINE.(inputs|outputs)[.TENSOR], "
            "PIPELINE.step.STEP or PIPELINE.step.STEP.(inputs|outputs)[.TENSOR]"
        )
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
        steps = sorted(
            {
                t.label.split(".")[1]
                for t in _pipeline_targets(pipeline, topics, existing)
                if t.label.startswith("step.")
            }
        )
        raise ClientError(
            f"pipeline '{pipeline}' has no step '{step}' on the broker; steps: "
            f"{', '.join(steps) or 'none'}"
        )
    return targets


def _pipeline_targets(pipeline: str, topics: TopicNames, existing: dict[str, int]) -> list[Target]:
    inputs, outputs = topics.pipeline_inputs(pipeline), topics.pipeline_outputs(pipeline)
    if inputs not in existing and outputs not in existing:
        prefix = topics.pipeline_inputs("")[: -len(".inputs")]
        known = sorted({t[len(prefix) :].split(".")[0] for t in existing if t.startswith(prefix)})
        raise ClientError(
            f"no pipeline '{pipeline}' on the broker (namespace '{topics.namespace}'); "
            f"pipelines: {', '.join(known) or 'none'}"
        )
    step_prefix = topics.step_inputs(pipeline, "")[: -len(".inputs")]
    targets = [Target(inputs, "inputs", 0)]
    steps = sorted(
        {t[len(step_prefix) :].rsplit(".", 1)[0] for t in existing if t.startswith(step_prefix)}
    )
    for index, step in enumerate(steps):
        targets.append(
            Target(topics.step_inputs(pipeline, step), f"step.{step}.inputs", 1 + 2 * index)
        )
        targets.append(
            Target(topics.step_outputs(pipeline, step), f"step.{step}.outputs", 2 + 2 * index)
        )
    targets.append(Target(outputs, "outputs", 1_000_000))
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
        raise ClientError(
            f"cannot read time {text!r}: give ISO 8601, epoch milliseconds or an age like '10m'"
        ) from None
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
    from confluent_kafka import Consumer, KafkaError, TopicPartition

    from engine.admin import TopicAdmin

    existing = TopicAdmin(settings).existing()
    targets = [t for t in targets if t.topic in existing]
    consumer = Consumer(
        settings.consumer_config(
            f"{settings.topic_prefix}.{settings.namespace}.inspect.{uuid.uuid4().hex[:8]}",
            **{"enable.partition.eof": True, "enable.auto.commit": False},
        )
    )
    positioned = offset is not None or from_ms is not None
    if last is None and not positioned and request_id is None:
        last = DEFAULT_LAST
    try:
        assignment = []
        for target in targets:
            starts = _start_offsets(
                consumer,
                target.topic,
                existing[target.topic],
                last=None if request_id else last,
                offset=offset,
                from_ms=from_ms,
            )
            assignment.extend(TopicPartition(target.topic, p, o) for p, o in starts.items())
        by_topic = {t.topic: t for t in targets}
        rows: dict[tuple[str, int], list[Row]] = {}
        if assignment:
            consumer.assign(assignment)
            pending = {(tp.topic, tp.partition) for tp in assignment}
            quiet_since = time.monotonic()
            deadline = quiet_since + READ_LIMIT_S
            while pending or time.monotonic() - quiet_since < IDLE_END_S:
                messages = consumer.consume(1000, timeout=0.05)
                if messages:
                    quiet_since = time.monotonic()
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.discard((message.topic(), message.partition()))
                        continue
                    row = _row(by_topic[message.topic()], message, from_ms, request_id)
                    if row is not None:
                        rows.setdefault((message.topic(), message.partition()), []).append(row)
                if time.monotonic() > deadline:
                    break  # a partition never reported EOF: show what was read
    finally:
        consumer.close()
    out: list[Row] = []
    for (_topic, _partition), found in rows.items():
        found.sort(key=lambda r: r.offset)
        out.extend(found[-last:] if last else found)
    out.sort(key=lambda r: (r.target.order, r.partition, r.offset))
    return out


def _start_offsets(
    consumer: Any,
    topic: str,
    partitions: int,
    *,
    last: int | None,
    offset: int | None,
    from_ms: int | None,
) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    starts: dict[int, int] = {}
    times = None
    if from_ms is not None:
        # Answers a batch's base offset on the embedded broker: at or before the
        # record wanted; records before from_ms are filtered by their timestamps.
        times = consumer.offsets_for_times(
            [TopicPartition(topic, p, from_ms) for p in range(partitions)], timeout=10
        )
    for partition in range(partitions):
        low, high = consumer.get_watermark_offsets(
            TopicPartition(topic, partition), timeout=10, cached=False
        )
        if offset is not None:
            start = max(offset, low)
        elif times is not None:
            found = times[partition].offset
            if found < 0:  # nothing at or after that time (the reported end may be low)
                found = max(low, high - 1)
            start = max(found, low)
        elif last is not None:
            # The reported high watermark may be below the true end: reading from
            # it minus `last` still covers the last `last` records (they are cut later).
            start = max(low, high - last)
        else:
            start = low
        starts[partition] = start
    return starts


def _row(target: Target, message: Any, from_ms: int | None, request_id: str | None) -> Row | None:
    from engine.codec import CodecError, decode_error, decode_payload
    from engine.codec.oip_json import message_to_document

    _, timestamp = message.timestamp()
    if from_ms is not None and timestamp < from_ms:
        return None
    headers = message.headers() or []
    raw_key = message.key()
    key = raw_key.decode("utf-8", "replace") if raw_key else ""
    if request_id is not None and request_id not in (key, h.header_value(headers, h.REQUEST_ID)):
        return None
    row = Row(target, message.partition(), message.offset(), timestamp, key, headers)
    value = message.value() or b""
    try:
        if h.is_error(headers):
            record = decode_error(value)
            row.error = {k: v for k, v in asdict(record).items() if k != "payload"}
        else:
            kind = "request" if target.topic.endswith(".inputs") else "response"
            document = message_to_document(decode_payload(value, headers, kind))
            tensors_key = "inputs" if kind == "request" else "outputs"
            if target.tensor is not None:
                document[tensors_key] = [
                    t for t in document[tensors_key] if t["name"] == target.tensor
                ]
                if not document[tensors_key]:
                    return None
            row.message = document
    except CodecError as error:
        row.problem = f"cannot decode: {error}"
    return row


def run_inspect(args: argparse.Namespace) -> int:
    from engine.admin import TopicAdmin

    settings = settings_from(args)
    topics = settings.topics()
    targets = resolve_ref(args.ref, topics, TopicAdmin(settings).existing())
    rows = read_records(
        settings,
        targets,
        last=args.last,
        offset=args.offset,
        from_ms=parse_time(args.from_time) if args.from_time else None,
        request_id=args.request_id,
    )
    if args.request_id and len({r.target.topic for r in rows}) > 1:
        rows.sort(key=lambda r: (r.timestamp_ms, r.target.order, r.offset))
    if args.output == "json":
        print(json.dumps([_row_json(r, args.verbose) for r in rows], indent=2))
    else:
        _print_table(rows, args.verbose, args.ref)
    return 0


def _row_json(row: Row, verbose: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "topic": row.target.topic,
        "ref": row.target.label,
        "partition": row.partition,
        "offset": row.offset,
        "timestamp_ms": row.timestamp_ms,
        "key": row.key,
    }
    if verbose:
        out["headers"] = {k: (v or b"").decode("utf-8", "replace") for k, v in row.headers}
    if row.message is not None:
        out["message"] = row.message
    if row.error is not None:
        out["error"] = row.error
    if row.problem is not None:
        out["problem"] = row.problem
    return out


def _print_table(rows: list[Row], verbose: bool, ref: str) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{ref}: {len(rows)} record(s)", show_lines=False)
    for column in ("ref", "p:offset", "time", "request id", "tensor", "datatype", "shape"):
        table.add_column(column, no_wrap=True)
    table.add_column("data", overflow="fold")
    if verbose:
        table.add_column("headers", overflow="fold")
    for row in rows:
        when = dt.datetime.fromtimestamp(row.timestamp_ms / 1000).isoformat(timespec="milliseconds")
        head = [row.target.label, f"{row.partition}:{row.offset}", when, row.key]
        header_text = (
            ", ".join(f"{k}={(v or b'').decode('utf-8', 'replace')}" for k, v in row.headers)
            if verbose
            else None
        )
        lines: list[list[str]] = []
        if row.message is not None:
            tensors = row.message.get("inputs") or row.message.get("outputs") or []
            for tensor in tensors:
                data = json.dumps(tensor["data"])
                lines.append(
                    [tensor["name"], tensor["datatype"], str(tensor["shape"]), _clip(data)]
                )
        elif row.error is not None:
            lines.append(["ERROR", row.error["kind"], row.error["stage"], row.error["reason"]])
        else:
            lines.append(["?", "", "", row.problem or ""])
        for index, line in enumerate(lines or [["", "", "", "(no tensors)"]]):
            cells = (head if index == 0 else [""] * 4) + line
            if verbose:
                cells.append(header_text if index == 0 else "")
            table.add_row(*cells)
    console = Console()
    if not console.is_terminal:  # piped: don't squeeze the table into 80 columns
        console = Console(width=250)
    console.print(table)


def _clip(text: str, limit: int = 120) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."
