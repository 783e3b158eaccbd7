"""One replay, start to end: resolve, select, record the run, send, wait, diff, report.

Each stage is a collaborator of its own module; this one only drives them
(and is what the CLI and the bench call).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.replay import runs
from engine.replay.diff import Tolerance
from engine.replay.diffing import RunningDiff
from engine.replay.divergence import first_divergent_steps
from engine.replay.driving import Background, Stages, without_cyclic_gc
from engine.replay.endpoints import Source, parse_source, resolve_target, step_pairs
from engine.replay.errors import BadInvocation
from engine.replay.fetching import VALUE_BUDGET, Stopped, ValueBudget, ValueFetcher
from engine.replay.progress import ReplayProgress
from engine.replay.reading import (
    RangeReader,
    Recorded,
    by_key,
    latest_values,
)
from engine.replay.report import Report, dry_run_summary
from engine.replay.requests import RequestMaker, new_request_id
from engine.replay.selection import Selection, original_id, partition_ranges, select
from engine.replay.sending import AnswerCollector, Pace, Sender, send_all, wait_answers
from engine.runtime.control import compile_documents
from engine.topology import Topology


@dataclass(frozen=True)
class ReplayRequest:
    """What the command line asked for."""

    source: str | None
    into: str | None = None
    into_model: str | None = None
    selection: Selection = field(default_factory=Selection)
    pace: Pace = field(default_factory=Pace)
    timeout_s: float = 30.0
    dry_run: bool = False
    resume: str | None = None
    diff: Tolerance | None = None
    """None: no diff (unless the resumed run had one)."""
    value_budget: int = VALUE_BUDGET
    """Bytes of selected values held at most (engine.replay.fetching)."""


@dataclass
class ReplayResult:
    report: Report
    dry_run: dict[str, Any] | None = None
    """The dry run's summary; None when requests were sent."""
    interrupted: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    """Wall seconds of each stage, in order (what the bench reports): `select` (the
    bounds and the selection read), `send`, `wait` (the last answers), `originals`
    (waited for past the answers), `diff` (what the waits left to compare, and the
    first divergent steps: engine.replay.diffing)."""
    values_held_peak: int = 0
    """The most bytes of selected values held at once (within `value_budget`)."""


def loaded_topology(settings: KafkaSettings) -> Topology:
    """What the control topic says is loaded now."""
    values = latest_values(settings, settings.topics().control())
    documents = {key: value.decode() for key, value in values.items()}
    topology, _ = compile_documents(documents, settings.topics())
    return topology


def replay(
    settings: KafkaSettings,
    request: ReplayRequest,
    *,
    stop: threading.Event | None = None,
    notice: Callable[[str], None] = lambda text: None,
    progress: bool | None = None,
) -> ReplayResult:
    stop = stop or threading.Event()
    now_ms = time.time_ns() // 1_000_000
    topics = settings.topics()
    admin = TopicAdmin(settings)
    existing = admin.existing()
    manifest = runs.load(settings, request.resume) if request.resume else None
    if manifest is not None:
        if request.source and request.source != manifest.source:
            raise BadInvocation(
                f"run {manifest.run} replays {manifest.source}, not {request.source}"
            )
        request = replace(
            request,
            source=manifest.source,
            into=manifest.into,
            into_model=manifest.into_model,
            selection=manifest.selection,
            diff=request.diff or manifest.diff,
        )
    if not request.source:
        raise BadInvocation("give SOURCE (a pipeline or PIPELINE.step.STEP), or --resume RUN")
    request.selection.check()
    source = parse_source(request.source, topics, existing)
    reader = RangeReader(settings)
    try:
        with without_cyclic_gc():
            return _replay(
                settings, request, manifest, source, existing, reader,
                now_ms=now_ms, stop=stop, notice=notice, progress=progress,
            )  # fmt: skip
    finally:
        reader.close()


