"""Real model compute: the mlp256 pipeline against onnxruntime alone, and its scale-out.

The pipeline rows are contenders of the main table (`tf-mlp-*`). Here the
same model is run by onnxruntime alone in a loop, with the session options
the engine uses (one intra-op thread) and the batch size a saturated worker
hands its model (one consumed chunk), on the rows the bench's requests carry;
the section puts the two side by side, with the scale-out ratio of the
4-partition rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from types import ModuleType

import numpy as np

from bench.contenders import BENCH_MODELS, ROOT
from bench.timing import Result

BUILD = ROOT / "examples" / "models" / "build_onnx.py"
MLP = BENCH_MODELS / "mlp256" / "model.onnx"


def _build_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_onnx", BUILD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_models() -> None:
    """The bench's models exist (examples/models/build_onnx.py --bench)."""
    if not MLP.exists():
        _build_module().build_bench(BENCH_MODELS)


def ort_alone(batch: int, rows: int) -> float:
    """Rows per second of onnxruntime calling mlp256 in a loop, `batch` rows a call."""
    import onnxruntime as ort

    from engine.runtimes.onnx_model import session_options

    ensure_models()
    session = ort.InferenceSession(
        str(MLP), sess_options=session_options(), providers=["CPUExecutionProvider"]
    )
    row = np.linspace(-1.0, 1.0, 256, dtype=np.float32).reshape(1, 256)
    request = np.concatenate([row * (1 + i % 7) for i in range(batch)])  # as load.py's rows
    session.run(None, {"INPUT": request})  # warm
    calls = max(1, rows // batch)
    started = time.perf_counter()
    for _ in range(calls):
        session.run(None, {"INPUT": request})
    return calls * batch / (time.perf_counter() - started)


def alone_for(results: list[Result], args: argparse.Namespace) -> float:
    """onnxruntime's rows/s alone for this run's mlp256 rows (NaN when none ran)."""
    if not any(r.contender.name == "tf-mlp-1w" and r.runs for r in results):
        return float("nan")
    return ort_alone(args.chunk, max(4000, int(40_000 * args.scale)))


def section(results: list[Result], args: argparse.Namespace, alone: float) -> str:
    """The section, against `alone` (alone_for), the figure the main target table uses."""
    by_name = {r.contender.name: r for r in results if r.runs}
    if "tf-mlp-1w" not in by_name or alone != alone:
        return ""

    def rate(name: str) -> float:
        return by_name[name].median("rate") if name in by_name else float("nan")

    pipeline = rate("tf-mlp-1w")
    one, two = rate("tf-mlp-4p-1w"), rate("tf-mlp-4p-2w")
    lines = [
        "",
        "## Real model compute (mlp256: 8 dense 256-wide FP32 layers)",
        "",
        "| measured | rows/s | ratio | target | verdict |",
        "|---|---|---|---|---|",
        f"| onnxruntime alone, batches of {args.chunk}, 1 intra-op thread | {alone:,.0f} | | | |",
        _row("pipeline, 1 worker, 1 partition", pipeline, pipeline / alone, 0.85),
        _row(
            "pipeline, 16 rows a request (rows/s)",
            rate("tf-mlp16-1w") * 16,
            rate("tf-mlp16-1w") * 16 / alone,
            0.85,
        ),
        _row("4 partitions, 2 workers vs 1 worker", two, two / one, 1.7, f"{one:,.0f} → "),
        "",
        "One row a request unless said. "
        "onnxruntime alone runs in the bench process on the same rows the requests carry. "
        "The pipeline also writes each request to its step's inputs topic and the answer to "
        "the pipeline's outputs (three records a request), on a broker sharing the machine.",
    ]
    return "\n".join(lines) + "\n"


def _row(name: str, value: float, ratio: float, goal: float, prefix: str = "") -> str:
    verdict = "—" if ratio != ratio else ("met" if ratio >= goal else "MISSED")
    shown = "—" if value != value else f"{prefix}{value:,.0f}"
    ratio_text = "—" if ratio != ratio else f"{ratio:.2f}×"
    return f"| {name} | {shown} | {ratio_text} | ≥ {goal}× | {verdict} |"
