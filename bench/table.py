"""The bench's report: one markdown table of the contenders, and the targets' verdicts."""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import os
import platform
import sys
from pathlib import Path

from bench import load
from bench.timing import Result


def _fmt_rate(value: float) -> str:
    return "—" if value != value else f"{value:,.0f}"


def _fmt(value: float, digits: int = 1) -> str:
    return "—" if value != value else f"{value:.{digits}f}"


def _ratio(a: float, b: float) -> str:
    return "—" if not (a == a and b == b and b > 0) else f"{a / b:.2f}×"


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"


def report(results: list[Result], args: argparse.Namespace, loads: tuple[str, str]) -> str:
    by_name = {r.contender.name: r for r in results}

    def rate(name: str) -> float:
        r = by_name.get(name)
        return r.median("rate") if r and r.runs else float("nan")

    ceiling, quix, faust = rate("plain"), rate("quix"), rate("faust")
    header = (
        "| contender | req/s (median) | range | × ceiling | × Quix | × faust | p50 ms | p99 ms "
        "| peak RSS MB | worker CPU µs/req |"
    )
    lines = [
        f"# tensorflux bench — {dt.datetime.now().isoformat(timespec='seconds')}",
        "",
        f"- machine: {machine()}",
        f"- command: `{' '.join(['python -m bench', *sys.argv[1:]])}`; repeats: {args.repeat}; "
        f"latency: {args.rate:.0f} req/s paced, {args.latency_requests} requests",
        f"- load average before / after: {loads[0]} / {loads[1]}",
        f"- worker knobs: chunk {args.chunk}, linger.ms {args.linger}, fetch.wait.max.ms "
        f"{args.fetch_wait}; receiver fetch.wait.max.ms {load.RECEIVER_FETCH_WAIT_MS}",
        "",
        header,
        "|" + "---|" * (header.count("|") - 1),
    ]
    for r in results:
        c = r.contender
        if not r.runs:
            lines.append(f"| {c.label or c.name} | failed: {r.failure[:120]} |" + " |" * 8)
            continue
        rates = [run.rate for run in r.runs]
        errors = sum(run.errors for run in r.runs)
        note = f" ({errors} error records)" if errors else ""
        rss = max(run.rss_mb for run in r.runs)
        lines.append(
            f"| {c.label or c.name}{note} | {_fmt_rate(r.median('rate'))} "
            f"| {_fmt_rate(min(rates))}–{_fmt_rate(max(rates))} "
            f"| {_ratio(r.median('rate'), ceiling)} | {_ratio(r.median('rate'), quix)} "
            f"| {_ratio(r.median('rate'), faust)} | {_fmt(r.median('p50_ms'))} "
            f"| {_fmt(r.median('p99_ms'))} | {_fmt(rss, 0)} | {_fmt(r.median('cpu_us_per_req'))} |"
        )
    one = rate("tf-1step-1w")
    targets = [
        ("1-step ≥ 25% of the ceiling", one / ceiling if ceiling else float("nan"), 0.25),
        ("1-step ≥ 2× Quix Streams", one / quix if quix else float("nan"), 2.0),
        ("1-step ≥ 10× faust", one / faust if faust else float("nan"), 10.0),
        ("3-step join ≥ 40% of 1-step", rate("tf-join-1w") / one if one else float("nan"), 0.40),
        ("conditional ≥ 40% of 1-step", rate("tf-cond-1w") / one if one else float("nan"), 0.40),
        (
            "2 workers ≥ 1.6× 1 worker (1-step)",
            rate("tf-1step-2w") / one if one else float("nan"),
            1.6,
        ),
    ]
    plain_p50 = by_name["plain"].median("p50_ms") if "plain" in by_name else float("nan")
    tf_p50 = by_name["tf-1step-1w"].median("p50_ms") if "tf-1step-1w" in by_name else float("nan")
    lines += ["", "| target | measured | verdict |", "|---|---|---|"]
    for name, value, goal in targets:
        verdict = "—" if value != value else ("met" if value >= goal else "MISSED")
        lines.append(f"| {name} | {_fmt(value, 2)} | {verdict} |")
    # Kafka hops to the receiver: plain 2 (loop, receiver); 1-step 2 as well (the step,
    # which writes the pipeline's output itself, and the receiver).
    hop = tf_p50 / 2 - plain_p50 / 2
    verdict = "—" if hop != hop else ("met" if hop <= 2.0 else "MISSED")
    lines.append(
        f"| 1-step p50 per Kafka hop within 2 ms of the plain loop's | {_fmt(hop, 2)} ms "
        f"({_fmt(tf_p50 / 2, 1)} vs {_fmt(plain_p50 / 2, 1)}) | {verdict} |"
    )
    lines += [
        "",
        "req/s: N requests pre-produced, contender started, timed from its first output "
        "(tensorflux: the first record its first step writes) to its N-th output. Latency: produce() to receipt in the bench process (the receiver's "
        "own fetch wait included for everyone). RSS: peak (VmHWM), the larger of two workers. "
        "CPU µs/req: the contender's processes' CPU time over the timed window / requests.",
    ]
    return "\n".join(lines) + "\n"


def print_table(text: str) -> None:
    try:
        from rich.console import Console
        from rich.markdown import Markdown

        Console(width=200).print(Markdown(text))
    except Exception:  # rich is a convenience; the markdown is the result
        print(text)
