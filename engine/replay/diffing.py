"""The diff of a run, compared while the run still waits for answers.

The sender waits whenever its window is full, and the run waits for the last
answers after it: once the recorded originals are read, those waits compare
the answers already in, in the run's order, so that little is left to compare
after the last answer. The result is the one a single pass after the wait
gives: each request is compared once, in order, with the first answer its new
id got (the collector never replaces one), and a request with no answer yet
stops the pass until the next wait (or, at the end, counts as unanswered).
"""

from __future__ import annotations

import time

from engine.replay.diff import Diff, Tolerance
from engine.replay.driving import Background
from engine.replay.reading import Recorded, answer_for, is_error_record
from engine.replay.selection import original_id

SLICE_S = 0.02
"""Longest one pass runs during a wait: the sender's window must not sit full for long."""


class RunningDiff:
    def __init__(
        self,
        tolerance: Tolerance,
        originals_topic: str,
        ids: list[str],
        records: list[Recorded],
        answers: dict[str, Recorded],
        errors: set[str],
        originals: Background,
    ) -> None:
        """`answers`/`errors`: the collector's (read as they fill); `originals`: the read
        of the recorded answers, by (topic, original id)."""
        self.diff = Diff(tolerance)
        self.changed: dict[str, tuple[str, int]] = {}
        """New id → (original id, original timestamp) of each changed request."""
        self._topic = originals_topic
        self._ids, self._records = ids, records
        self._answers, self._errors = answers, errors
        self._originals = originals
        self._next = 0

    def advance(self) -> None:
        """Compare the answers in so far, for a moment at most; nothing before the
        originals are read (a failed read is raised by `finish`, after the wait)."""
        if self._originals.succeeded():
            self._compare(final=False, until=time.perf_counter() + SLICE_S)

    def finish(self) -> Diff:
        """Every request compared (the answers are all in, or never will be)."""
        self._compare(final=True, until=None)
        return self.diff

    def _compare(self, *, final: bool, until: float | None) -> None:
        originals: dict[tuple[str, str], list[Recorded]] = self._originals.result()
        ids, records, answers, errors = self._ids, self._records, self._answers, self._errors
        diff, topic, index, end = self.diff, self._topic, self._next, len(self._ids)
        try:
            while index < end:
                new_id = ids[index]
                answer = answers.get(new_id)
                if answer is None and not final:
                    return  # not answered yet: the next wait goes on from here
                if until is not None and index % 256 == 0 and time.perf_counter() > until:
                    return
                index += 1
                if answer is None or new_id in errors:
                    continue
                record = records[index - 1]
                asked = original_id(record)
                recorded = originals.get((topic, asked))
                if recorded is None:
                    first = None
                else:  # one record of the id: the common case, answer_for's without its call
                    first = (
                        recorded[0]
                        if len(recorded) == 1
                        else answer_for(recorded, record.timestamp_ms)
                    )
                original = None if first is None or is_error_record(first.headers) else first
                if diff.add(
                    asked,
                    (answer.value, answer.headers),
                    None if original is None else (original.value, original.headers),
                ):
                    self.changed[new_id] = (asked, record.timestamp_ms)
                # Compared: the run needs no more of the answer than that it came.
                answer.value, answer.headers = b"", []
        finally:
            self._next = index
