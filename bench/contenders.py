"""What the bench runs: the contenders, the pipelines they run, the worker knobs."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

from engine.config import DEFAULT_PARTITIONS
from engine.runtime.settings import WorkerSettings

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
BENCH_BIN = ROOT / ".venv-bench" / "bin"
RESULTS = ROOT / "bench" / "results"
MODELS = ROOT / "examples" / "models"
BENCH_MODELS = ROOT / "bench" / "models"
"""The bench's own models (mlp256, cnn), built by examples/models/build_onnx.py --bench."""
PIPELINES = {
    "1step": (ROOT / "bench" / "pipelines" / "onestep.yaml", "onestep", ["tfsimple1"]),
    "join": (
        ROOT / "examples" / "pipelines" / "tfsimples-join.yaml",
        "tfsimples-join",
        ["tfsimple1", "tfsimple2", "tfsimple3"],
    ),
    "cond": (
        ROOT / "examples" / "pipelines" / "conditional.yaml",
        "conditional-routing",
        ["conditional", "mul10", "add10"],
    ),
    "mlp": (ROOT / "bench" / "pipelines" / "mlp.yaml", "mlp", ["mlp256"]),
    "cnn": (ROOT / "bench" / "pipelines" / "cnn.yaml", "cnn-pipeline", ["cnn"]),
}


def model_spec(model: str) -> Path:
    """A model's YAML: the bench's own, else the example's."""
    own = BENCH_MODELS / f"{model}.yaml"
    return own if own.exists() else MODELS / f"{model}.yaml"


# Worker knobs the bench passes on (the defaults the worker ships, chosen by --sweep).
WORKER_DEFAULTS = WorkerSettings()
DEFAULT_CHUNK = WORKER_DEFAULTS.chunk
DEFAULT_LINGER_MS = WORKER_DEFAULTS.producer_defaults["linger.ms"]
DEFAULT_FETCH_WAIT_MS = WORKER_DEFAULTS.consumer_defaults["fetch.wait.max.ms"]


@dataclass(frozen=True)
class Contender:
    name: str
    kind: str  # plain | quix | faust | tensorflux
    n: int
    """Requests in the throughput phase of a full run (about 2-4 s of work each)."""
    pipeline: str = "1step"
    workers: int = 1
    partitions: int = 1
    workload: str = "tfsimple"
    env: tuple[tuple[str, str], ...] = ()
    """Extra environment for the contender (knob sweep)."""
    label: str = ""


CNN_CHUNK = (("TENSORFLUX_WORKER_CHUNK", "32"),)
"""The cnn rows' consume chunk, so their model calls stay ≤ 32 images (see CONTENDERS)."""