def _replay(
    settings: KafkaSettings,
    request: ReplayRequest,
    manifest: runs.Manifest | None,
    source: Source,
    existing: dict[str, int],
    reader: RangeReader,
    *,
    now_ms: int,
    stop: threading.Event,
    notice: Callable[[str], None],
    progress: bool | None,
) -> ReplayResult:
    selection = request.selection
    budget = ValueBudget(request.value_budget)
    clock = Stages()
    # Made first: its producer id comes while the bounds and the selection are read.
    sender = None if request.dry_run else Sender(settings, request.pace)
    partitions = existing[source.requests]
    # The control topic is read while the source's bounds are found (each takes a moment).
    loading = Background(lambda: loaded_topology(settings))
    warnings: list[str] = []
    if manifest is None:
        ranges, warnings = partition_ranges(reader, source.requests, partitions, selection, now_ms)
    else:
        ranges = manifest.ranges
    topology = loading.result()
    target = resolve_target(
        source, topology, settings.topics(), into=request.into, into_model=request.into_model
    )
    run = manifest.run if manifest is not None else runs.new_run_id(now_ms)
    if request.dry_run:
        records = _selected(reader, source, ranges, selection, warnings, notice, budget)
        report = Report(run, source.spelled, target.spelled, len(records), warnings=warnings)
        return ReplayResult(report, dry_run=dry_run_summary(records), values_held_peak=budget.peak)
    if target.requests not in existing or target.answers not in existing:
        admin = TopicAdmin(settings)  # a client of its own costs ~50 ms: only when needed
        admin.ensure([target.requests, target.answers])
        existing = admin.existing()
    requests_from, answers_from = (
        (manifest.requests_from, manifest.answers_from)
        if manifest is not None
        else (
            runs.positions_now(reader, target.requests, existing[target.requests]),
            runs.positions_now(reader, target.answers, existing[target.answers]),
        )
    )
    # Listening from before anything is sent (and while the selection is read).
    collector = AnswerCollector(
        settings, target.answers, answers_from, f"{run}-", keep_values=request.diff is not None
    )
    try:
        records = _selected(reader, source, ranges, selection, warnings, notice, budget)
        clock.done("select")
        report = Report(run, source.spelled, target.spelled, len(records), warnings=warnings)
        # The recorded answers are read while the target answers (its own work bounds that).
        originals = (
            Background(lambda: _originals(settings, source, existing, records, now_ms))
            if request.diff is not None
            else None
        )
        if manifest is None:
            manifest = runs.Manifest(
                run=run,
                source=source.spelled,
                into=request.into,
                into_model=request.into_model,
                selection=selection,
                diff=request.diff,
                started_ms=now_ms,
                ranges=ranges,
                requests_from=requests_from,
                answers_from=answers_from,
            )
            runs.save(settings, manifest, existing)
            done: dict[str, str] = {}
        else:
            done = runs.already_sent(
                reader, manifest, target.requests, existing[target.requests], now_ms
            )
        verb = "resumes" if done else "replays"
        notice(
            f"replay run {run} {verb} {len(records)} request(s) from {source.spelled} into "
            f"{target.spelled}" + (f" ({len(done)} sent before)" if done else "")
        )
        ids = [new_request_id(run, record) for record in records]
        pending = [r for r in records if r.coordinates not in done] if done else records
        maker = RequestMaker(run, target.name if target.kind == "pipeline" else None)
        values = ValueFetcher(settings, records, pending, budget, stop)
        running = (
            RunningDiff(
                request.diff,
                source.originals,
                ids,
                records,
                collector.answers,
                collector.errors,
                originals,
            )
            if originals is not None and request.diff is not None
            else None
        )
        compare = running.advance if running is not None else lambda: None

        def waited() -> None:
            bar.update(answered=collector.count())
            compare()

        with ReplayProgress(len(records), enabled=progress) as bar:
            bar.update(sent=len(done), answered=collector.count())
            assert sender is not None  # not a dry run
            try:
                outcome = send_all(
                    sender,
                    target.requests,
                    pending,
                    values.make(maker.make),
                    collector,
                    request.pace,
                    stop=stop,
                    timeout_s=request.timeout_s,
                    on_progress=lambda sent: bar.update(
                        sent=len(done) + sent, answered=collector.count()
                    ),
                    on_wait=compare,
                )
            except Stopped:  # Ctrl-C while the values to send were still being read
                outcome = sender.outcome
                outcome.interrupted = True
            finally:
                values.close()
            sent_ids = set(done.values()) | set(outcome.sent)
            clock.done("send")
            if not outcome.interrupted:
                wait_answers(
                    collector,
                    [i for i in ids if i in sent_ids],
                    request.timeout_s,
                    stop,
                    on_progress=waited,
                )
            clock.done("wait")
    finally:
        collector.close()
    for new_id, reason in outcome.refused.items():
        notice(f"warning: Kafka refused replayed request {new_id}: {reason}")
    _count(report, ids, sent_ids, outcome.refused, collector.answers, collector.errors)
    if outcome.interrupted or stop.is_set():
        return ReplayResult(report, interrupted=True, values_held_peak=budget.peak)
    if originals is not None and running is not None and request.diff is not None:
        originals.result()
        clock.done("originals")
        report.diff = running.finish()
        report.diff.first_divergent_step = first_divergent_steps(
            reader,
            step_pairs(source, target, topology, settings.topics(), existing),
            running.changed,
            existing,
            request.diff,
            originals_since_ms=min(r.timestamp_ms for r in records),
            replays_since_ms=manifest.started_ms,
            now_ms=time.time_ns() // 1_000_000,
        )
        clock.done("diff")
    return ReplayResult(report, seconds=clock.seconds, values_held_peak=budget.peak)


