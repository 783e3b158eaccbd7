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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tensorflux",
        description="Kafka-native engine for ML inference pipelines (Seldon Core 2 YAML).",
    )
    parser.add_argument("--version", action="version", version=f"tensorflux {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
