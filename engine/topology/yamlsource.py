"""YAML documents with the line of every item, so each error can name its line.

PyYAML's `compose` keeps node marks; we build plain Python data from the nodes
and record `path -> line` beside it (paths are tuples of keys and indices).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from engine.topology.errors import Problem

Path = tuple[str | int, ...]


@dataclass(frozen=True)
class Document:
    """One YAML document of a file, as data, with a line for every path."""

    file: str
    line: int
    """1-based line where the document starts."""
    data: Any
    lines: Mapping[Path, int] = field(repr=False)

    def line_of(self, *path: str | int) -> int:
        """Line of `path`, or of its nearest ancestor that exists."""
        current: Path = tuple(path)
        while current:
            if current in self.lines:
                return self.lines[current]
            current = current[:-1]
        return self.line


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.lines: dict[Path, int] = {}
        self.problems: list[Problem] = []
        # Constructs scalars (ints, bools, nulls...) exactly as safe_load would.
        self._scalars = yaml.SafeLoader("")

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self._scalars.construct_object(key_node, deep=True)
                if key in result:
                    self.problems.append(
                        Problem(
                            self.file,
                            key_node.start_mark.line + 1,
                            None,
                            None,
                            f"key '{key}' appears twice in one mapping; keep one",
                        )
                    )
                result[key] = self.build(value_node, (*path, key))
                # A field's line is its key's line (its value may start lines later).
                self.lines[(*path, key)] = key_node.start_mark.line + 1
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, index)) for index, item in enumerate(node.value)]
        return self._scalars.construct_object(node, deep=True)


def parse_documents(text: str, file: str) -> tuple[list[Document], list[Problem]]:
    """Every non-empty document of `text`; YAML syntax errors become problems."""
    documents: list[Document] = []
    problems: list[Problem] = []
    try:
        nodes = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        reason = getattr(error, "problem", None) or str(error)
        return [], [Problem(file, line, None, None, f"not valid YAML: {reason}")]
    for node in nodes:
        if node is None:
            continue
        builder = _Builder(file)
        data = builder.build(node, ())
        problems.extend(builder.problems)
        if data is None:
            continue
        documents.append(Document(file, node.start_mark.line + 1, data, dict(builder.lines)))
    return documents, problems