def _selected(
    reader: RangeReader,
    source: Source,
    ranges: dict[int, tuple[int, int]],
    selection: Selection,
    warnings: list[str],
    notice: Callable[[str], None],
    budget: ValueBudget,
) -> list[Recorded]:
    """The records to replay; BadInvocation when there are none."""
    records = select(reader, source.requests, ranges, selection, budget)
    if selection.request_ids is not None:
        found = {original_id(r) for r in records}
        missing = [i for i in selection.request_ids if i not in found]
        if missing and records:
            shown = ", ".join(missing[:10]) + (" ..." if len(missing) > 10 else "")
            warnings.append(f"{len(missing)} request id(s) not found on {source.requests}: {shown}")
    for warning in warnings:
        notice(f"warning: {warning}")
    if not records:
        raise BadInvocation(
            f"nothing to replay: no request on {source.requests} {_what(selection)}"
        )
    return records


def _count(
    report: Report,
    ids: list[str],
    sent: set[str],
    refused: dict[str, str],
    answers: dict[str, Recorded],
    errors: set[str],
) -> None:
    for new_id in ids:
        if new_id not in sent:
            continue
        report.sent += 1
        answer = answers.get(new_id)
        if new_id in refused:
            report.errors += 1
        elif answer is None:
            report.timed_out += 1
        elif new_id in errors:
            report.errors += 1
        else:
            report.answered += 1


def _originals(
    settings: KafkaSettings,
    source: Source,
    existing: dict[str, int],
    records: list[Recorded],
    now_ms: int,
) -> dict[tuple[str, str], list[Recorded]]:
    """The recorded answers (and error records) of the selected requests' ids."""
    reader = RangeReader(settings)  # its own consumer: this runs on a thread of its own
    try:
        return by_key(
            reader,
            {source.originals: existing.get(source.originals, 0)},
            {original_id(r) for r in records},
            since_ms=min(r.timestamp_ms for r in records),
            now_ms=now_ms,
        )
    finally:
        reader.close()


def _what(selection: Selection) -> str:
    parts = []
    if selection.from_ms is not None or selection.to_ms is not None:
        parts.append("in the time window")
    if selection.from_offset is not None or selection.to_offset is not None:
        parts.append("in the offset range")
    if selection.request_ids is not None:
        parts.append(f"with the {len(selection.request_ids)} request id(s) given")
    return " and ".join(parts) or "(the topic is empty)"
