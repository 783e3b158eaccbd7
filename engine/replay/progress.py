"""The progress bar on stderr (sent, answered, rate, ETA); silent when stderr is no terminal."""

from __future__ import annotations

import sys
import time
from typing import Any


class ReplayProgress:
    def __init__(self, total: int, *, enabled: bool | None = None) -> None:
        self.total = total
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._progress: Any = None
        self._started = time.monotonic()
        self._sent = self._answered = 0

    def __enter__(self) -> ReplayProgress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("[bold]replay"),
                BarColumn(),
                TextColumn("sent {task.fields[sent]}/{task.total}"),
                TextColumn("answered {task.completed:.0f}"),
                TextColumn("{task.fields[rate]} req/s"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._progress.start()
            self._task = self._progress.add_task("replay", total=self.total, sent=0, rate="-")
        return self

    def update(self, *, sent: int | None = None, answered: int | None = None) -> None:
        if sent is not None:
            self._sent = sent
        if answered is not None:
            self._answered = answered
        if self._progress is None:
            return
        elapsed = max(time.monotonic() - self._started, 1e-6)
        self._progress.update(
            self._task,
            completed=self._answered,
            sent=self._sent,
            rate=f"{self._answered / elapsed:,.0f}",
        )

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
