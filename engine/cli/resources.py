"""`tensorflux model|pipeline load|unload|status|list`, `experiment start|stop|status|list`
(and infer/inspect from the client module)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from engine.cli.options import add_kafka_options, settings_from

if TYPE_CHECKING:
    from rich.table import Table

    from engine.runtime.control import ControlPlane, ResourceStatus

# The control plane and rich are imported by the handlers that use them: building the
# parser stays cheap, so every command starts without the engine's heavy imports.

# Seldon's verbs: experiments are started and stopped, models and pipelines loaded.
VERBS = {
    "model": ("load", "unload"),
    "pipeline": ("load", "unload"),
    "experiment": ("start", "stop"),
}
UNLOAD_HELP = {
    "model": "unload a model",
    "pipeline": "stop a pipeline; its topics stay (unless cleanTopicsOnDelete)",
    "experiment": "stop an experiment: its endpoint answers as before it started",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    for kind, (load_verb, unload_verb) in VERBS.items():
        parser = subparsers.add_parser(
            kind, help=f"{load_verb}, {unload_verb} and inspect {kind}s on a running engine"
        )
        commands = parser.add_subparsers(dest=f"{kind}_command", metavar="COMMAND", required=True)

        load = commands.add_parser(
            load_verb, help=f"validate and {load_verb} {kind} specs (hot: no restart)"
        )
        load.add_argument(
            "-f", "--file", dest="files", action="append", required=True, metavar="FILE"
        )
        load.set_defaults(handler=_load, kind=kind)

        unload = commands.add_parser(unload_verb, help=UNLOAD_HELP[kind])
        unload.add_argument("name")
        unload.set_defaults(handler=_unload, kind=kind)

        status = commands.add_parser("status", help=f"state of {kind}s")
        status.add_argument("name", nargs="?")
        status.add_argument("-o", "--output", choices=("table", "json"), default="table")
        status.add_argument(
            "-w",
            "--wait",
            nargs="?",
            const="Ready",
            metavar="STATE",
            help="wait until the resource (every one, without NAME) is in STATE, default "
            "Ready (also Seldon's names: PipelineReady, ModelAvailable, ...); exits 1 at "
            "the first Failed or after --timeout",
        )
        status.add_argument(
            "--timeout", type=float, default=300.0, metavar="S", help="for -w (default 300)"
        )
        status.set_defaults(handler=_status, kind=kind)

        listing = commands.add_parser("list", help=f"the {kind}s loaded")
        listing.set_defaults(handler=_list, kind=kind)

        for sub in (load, unload, status, listing):
            add_kafka_options(sub)
        if kind != "experiment":
            _register_client_commands(kind, commands)


def _register_client_commands(kind: str, commands: argparse._SubParsersAction) -> None:
    try:
        from engine.cli import client
    except ImportError:  # the client commands are optional until the gateway lands
        return
    getattr(client, f"register_{kind}")(commands)


def _plane(args: argparse.Namespace) -> ControlPlane:
    from engine.runtime.control import ControlPlane

    return ControlPlane(settings_from(args))


def _load(args: argparse.Namespace) -> int:
    plane = _plane(args)
    try:
        for resource in plane.load(args.files):
            print(resource)
    finally:
        plane.close()
    return 0


def _unload(args: argparse.Namespace) -> int:
    plane = _plane(args)
    try:
        deleted = plane.unload(args.kind, args.name)
    finally:
        plane.close()
    print(f"{'stopped' if args.kind == 'experiment' else 'unloaded'} {args.kind}/{args.name}")
    for topic in deleted:
        print(f"deleted topic {topic}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from engine.cli.waiting import our_state, wait_for
    from engine.runtime.control import not_loaded

    plane = _plane(args)

    everything: list[ResourceStatus] = []

    def read() -> list[ResourceStatus]:
        everything[:] = plane.status()
        return [s for s in everything if s.kind == args.kind and args.name in (None, s.name)]

    try:
        if args.wait is not None:
            statuses = wait_for(read, our_state(args.wait), name=args.name, timeout_s=args.timeout)
        else:
            statuses = read()
    finally:
        plane.close()
    if args.name and not statuses and args.wait is None:
        loaded = [f"{s.kind}/{s.name}" for s in everything]
        print(f"tensorflux: {not_loaded(args.kind, args.name, loaded)}", file=sys.stderr)
        return 1
    if args.output == "json":
        print(json.dumps([s.__dict__ | {"workers": list(s.workers)} for s in statuses], indent=2))
    else:
        from rich.console import Console

        Console().print(_table(statuses))
    return 0 if all(s.state != "Failed" for s in statuses) else 1


def _table(statuses: list) -> Table:
    from rich.table import Table

    table = Table("name", "state", "workers", "reason")
    for s in statuses:
        table.add_row(s.name, s.state, ", ".join(s.workers), s.reason)
    return table


def _list(args: argparse.Namespace) -> int:
    plane = _plane(args)
    try:
        for key in sorted(plane.loaded()):
            kind, _, name = key.partition("/")
            if kind == args.kind:
                print(name)
    finally:
        plane.close()
    return 0