CONTENDERS = [
    Contender("plain", "plain", 400_000, label="plain consume→produce (ceiling)"),
    Contender("quix", "quix", 40_000, label="Quix Streams app (1 step)"),
    Contender("faust", "faust", 8_000, label="faust-streaming agent (1 step)"),
    # The topics a user gets by default (engine.config.DEFAULT_PARTITIONS): one worker
    # fetches them all.
    Contender(
        "tf-1step-1w",
        "tensorflux",
        120_000,
        partitions=DEFAULT_PARTITIONS,
        label=f"tensorflux 1-step, 1 worker, {DEFAULT_PARTITIONS} partitions",
    ),
    Contender(
        "tf-1step-1w-traced",
        "tensorflux",
        40_000,
        env=(
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "@otlp-sink"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_TRACES_SAMPLER", "always_on"),
        ),
        label="tensorflux 1-step, 1 worker, every request traced (OTLP/HTTP)",
    ),
    Contender(
        "tf-1step-2w",
        "tensorflux",
        160_000,
        workers=2,
        partitions=2,
        label="tensorflux 1-step, 2 workers",
    ),
    Contender(
        "tf-join-1w",
        "tensorflux",
        30_000,
        pipeline="join",
        label="tensorflux 3-step join, 1 worker",
    ),
    Contender(
        "tf-join-2w",
        "tensorflux",
        40_000,
        pipeline="join",
        workers=2,
        partitions=2,
        label="tensorflux 3-step join, 2 workers",
    ),
    Contender(
        "tf-1step-1w-eos",
        "tensorflux",
        120_000,
        env=(("TENSORFLUX_PROCESSING_GUARANTEE", "exactly-once"),),
        label="tensorflux 1-step, 1 worker, exactly-once",
    ),
    Contender(
        "tf-join-1w-eos",
        "tensorflux",
        30_000,
        pipeline="join",
        env=(("TENSORFLUX_PROCESSING_GUARANTEE", "exactly-once"),),
        label="tensorflux 3-step join, 1 worker, exactly-once",
    ),
    Contender(
        "tf-cond-1w",
        "tensorflux",
        20_000,
        pipeline="cond",
        workload="conditional",
        label="tensorflux conditional, 1 worker",
    ),
    Contender(
        "tf-cond-2w",
        "tensorflux",
        32_000,
        pipeline="cond",
        workload="conditional",
        workers=2,
        partitions=2,
        label="tensorflux conditional, 2 workers",
    ),
    Contender(
        "tf-mlp-1w",
        "tensorflux",
        40_000,
        pipeline="mlp",
        workload="mlp",
        label="tensorflux mlp256 (8 dense 256-wide layers), 1 worker",
    ),
    Contender(
        "tf-mlp16-1w",
        "tensorflux",
        10_000,
        pipeline="mlp",
        workload="mlp16",
        label="tensorflux mlp256, 16 rows a request, 1 worker",
    ),
    Contender(
        "tf-mlp-4p-1w",
        "tensorflux",
        40_000,
        pipeline="mlp",
        workload="mlp",
        partitions=4,
        label="tensorflux mlp256, 4 partitions, 1 worker",
    ),
    Contender(
        "tf-mlp-4p-2w",
        "tensorflux",
        40_000,
        pipeline="mlp",
        workload="mlp",
        workers=2,
        partitions=4,
        label="tensorflux mlp256, 4 partitions, 2 workers",
    ),
    # The compute-heavy rows the issue-17 targets judge: a request costs the model
    # ~1 ms, some 20× what its records cost the worker and the broker. Chunks of 32:
    # onnxruntime's convolutions cost ~2.5× more an image at 1000 images a call (their
    # activations, ~400 MB a layer, leave the caches) and the worker's RSS grows 3×.
    Contender(
        "tf-cnn-1w",
        "tensorflux",
        12_000,
        pipeline="cnn",
        workload="cnn",
        env=CNN_CHUNK,
        label="tensorflux cnn (3 conv layers, 1x28x28), 1 worker",
    ),
    Contender(
        "tf-cnn-4p-1w",
        "tensorflux",
        12_000,
        pipeline="cnn",
        workload="cnn",
        env=CNN_CHUNK,
        partitions=4,
        label="tensorflux cnn, 4 partitions, 1 worker",
    ),
    Contender(
        "tf-cnn-4p-2w",
        "tensorflux",
        20_000,
        pipeline="cnn",
        workload="cnn",
        env=CNN_CHUNK,
        workers=2,
        partitions=4,
        label="tensorflux cnn, 4 partitions, 2 workers",
    ),
]


def knob_env(chunk: int, linger: int, fetch_wait: int) -> tuple[tuple[str, str], ...]:
    return (
        ("TENSORFLUX_WORKER_CHUNK", str(chunk)),
        ("TENSORFLUX_KAFKA_LINGER_MS", str(linger)),
        ("TENSORFLUX_KAFKA_FETCH_WAIT_MAX_MS", str(fetch_wait)),
    )


def contenders(args: argparse.Namespace) -> list[Contender]:
    if args.sweep:
        base = next(c for c in CONTENDERS if c.name == "tf-1step-1w")
        chosen = [next(c for c in CONTENDERS if c.name == "plain")]
        for chunk, linger, fetch_wait, parts in [
            (1000, 2, 10, 1),
            (250, 2, 10, 1),
            (4000, 2, 10, 1),
            (1000, 0, 10, 1),
            (1000, 10, 10, 1),
            (1000, 2, 1, 1),
            (1000, 2, 50, 1),
            (1000, 2, 10, 2),
        ]:
            name = f"tf-1step c{chunk} l{linger} f{fetch_wait} p{parts}"
            chosen.append(
                Contender(
                    name,
                    "tensorflux",
                    base.n,
                    partitions=parts,
                    env=knob_env(chunk, linger, fetch_wait),
                    label=name,
                )
            )
        return chosen
    chosen = CONTENDERS
    if args.only:
        names = args.only.split(",")
        unknown = set(names) - {c.name for c in CONTENDERS}
        if unknown:
            raise SystemExit(
                f"unknown contenders {sorted(unknown)}; known: {[c.name for c in CONTENDERS]}"
            )
        chosen = [c for c in CONTENDERS if c.name in names]
    if not BENCH_BIN.joinpath("python").exists():
        print("no .venv-bench (make bench creates it): skipping Quix and faust", file=sys.stderr)
        chosen = [c for c in chosen if c.kind not in ("quix", "faust")]
    knobs = knob_env(args.chunk, args.linger, args.fetch_wait)
    return [
        Contender(**{**c.__dict__, "env": knobs + c.env}) if c.kind == "tensorflux" else c
        for c in chosen
    ]
