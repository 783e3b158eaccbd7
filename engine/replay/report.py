"""The replay report: one JSON object (PRODUCT.md "Replay and lineage"), a table, Markdown."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.replay.diff import Diff
from engine.replay.reading import Recorded

CHANGED_SHOWN = 20
"""Changed request ids the table and Markdown list (the JSON has them all)."""


@dataclass
class Report:
    run: str
    source: str
    target: str
    selected: int
    sent: int = 0
    answered: int = 0
    errors: int = 0
    timed_out: int = 0
    diff: Diff | None = None
    warnings: list[str] = field(default_factory=list)

    def exit_code(self) -> int:
        """0: every selected request answered and nothing changed beyond tolerance."""
        complete = self.answered == self.selected
        unchanged = self.diff is None or self.diff.changed == 0
        return 0 if complete and unchanged else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "source": self.source,
            "target": self.target,
            "selected": self.selected,
            "sent": self.sent,
            "answered": self.answered,
            "errors": self.errors,
            "timed_out": self.timed_out,
            "diff": None if self.diff is None else self.diff.to_json(),
        }


def markdown(report: Report) -> str:
    lines = [
        f"# Replay {report.run}",
        "",
        f"`{report.source}` into `{report.target}`",
        "",
        "| selected | sent | answered | errors | timed out |",
        "|---|---|---|---|---|",
        f"| {report.selected} | {report.sent} | {report.answered} | {report.errors} "
        f"| {report.timed_out} |",
    ]
    diff = report.diff
    if diff is not None:
        tol = diff.tolerance
        lines += [
            "",
            f"## Diff (atol {tol.atol:g}, rtol {tol.rtol:g})",
            "",
            "| same | changed | no original |",
            "|---|---|---|",
            f"| {diff.same} | {diff.changed} | {diff.no_original} |",
            "",
            "| tensor | changed | max abs diff |",
            "|---|---|---|",
        ]
        for name, tally in sorted(diff.tensors.items()):
            lines.append(f"| {name} | {tally.changed} | {_number(tally.max_abs_diff)} |")
        if diff.first_divergent_step:
            lines += ["", "| first divergent step | requests |", "|---|---|"]
            for step, count in sorted(diff.first_divergent_step.items()):
                lines.append(f"| {step} | {count} |")
        if diff.changed_ids:
            shown = ", ".join(f"`{i}`" for i in diff.changed_ids[:CHANGED_SHOWN])
            more = len(diff.changed_ids) - CHANGED_SHOWN
            lines += ["", f"Changed: {shown}" + (f" and {more} more" if more > 0 else "")]
    for warning in report.warnings:
        lines += ["", f"> {warning}"]
    return "\n".join(lines) + "\n"


def write_report(report: Report, path: Path) -> tuple[Path, Path]:
    """JSON at `path` and Markdown beside it (`.md`); returns both paths."""
    if path.suffix == ".md":
        json_path, md_path = path.with_suffix(".json"), path
    else:
        json_path, md_path = path, path.with_suffix(".md")
    json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    md_path.write_text(markdown(report))
    return json_path, md_path


def print_table(report: Report) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    summary = Table(title=f"replay {report.run}: {report.source} -> {report.target}")
    for column in ("selected", "sent", "answered", "errors", "timed out"):
        summary.add_column(column, justify="right")
    counts = (report.selected, report.sent, report.answered, report.errors, report.timed_out)
    summary.add_row(*(str(count) for count in counts))
    console.print(summary)
    diff = report.diff
    if diff is not None:
        outcome = Table(title="diff")
        for column in ("same", "changed", "no original"):
            outcome.add_column(column, justify="right")
        outcome.add_row(str(diff.same), str(diff.changed), str(diff.no_original))
        console.print(outcome)
        tensors = Table(title="tensors")
        for column in ("tensor", "changed", "max abs diff"):
            tensors.add_column(column)
        for name, tally in sorted(diff.tensors.items()):
            tensors.add_row(name, str(tally.changed), _number(tally.max_abs_diff))
        console.print(tensors)
        if diff.first_divergent_step:
            steps = Table(title="first divergent step")
            steps.add_column("step")
            steps.add_column("requests", justify="right")
            for step, count in sorted(diff.first_divergent_step.items()):
                steps.add_row(step, str(count))
            console.print(steps)
        if diff.changed_ids:
            more = len(diff.changed_ids) - CHANGED_SHOWN
            console.print(
                "changed: "
                + ", ".join(diff.changed_ids[:CHANGED_SHOWN])
                + (f" and {more} more" if more > 0 else "")
            )


def dry_run_summary(records: list[Recorded]) -> dict[str, Any]:
    """What a dry run shows: counts, bytes and time span per partition."""
    partitions: dict[int, dict[str, Any]] = {}
    for record in records:
        entry = partitions.setdefault(
            record.partition,
            {
                "requests": 0,
                "bytes": 0,
                "first_offset": record.offset,
                "last_offset": record.offset,
            },
        )
        entry["requests"] += 1
        entry["bytes"] += record.value_size
        entry["first_offset"] = min(entry["first_offset"], record.offset)
        entry["last_offset"] = max(entry["last_offset"], record.offset)
    stamps = [r.timestamp_ms for r in records]
    return {
        "requests": len(records),
        "bytes": sum(r.value_size for r in records),
        "first_timestamp_ms": min(stamps) if stamps else None,
        "last_timestamp_ms": max(stamps) if stamps else None,
        "partitions": {str(p): partitions[p] for p in sorted(partitions)},
    }


def print_dry_run(report: Report, summary: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    first, last = summary["first_timestamp_ms"], summary["last_timestamp_ms"]
    table = Table(
        title=f"dry run: {summary['requests']} request(s), {summary['bytes']} bytes from "
        f"{report.source} into {report.target}, {_when(first)} to {_when(last)}; nothing sent"
    )
    for column in ("partition", "requests", "bytes", "offsets"):
        table.add_column(column, justify="right")
    for partition, entry in summary["partitions"].items():
        table.add_row(
            partition,
            str(entry["requests"]),
            str(entry["bytes"]),
            f"{entry['first_offset']}-{entry['last_offset']}",
        )
    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(table)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return dt.datetime.fromtimestamp(ms / 1000).isoformat(timespec="milliseconds")


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:g}"
