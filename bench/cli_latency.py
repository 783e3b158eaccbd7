"""How long the control commands take on an idle engine (issue 13: "within a second").

    .venv/bin/python -m bench.cli_latency [--repeat 5]
    make bench BENCH_ARGS=--cli

`tensorflux up -f examples/` (its own embedded broker) is started, waited for until its
gateway says ready, and left to settle; then each command is run `--repeat` times as a
user runs it (a new `tensorflux` process each time, wall time from spawn to exit) against
that engine, which has nothing else to do: `pipeline status`, `pipeline list`, `model list`,
`pipeline status P`, `model status M`, and `pipeline unload P` / `pipeline load -f P.yaml`
in turn. `tensorflux --help` is the floor: Python's start and the CLI's imports, which
every command pays. The target is a median of at most 1 s for each command.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from bench.idle import ROOT, SETTLE_S, examples_engine

TARGET_S = 1.0
PIPELINE = "tfsimples"
MODEL = "tfsimple1"
PIPELINE_FILE = ROOT / "examples" / "pipelines" / f"{PIPELINE}.yaml"
TENSORFLUX = str(Path(sys.executable).parent / "tensorflux")


@dataclass(frozen=True)
class Timed:
    command: str
    seconds: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)


def _bootstrap_from(log_path: Path) -> str:
    """The embedded broker's address, from `up`'s first line ("bootstrap HOST:PORT,")."""
    for line in log_path.read_text(errors="replace").splitlines():
        if "tensorflux up: bootstrap " in line:
            return line.split("bootstrap ", 1)[1].split(",", 1)[0]
    raise RuntimeError(f"tensorflux up printed no bootstrap address (see {log_path})")


def _time(argv: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"`{' '.join(argv[1:])}` failed ({done.returncode}): {done.stderr}")
    return seconds


def measure(repeat: int, log_path: Path) -> list[Timed]:
    commands = {
        "--help (the floor)": ["--help"],
        "pipeline status": ["pipeline", "status"],
        "pipeline list": ["pipeline", "list"],
        "model list": ["model", "list"],
        f"pipeline status {PIPELINE}": ["pipeline", "status", PIPELINE],
        f"model status {MODEL}": ["model", "status", MODEL],
        f"pipeline unload {PIPELINE}": ["pipeline", "unload", PIPELINE],
        f"pipeline load -f {PIPELINE}.yaml": ["pipeline", "load", "-f", str(PIPELINE_FILE)],
    }
    times: dict[str, list[float]] = {name: [] for name in commands}
    with examples_engine(log_path) as (engine, _):
        time.sleep(SETTLE_S)
        kafka = ["--bootstrap", _bootstrap_from(log_path)]
        for _ in range(repeat):
            for name, args in commands.items():
                extra = [] if args == ["--help"] else kafka
                times[name].append(_time([TENSORFLUX, *args, *extra]))
        if engine.poll() is not None:
            raise RuntimeError(f"tensorflux up exited during the run (see {log_path})")
    return [Timed(name, seconds) for name, seconds in times.items()]


def section(rows: list[Timed]) -> str:
    lines = [
        "\n## Control commands on an idle engine (`tensorflux up -f examples/`)\n",
        "| command | median s | slowest s | target |",
        "|---|---|---|---|",
    ]
    for row in rows:
        floor = row.command.startswith("--help")
        verdict = "" if floor else ("met" if row.median <= TARGET_S else "MISSED")
        target = "" if floor else f"≤ {TARGET_S:g} s ({verdict})"
        lines.append(f"| `{row.command}` | {row.median:.2f} | {max(row.seconds):.2f} | {target} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cli_latency", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--log", default="/tmp/tensorflux-cli-latency-up.log")
    args = parser.parse_args(argv)
    before = os.getloadavg()
    rows = measure(args.repeat, Path(args.log))
    after = os.getloadavg()
    print(section(rows))
    print(f"load average before / after: {before[0]:.2f} / {after[0]:.2f}")
    return 0 if all(r.median <= TARGET_S for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
