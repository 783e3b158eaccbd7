"""Where the compiler's problems go: a report per resource, located by YAML path,
and the name rule every resource shares."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.topology.errors import Problem
from engine.topology.yamlsource import Document

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
"""Names become topic components and reference parts, so no dots."""


@dataclass
class Report:
    """Problems (and warnings) of one resource, located by YAML path."""

    document: Document | None
    resource: str
    problems: list[Problem]
    warnings: list[Problem] = field(default_factory=list)

    def _problem(self, path: Sequence[Any], message: str, step: str | None) -> Problem:
        if self.document is None:
            return Problem("<specs>", None, self.resource, step, message)
        return Problem(
            self.document.file, self.document.line_of(*path), self.resource, step, message
        )

    def error(self, path: Sequence[Any], message: str, step: str | None = None) -> None:
        self.problems.append(self._problem(path, message, step))

    def warn(self, path: Sequence[Any], message: str, step: str | None = None) -> None:
        self.warnings.append(self._problem(path, message, step))


def check_name(
    name: str, what: str, report: Report, path: Sequence[Any], step: str | None = None
) -> None:
    if not NAME_PATTERN.match(name):
        report.error(
            path,
            f"{what} name '{name}' is not allowed; use letters, digits, '-' and '_' "
            "(it becomes part of topic names and references, so no dots or spaces)",
            step,
        )
