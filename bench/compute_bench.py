"""Real model compute: the pipeline against onnxruntime alone, and its scale-out.

The pipeline rows are contenders of the main table (`tf-cnn-*`, which the
issue-17 targets judge, and `tf-mlp*`, reported). Here the same model is run
by onnxruntime alone in a loop, with the session options the engine uses
(`session_options()`) and the batch size the worker actually handed its model
in that row's timed window (requests a call, read from the worker's metrics by
`bench/model_stats.py`), on the rows the bench's requests carry. The section
puts the two side by side, with the scale-out ratio of the 4-partition rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from bench import load
from bench.contenders import BENCH_MODELS, ROOT, Contender
from bench.timing import Result, Run

BUILD = ROOT / "examples" / "models" / "build_onnx.py"


@dataclass(frozen=True)
class Compute:
    """One compute-heavy model of the bench: its file and the rows its requests carry."""

    model: str
    description: str
    pipeline_rows: tuple[str, ...]
    """The 1-worker contenders compared with onnxruntime alone."""
    scale_out: tuple[str, str]
    """4 partitions: (1 worker, 2 workers)."""
    target: bool
    """The issue-17 targets judge this model's rows (else they are reported)."""

    @property
    def path(self) -> Path:
        return BENCH_MODELS / self.model / "model.onnx"


CNN = Compute(
    "cnn",
    "cnn: three 3x3 convolutions, 128-256-256 channels, on 1x28x28 FP32 images",
    ("tf-cnn-1w", "tf-cnn-4p-1w"),
    ("tf-cnn-4p-1w", "tf-cnn-4p-2w"),
    target=True,
)
MLP = Compute(
    "mlp256",
    "mlp256: 8 dense 256-wide FP32 layers",
    ("tf-mlp-1w", "tf-mlp16-1w"),
    ("tf-mlp-4p-1w", "tf-mlp-4p-2w"),
    target=False,
)
COMPUTE = (CNN, MLP)
ROWS = tuple(dict.fromkeys(n for c in COMPUTE for n in c.pipeline_rows + c.scale_out))
"""The compute contenders (`python -m bench --compute`)."""
ROUNDS = 5
"""onnxruntime alone is timed this many times a row, and the median is kept (the
pipeline's rate is likewise an average over its window, not its best moment)."""


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_onnx", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_models() -> None:
    """The bench's models exist (examples/models/build_onnx.py --bench)."""
    if not all(c.path.exists() for c in COMPUTE):
        _build_module().build_bench(BENCH_MODELS)


def _rows_of(workload: str, count: int) -> np.ndarray:
    """`count` requests of `workload`, their INPUT tensors joined as the worker joins them."""
    arrays = []
    for index in range(count):
        if workload == "cnn":
            arrays.append(load.CNN_IMAGE * (1 + index % 7))
        else:
            row = np.linspace(-1.0, 1.0, 256, dtype=np.float32).reshape(1, 256) * (1 + index % 7)
            arrays.append(np.repeat(row, load.MLP_ROWS[workload], axis=0))
    return np.concatenate(arrays)


