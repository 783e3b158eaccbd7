"""`tensorflux pipeline replay SOURCE ...` and `tensorflux pipeline trace REQUEST_ID`.

Exit codes of replay (scripts gate rollouts on them): 0 when every selected
request was answered and nothing changed beyond tolerance, 1 otherwise, 2 for
a bad invocation (with the reason), 130 when interrupted (with the run id to
resume).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from engine.cli.errors import CliError
from engine.cli.inspect import parse_time
from engine.cli.options import add_kafka_options, settings_from
from engine.cli.stopping import set_from_handler

if TYPE_CHECKING:
    from engine.replay.run import ReplayRequest
    from engine.replay.selection import Selection

# engine.replay is imported by the handlers: the parser of every command stays cheap.

INTERRUPTED = 130


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds `replay` and `trace` to the `pipeline` group (engine.cli.resources makes it)."""
    group = subparsers.choices["pipeline"]
    commands = next(a for a in group._actions if isinstance(a, argparse._SubParsersAction))
    _register_replay(commands)
    _register_trace(commands)


def _register_replay(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "replay",
        help="replay recorded requests into a pipeline or model, and diff the answers",
        description="Replay the requests recorded on SOURCE's topic: a pipeline P (its inputs, "
        "originals on its outputs) or a step P.step.S (what S sent its model, originals on the "
        "step's outputs). Replayed requests get new ids and tensorflux-replay-* lineage headers. "
        "Exit code 0: all answered and nothing changed; 1: otherwise; 2: bad invocation.",
    )
    parser.add_argument("source", metavar="SOURCE", nargs="?")
    into = parser.add_mutually_exclusive_group()
    into.add_argument("--into", metavar="PIPELINE", help="replay into this loaded pipeline")
    into.add_argument("--into-model", metavar="MODEL", help="replay into a model's own topics")
    window = parser.add_argument_group("selection")
    window.add_argument("--from-time", metavar="T", help="inclusive: ISO 8601, epoch ms or '2h'")
    window.add_argument("--to-time", metavar="T", help="exclusive, as --from-time")
    window.add_argument("--from-offset", type=int, metavar="N", help="inclusive, every partition")
    window.add_argument("--to-offset", type=int, metavar="N", help="exclusive, every partition")
    window.add_argument(
        "--request-id",
        action="append",
        metavar="ID|@FILE",
        help="only this original request id (repeatable; @FILE: one id a line)",
    )
    window.add_argument("--limit", type=int, metavar="N", help="at most N requests, oldest first")
    pace = parser.add_mutually_exclusive_group()
    pace.add_argument("--rate", type=float, metavar="R", help="requests per second")
    pace.add_argument(
        "--speed", type=float, metavar="X", help="original inter-arrival times divided by X"
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="give up waiting when no answer came for S seconds (default 30)",
    )
    parser.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    parser.add_argument("--resume", metavar="RUN", help="continue an interrupted run")
    parser.add_argument("--diff", action="store_true", help="compare with the original answers")
    parser.add_argument("--atol", type=float, default=1e-8, help="absolute tolerance (1e-8)")
    parser.add_argument("--rtol", type=float, default=1e-5, help="relative tolerance (1e-5)")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    parser.add_argument("--report", metavar="FILE", help="also write the report: JSON and .md")
    add_kafka_options(parser)
    parser.set_defaults(handler=run_replay)


def _register_trace(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "trace",
        help="every record one request left, in time order (its replays and original too)",
        description="List the records of REQUEST_ID across its pipeline's topics, its steps, "
        "error records, pipelines chained on it, replays of it and the original it replays.",
    )
    parser.add_argument("request_id", metavar="REQUEST_ID")
    parser.add_argument("--from-time", metavar="T", help="only look at records from this time on")
    parser.add_argument("-o", "--output", choices=("table", "json"), default="table")
    add_kafka_options(parser)
    parser.set_defaults(handler=run_trace)


def _selection(args: argparse.Namespace) -> Selection:
    from engine.replay.errors import BadInvocation
    from engine.replay.selection import Selection, read_request_ids

    try:
        from_ms = parse_time(args.from_time) if args.from_time else None
        to_ms = parse_time(args.to_time) if args.to_time else None
    except CliError as error:
        raise BadInvocation(str(error)) from None
    ids = read_request_ids(args.request_id) if args.request_id else None
    return Selection(from_ms, to_ms, args.from_offset, args.to_offset, ids, args.limit)


def _request(args: argparse.Namespace) -> ReplayRequest:
    from engine.replay.diff import Tolerance
    from engine.replay.errors import BadInvocation
    from engine.replay.run import ReplayRequest
    from engine.replay.selection import Selection
    from engine.replay.sending import Pace

    selection = _selection(args)
    if args.resume and selection != Selection():
        raise BadInvocation("--resume replays the run's own selection; drop the selection options")
    if args.resume and (args.into or args.into_model):
        raise BadInvocation("--resume sends to the run's own target; drop --into/--into-model")
    for name, value in (("--rate", args.rate), ("--speed", args.speed)):
        if value is not None and value <= 0:
            raise BadInvocation(f"{name} must be above 0, got {value:g}")
    if args.timeout <= 0:
        raise BadInvocation(f"--timeout must be above 0, got {args.timeout:g}")
    return ReplayRequest(
        source=args.source,
        into=args.into,
        into_model=args.into_model,
        selection=selection,
        pace=Pace(args.rate, args.speed),
        timeout_s=args.timeout,
        dry_run=args.dry_run,
        resume=args.resume,
        diff=Tolerance(args.atol, args.rtol) if args.diff else None,
    )


def run_replay(args: argparse.Namespace) -> int:
    from engine.replay.errors import BadInvocation
    from engine.replay.report import print_dry_run, print_table, write_report
    from engine.replay.run import replay

    stop = threading.Event()

    def interrupt(*_: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # a second Ctrl-C: stop at once
        set_from_handler(stop)  # the first: stop sending, then say how to resume

    previous = signal.signal(signal.SIGINT, interrupt)
    try:
        try:
            result = replay(
                settings_from(args),
                _request(args),
                stop=stop,
                notice=lambda text: print(text, file=sys.stderr, flush=True),
            )
        except BadInvocation as error:
            print(f"tensorflux: error: {error}", file=sys.stderr)
            return 2
    finally:
        signal.signal(signal.SIGINT, previous)
    report = result.report
    if result.interrupted:
        print(
            f"interrupted: replay run {report.run} sent {report.sent} of {report.selected}; "
            f"continue with: tensorflux pipeline replay --resume {report.run}",
            file=sys.stderr,
            flush=True,
        )
        return INTERRUPTED
    if result.dry_run is not None:
        if args.output == "json":
            print(json.dumps({**report.to_json(), "dry_run": result.dry_run}, indent=2))
        else:
            print_dry_run(report, result.dry_run)
        return 0
    if args.report:
        json_path, md_path = write_report(report, Path(args.report))
        print(f"report: {json_path} and {md_path}", file=sys.stderr)
    if args.output == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_table(report)
    return report.exit_code()


def run_trace(args: argparse.Namespace) -> int:
    from engine.replay.trace import print_trace, trace

    settings = settings_from(args)
    from_ms = parse_time(args.from_time) if args.from_time else None
    hops = trace(settings, args.request_id, from_ms=from_ms)
    if args.output == "json":
        document = {"request_id": args.request_id, "records": [hop.to_json() for hop in hops]}
        print(json.dumps(document, indent=2))
    else:
        print_trace(args.request_id, hops, settings.topics())
    return 0
