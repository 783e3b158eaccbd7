"""Shared helpers of the topology tests: compile YAML text, find the marked line."""

from __future__ import annotations

import textwrap

from engine.topology import Problem, Topology, compile_collecting, read_text

MARK = "# <-"
"""Put this comment on the line a test expects an error to point at."""


def compile_text(text: str) -> tuple[Topology, list[Problem], list[Problem]]:
    specs = read_text(textwrap.dedent(text), "case.yaml")
    return compile_collecting(specs)


def marked_lines(text: str) -> list[int]:
    return [
        number
        for number, line in enumerate(textwrap.dedent(text).splitlines(), start=1)
        if MARK in line
    ]


def pipeline(name: str, body: str) -> str:
    """A Pipeline document; `body` is the indented content of `spec:`."""
    head = (
        f"apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: {name}\nspec:\n"
    )
    return head + textwrap.indent(textwrap.dedent(body), "  ")


def model(name: str) -> str:
    return (
        "---\napiVersion: mlops.seldon.io/v1alpha1\nkind: Model\n"
        f"metadata:\n  name: {name}\nspec:\n  storageUri: ./{name}\n  requirements: [python]\n"
    )
