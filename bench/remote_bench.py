"""Remote models (issue 16): a 1-step pipeline whose step calls a real MLServer over OIP HTTP
and gRPC, against direct calls of the same MLServer from one client, and the same pipeline
on the in-process sklearn runtime with the same artifact.

    .venv/bin/python -m bench.remote_bench [--quick] [--bootstrap HOST:PORT]

An iris LogisticRegression is trained and saved the way MLServer's docs save it
(examples/models/build_mlserver.py, into a temporary directory), and MLServer 1.7.1 from
`.venv-mlserver` serves it (bench/mlserver.py; `make bench` builds that venv, and these
rows are skipped with the reason when it is missing). Every request is one flower, an FP32
[1, 4] tensor. Then, on one broker:

- direct calls from one client in this process (httpx, keep-alive; one grpcio channel),
  one at a time and from a few threads at once: requests/s, p50, p99 of each call;
- the in-process sklearn runtime alone on the same artifact, called in a loop;
- pipelines of one step (`tensorflux worker` processes): `oip+http://` and `oip+grpc://`
  to that MLServer, one request a call, then with `max_batch_size` (requests consumed
  together merged into one call) and with more model threads (calls at once); and the
  in-process sklearn runtime on the same artifact. Each is fed a backlog of N requests
  produced before its worker starts (requests/s, from the first record its step writes
  to the N-th answer), then paced requests (end-to-end p50/p99, produce to answer,
  through the pipeline's topics).

The × column is a pipeline's rate over that of direct calls of the same model (same
protocol, or the runtime alone), one at a time.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench import load, mlserver
from bench.contenders import MODELS, RESULTS, ROOT, VENV_BIN
from bench.direct_calls import direct, grpc_caller, http_caller, in_process_caller
from bench.table import machine
from bench.timing import _start, _stop
from engine.admin import TopicAdmin
from engine.broker import EmbeddedBroker
from engine.config import KafkaSettings
from engine.topology.topics import TopicNames

MODEL = "iris-sklearn"
CONCURRENCY = 8
"""Threads of the one direct client calling at once."""
MAX_BATCH_SIZE = 32
MODEL_THREADS = 4
PACED_RATE = 20.0
"""Paced requests a second: well under what one call at a time sustains, so the
percentiles are a request's own latency rather than a queue's."""
PIPELINE = "remote-p"
NAN = float("nan")


@dataclass(frozen=True)
class Step:
    """One pipeline row: how its Model reaches the model, and its worker's environment."""

    label: str
    uri: str  # {http} / {grpc} / {artifact} are filled in
    protocol: str  # the direct row it is compared with: "http", "grpc" or "in-process"
    backlog: int = 1000
    """Requests of its backlog in a full run (a quarter with --quick): ~5-15 s of work."""
    parameters: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()


STEPS = (
    Step("oip+http step, one request a call", "oip+http://{http}/" + MODEL, "http"),
    Step(
        f"oip+http step, `max_batch_size: {MAX_BATCH_SIZE}`",
        "oip+http://{http}/" + MODEL,
        "http",
        backlog=10_000,
        parameters=(("max_batch_size", str(MAX_BATCH_SIZE)),),
    ),
    Step(
        f"oip+http step, one request a call, {MODEL_THREADS} model threads",
        "oip+http://{http}/" + MODEL,
        "http",
        env=(("TENSORFLUX_WORKER_MODEL_THREADS", str(MODEL_THREADS)),),
    ),
    Step("oip+grpc step, one request a call", "oip+grpc://{grpc}/" + MODEL, "grpc"),
    Step(
        f"oip+grpc step, `max_batch_size: {MAX_BATCH_SIZE}`",
        "oip+grpc://{grpc}/" + MODEL,
        "grpc",
        backlog=10_000,
        parameters=(("max_batch_size", str(MAX_BATCH_SIZE)),),
    ),
    Step("in-process sklearn step (same artifact)", "{artifact}", "in-process", backlog=40_000),
)


@dataclass
class Row:
    what: str
    rate: float
    p50_ms: float = NAN
    p99_ms: float = NAN
    versus: float = NAN
    """Rate over that of direct calls of the same model, one at a time."""
    failure: str = ""


# -- the artifact and the direct calls -----------------------------------------------------


