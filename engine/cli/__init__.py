"""The `tensorflux` command line: one module per command family, each with `register`.

Each module adds its subcommands to the root parser and binds a handler with
`set_defaults(handler=...)`; a handler returns the process exit code.
Deliberate errors (`TensorfluxError`) print one line on stderr and exit 1;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from engine import __version__
from engine.cli import broker, client, resources, runtime
from engine.cli import replay as replay_commands
from engine.cli import topology as topology_commands
from engine.errors import TensorfluxError
from engine.observability import tracing

COMMAND_MODULES = (broker, topology_commands, runtime, resources, client, replay_commands)


class _Parser(argparse.ArgumentParser):
    """Remembers the innermost (sub)command that was left arguments it does not take, so
    the error shows that command's usage, not the top level's (argparse's default)."""

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[no-untyped-def]
        namespace, extras = super().parse_known_args(args, namespace)
        if extras and getattr(namespace, "refused_by", None) is None:
            namespace.refused_by = self
        return namespace, extras


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="tensorflux",
        description="Kafka-native engine for ML inference pipelines (Seldon Core 2 YAML).",
    )
    parser.add_argument("--version", action="version", version=f"tensorflux {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args, extras = build_parser().parse_known_args(argv)
    if extras:
        args.refused_by.error(f"unrecognized arguments: {' '.join(extras)}")
    try:
        tracing.configure(os.environ)  # OTEL_*: off unless an endpoint is set
        return int(args.handler(args) or 0)
    except TensorfluxError as error:
        print(f"tensorflux: error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        tracing.shutdown()  # exports the spans still buffered