def ort_alone(path: Path, workload: str, batch: int, seconds: float = 1.0) -> tuple[float, float]:
    """(requests per second, CPU µs a request) of onnxruntime calling the model in a loop,
    `batch` requests of `workload` a call, with the engine's session options: the median
    rate of ROUNDS timings, and the calling thread's CPU over all of them (the load moves
    the first far more than the second)."""
    import onnxruntime as ort

    from engine.runtimes.onnx_model import session_options

    ensure_models()
    session = ort.InferenceSession(
        str(path), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    inputs = {"INPUT": _rows_of(workload, batch)}
    started = time.perf_counter()
    session.run(None, inputs)  # warm, and how long a call takes
    each = max(1e-6, time.perf_counter() - started)
    calls = max(3, int(seconds / each))
    rates = []
    cpu = time.thread_time()
    for _ in range(ROUNDS):
        started = time.perf_counter()
        for _ in range(calls):
            session.run(None, inputs)
        rates.append(calls * batch / (time.perf_counter() - started))
    cpu_us = (time.thread_time() - cpu) / (ROUNDS * calls * batch) * 1e6
    return statistics.median(rates), cpu_us


def batch_of(result: Result) -> int:
    """Requests a model call in the row's timed windows (median over its runs; 0: unknown)."""
    sizes = [run.calls.per_call() for run in result.runs if run.calls.calls > 0]
    return max(1, round(statistics.median(sizes))) if sizes else 0


def alone_after(contender: Contender, run: Run, args: argparse.Namespace) -> None:
    """Set `run.alone` and `run.alone_cpu_us`: onnxruntime alone at the requests a call
    `run` made, timed right after the run, at the load it ran at (left NaN: not a compute
    row compared with onnxruntime alone)."""
    compute = next((c for c in COMPUTE if contender.name in c.pipeline_rows), None)
    if compute is None or run.calls.calls <= 0:
        return
    batch = max(1, round(run.calls.per_call()))
    seconds = 0.3 if args.quick else 1.0
    run.alone, run.alone_cpu_us = ort_alone(compute.path, contender.workload, batch, seconds)


def describe(run: Run) -> str:
    """The run's model calls, for its progress line ('' when none were measured)."""
    calls = run.calls
    if not calls.requests:
        return ""
    text = f", model: {calls.per_call():.0f} req/call, busy {_busy_of(run):.2f}"
    if run.alone == run.alone:
        text += (
            f", onnxruntime alone {run.alone:,.0f} req/s ({run.rate / run.alone:.2f}×), "
            f"{run.alone_cpu_us:.1f} CPU µs/req"
        )
    return text


def alone_for(results: list[Result]) -> dict[str, float]:
    """onnxruntime alone's req/s for each compute row that ran (median over its runs)."""
    alone: dict[str, float] = {}
    for result in results:
        values = [run.alone for run in result.runs if run.alone == run.alone]
        if values:
            alone[result.contender.name] = statistics.median(values)
    return alone


def section(results: list[Result], args: argparse.Namespace, alone: dict[str, float]) -> str:
    """The section, against `alone` (alone_for), the figures the main target table uses."""
    by_name = {r.contender.name: r for r in results if r.runs}
    text = ""
    for compute in COMPUTE:
        if not any(name in by_name for name in compute.pipeline_rows + compute.scale_out):
            continue
        text += _model_section(compute, by_name, alone)
    if text:
        text += (
            "\n'model busy': the time the workers' model calls took over the timed window "
            "(1.00: a model thread never idle; two workers add up). onnxruntime alone runs "
            "in the bench process right after each run (median of five timings), on the rows the "
            "requests carry, at the requests a call the workers made in it (their metrics). "
            "The pipeline also writes each request to its step's inputs topic and the answer "
            "to the pipeline's outputs (three records a request), on a broker sharing the "
            "machine.\n"
        )
    return text


def _model_section(compute: Compute, by_name: dict[str, Result], alone: dict[str, float]) -> str:
    def rate(name: str) -> float:
        return by_name[name].median("rate") if name in by_name else float("nan")

    goal = "target" if compute.target else "reported, not a target"
    lines = [
        "",
        f"## Real model compute ({compute.description}; {goal})",
        "",
        "| measured | req/s | requests a call | model busy | CPU µs/req | × onnxruntime alone "
        "| goal | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name in compute.pipeline_rows:
        result = by_name.get(name)
        if result is None:
            continue
        batch, ort = batch_of(result), alone.get(name, float("nan"))
        label = result.contender.label or name
        shown = "—" if ort != ort else f"{ort:,.0f}"
        cpu = _cpu(result)
        lines.append(
            f"| onnxruntime alone, same batches as below | {shown} | {batch} | | {cpu} | | | |"
        )
        lines.append(
            _row(
                label,
                rate(name),
                batch,
                _busy(result),
                rate(name) / ort,
                0.85,
                compute.target,
                _fmt(result.median("cpu_us_per_req")),
            )
        )
    one, two = compute.scale_out
    if one in by_name and two in by_name:
        ratio = rate(two) / rate(one)
        lines.append(
            _row(
                "4 partitions, 2 workers vs 1 worker",
                rate(two),
                batch_of(by_name[two]),
                _busy(by_name[two]),
                ratio,
                1.7,
                compute.target,
                _fmt(by_name[two].median("cpu_us_per_req")),
                f"{rate(one):,.0f} → ",
                " (2w/1w)",
            )
        )
    return "\n".join(lines) + "\n"


def _cpu(result: Result) -> str:
    """onnxruntime alone's CPU µs a request (median over the row's runs)."""
    values = [run.alone_cpu_us for run in result.runs if run.alone_cpu_us == run.alone_cpu_us]
    return _fmt(statistics.median(values)) if values else "—"


def _fmt(value: float) -> str:
    return "—" if value != value else f"{value:.1f}"


def _busy(result: Result) -> float:
    """Model call time over the timed window (median over runs; NaN: not measured)."""
    values = [_busy_of(run) for run in result.runs if run.calls.requests > 0]
    return statistics.median(values) if values else float("nan")


def _busy_of(run: Run) -> float:
    """The run's model call time over its timed window (rate × seconds a request)."""
    return run.rate * run.calls.seconds / run.calls.requests


def _row(
    name: str,
    value: float,
    batch: int,
    busy: float,
    ratio: float,
    goal: float,
    target: bool,
    cpu: str,
    prefix: str = "",
    of: str = "",
) -> str:
    """One measured row; `of` says what the ratio is of ('' : of onnxruntime alone)."""
    if ratio != ratio:
        verdict = "—"
    else:
        verdict = ("met" if ratio >= goal else "MISSED") if target else "reported"
    shown = "—" if value != value else f"{prefix}{value:,.0f}"
    ratio_text = "—" if ratio != ratio else f"{ratio:.2f}×{of}"
    busy_text = "—" if busy != busy else f"{busy:.2f}"
    cells = [name, shown, str(batch or "—"), busy_text, cpu, ratio_text, f"≥ {goal}×", verdict]
    return "| " + " | ".join(cells) + " |"