def build_artifact(out: Path) -> Path:
    """iris-sklearn (model.joblib and model-settings.json) under `out`, trained here."""
    spec = importlib.util.spec_from_file_location("build_mlserver", MODELS / "build_mlserver.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_sklearn(out)


def direct_rows(server: mlserver.MLServer, artifact: Path, count: int) -> dict[str, Row]:
    """Direct calls: each protocol at 1 and CONCURRENCY at once, and the runtime alone."""
    call, close = in_process_caller(artifact, MODEL)
    try:
        rate, latencies = direct(call, count * 10, 1)
    finally:
        close()
    rows = {
        "in-process-1": Row(
            "in-process sklearn runtime alone, one call at a time",
            rate,
            load.percentile(latencies, 50),
            load.percentile(latencies, 99),
        )
    }
    for protocol, make in (("http", http_caller), ("grpc", grpc_caller)):
        call, close = make(server.http if protocol == "http" else server.grpc, MODEL)
        try:
            for concurrency in (1, CONCURRENCY):
                how = "one call at a time" if concurrency == 1 else f"{concurrency} threads at once"
                what = f"direct {'HTTP' if protocol == 'http' else 'gRPC'}, 1 client, {how}"
                rate, latencies = direct(call, count, concurrency)
                rows[f"{protocol}-{concurrency}"] = Row(
                    what, rate, load.percentile(latencies, 50), load.percentile(latencies, 99)
                )
        finally:
            close()
    return rows


# -- the pipelines -------------------------------------------------------------------------


def specs_yaml(step: Step, server: mlserver.MLServer, artifact: Path) -> str:
    """The row's Model (named as MLServer names the model) and its 1-step pipeline."""
    uri = step.uri.format(http=server.http, grpc=server.grpc, artifact=artifact)
    header = "apiVersion: mlops.seldon.io/v1alpha1"
    model = [header, "kind: Model", f"metadata: {{name: {MODEL}}}", "spec:"]
    model.append(f"  storageUri: {uri}")
    if not uri.startswith("oip"):
        model.append("  requirements: [sklearn]")
    if step.parameters:
        model.append("  parameters:")
        model += [f'  - {{name: {name}, value: "{value}"}}' for name, value in step.parameters]
    pipeline = [header, "kind: Pipeline", f"metadata: {{name: {PIPELINE}}}", "spec:"]
    pipeline += [f"  steps: [{{name: {MODEL}}}]", f"  output: {{steps: [{MODEL}]}}"]
    return "\n".join([*model, "---", *pipeline]) + "\n"


def pipeline_row(
    bootstrap: str, step: Step, spec_file: Path, n: int, paced: int, logdir: Path
) -> Row:
    ns = f"m{uuid.uuid4().hex[:8]}"
    settings = KafkaSettings(bootstrap=bootstrap, namespace=ns)
    topics = TopicNames(settings.topic_prefix, ns)
    inputs, outputs = topics.pipeline_inputs(PIPELINE), topics.pipeline_outputs(PIPELINE)
    step_inputs = topics.step_inputs(PIPELINE, MODEL)
    admin = TopicAdmin(settings)
    admin.ensure([inputs, outputs, step_inputs])
    load.preproduce(bootstrap, inputs, "iris", n)
    receiver = load.Receiver(bootstrap, outputs, settings.partitions, step_inputs)
    receiver.start()
    argv = [str(VENV_BIN / "tensorflux"), "worker", "--bootstrap", bootstrap]
    argv += ["--namespace", ns, "-f", str(spec_file)]
    log = logdir / f"remote-{ns}.log"
    worker = _start(argv, {**os.environ, **dict(step.env)}, log)
    try:
        deadline = time.monotonic() + 120 + n / 20
        while receiver.count < n:
            if time.monotonic() > deadline or worker.poll() is not None:
                raise RuntimeError(f"{receiver.count}/{n} answered; see {log}")
            time.sleep(0.05)
        rate = receiver.rate()
        latencies = load.paced(bootstrap, inputs, "iris", receiver, PACED_RATE, paced)
        if receiver.errors:
            raise RuntimeError(f"{receiver.errors} error records; see {log}")
        if len(latencies) < paced:
            raise RuntimeError(f"{len(latencies)}/{paced} paced requests answered; see {log}")
    finally:
        _stop([worker])
        receiver.stop.set()
        receiver.join(5)
        with contextlib.suppress(Exception):
            admin.delete([t for t in admin.existing() if f".{ns}." in t])
    return Row(step.label, rate, load.percentile(latencies, 50), load.percentile(latencies, 99))


# -- the section ---------------------------------------------------------------------------


def measure(bootstrap: str, quick: bool, logdir: Path) -> list[Row]:
    calls = 300 if quick else 1000
    paced = 40 if quick else 100
    with contextlib.ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-remote-")))
        artifact = build_artifact(work / "models")
        log = logdir / "remote-mlserver.log"
        server = stack.enter_context(mlserver.serve(work / "models", MODEL, log))
        found = direct_rows(server, artifact, calls)
        rows = [row for key, row in found.items() if not key.startswith("in-process")]
        for index, step in enumerate(STEPS):
            spec_file = work / f"step-{index}.yaml"
            spec_file.write_text(specs_yaml(step, server, artifact))
            n = max(300, step.backlog // 4) if quick else step.backlog
            print(f"  remote models: {step.label} (N={n}) ...", flush=True)
            try:
                row = pipeline_row(bootstrap, step, spec_file, n, paced, logdir)
            except Exception as error:  # one failing row does not stop the others
                row = Row(step.label, NAN, failure=str(error))
            alone = found[f"{step.protocol}-1"]
            row.versus = row.rate / alone.rate
            rows += [alone, row] if step.protocol == "in-process" else [row]
    return rows


def table(rows: list[Row], quick: bool, loads: tuple[str, str]) -> str:
    """The section's Markdown."""

    def number(value: float, digits: int) -> str:
        return "—" if value != value else f"{value:,.{digits}f}"

    lines = [
        "",
        f"## Remote models: MLServer {mlserver.version() or '?'} serving iris-sklearn "
        f"(bench/remote_bench.py{', --quick' if quick else ''})",
        "",
        f"- one flower (FP32 [1, 4]) a request; pipelines: a backlog through Kafka (req/s), "
        f"then {PACED_RATE:.0f} req/s paced (p50/p99, produce to answer)",
        f"- load average before / after: {loads[0]} / {loads[1]}",
        "",
        "| what | req/s | p50 ms | p99 ms | × direct calls, one at a time |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        if row.failure:
            lines.append(f"| {row.what} | FAILED: {row.failure} | | | |")
            continue
        versus = "" if row.versus != row.versus else f"{row.versus:.2f}×"
        lines.append(
            f"| {row.what} | {number(row.rate, 0)} | {number(row.p50_ms, 1)} "
            f"| {number(row.p99_ms, 1)} | {versus} |"
        )
    return "\n".join(lines) + "\n"


def section(bootstrap: str, quick: bool, logdir: Path) -> str:
    """The Markdown of the remote-model rows, or one line saying why they are skipped."""
    if not mlserver.MLSERVER.exists():
        return (
            "\n## Remote models\n\nskipped: no MLServer venv (.venv-mlserver; "
            "`make .venv-mlserver/.installed` builds it)\n"
        )
    before = _loadavg()
    try:
        rows = measure(bootstrap, quick, logdir)
    except Exception as error:  # the bench goes on without these rows
        return f"\n## Remote models\n\nfailed: {error}\n"
    return table(rows, quick, (before, _loadavg()))


def _loadavg() -> str:
    with contextlib.suppress(OSError):
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    return "?"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.remote_bench")
    parser.add_argument("--quick", action="store_true", help="fewer calls and requests")
    parser.add_argument("--bootstrap", help="an existing broker (default: an embedded one)")
    parser.add_argument("--output", default=str(RESULTS / "remote.md"))
    args = parser.parse_args(argv)
    logdir = RESULTS / "logs"
    logdir.mkdir(parents=True, exist_ok=True)
    broker = None if args.bootstrap else EmbeddedBroker().start()
    try:
        text = section(args.bootstrap or broker.bootstrap, args.quick, logdir)  # type: ignore[union-attr]
    finally:
        if broker is not None:
            broker.stop()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    text = f"- machine: {machine()}; commit {commit or '?'}\n{text}"
    Path(args.output).write_text(text)
    print(text + f"written to {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
