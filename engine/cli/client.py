"""The client command family: `tensorflux gateway`, `pipeline|model infer`, `pipeline inspect`.

`register(subparsers)` adds the top-level `gateway` command;
`register_pipeline` / `register_model` add `infer` (and `inspect`) to the
`pipeline` / `model` groups that `engine.cli.resources` creates. The commands
themselves live in `gateway.py`, `infer.py` and `inspect.py`.
"""

from __future__ import annotations

import argparse

from engine.cli import gateway, infer, inspect


def register(subparsers: argparse._SubParsersAction) -> None:
    gateway.register(subparsers)


def register_pipeline(commands: argparse._SubParsersAction) -> None:
    infer.register(commands, "pipeline")
    inspect.register(commands)


def register_model(commands: argparse._SubParsersAction) -> None:
    infer.register(commands, "model")
