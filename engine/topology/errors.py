"""Errors and warnings of the topology compiler.

Every problem names where it is (file and line), what it concerns (resource,
step) and how to fix it. A load collects all of them and raises once, so a user
fixes a file in one round instead of one error per run.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.errors import TensorfluxError


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious, for warnings) in the user's YAML."""

    file: str
    line: int | None
    resource: str | None
    """`"pipeline 'p'"`, `"model 'm'"`, `"experiment 'e'"`, or None before the kind is known."""
    step: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        what = " ".join(
            part for part in (self.resource, self.step and f"step '{self.step}'") if part
        )
        return f"{where}: {what}: {self.message}" if what else f"{where}: {self.message}"


class TopologyError(TensorfluxError):
    """The specs do not describe a valid topology; `.problems` lists every reason."""

    def __init__(self, problems: tuple[Problem, ...] | list[Problem]) -> None:
        self.problems = tuple(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        count = len(self.problems)
        header = f"{count} problem{'s' if count != 1 else ''} in the specs"
        return "\n".join([header, *(f"  {problem}" for problem in self.problems)])


class TopologyWarning(UserWarning):
    """Something the compiler accepted but the user probably did not mean (an unknown field)."""
