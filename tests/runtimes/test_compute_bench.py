"""The compute bench's own pieces (bench/compute_bench.py, bench/model_stats.py): its cnn
pipeline answers the requests the bench sends with the model's scores, the requests a
call are read from a worker's metrics as served, and the section judges the rows it is
given. No timing is asserted (`python -m bench --compute` measures)."""

from __future__ import annotations

import argparse
import importlib.util
import shutil
from pathlib import Path

import numpy as np
from prometheus_client import start_http_server

from bench import compute_bench, load, model_stats
from bench.contenders import CONTENDERS, PIPELINES, ROOT
from bench.timing import Result, Run
from engine.runtime import metrics
from engine.runtimes.onnx_model import OnnxModel
from engine.testing import TopologyTestDriver


def _built_cnn(into: Path) -> Path:
    spec = importlib.util.spec_from_file_location("build_onnx", compute_bench.BUILD)
    assert spec is not None and spec.loader is not None
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    build.build_bench(into)
    shutil.copy(ROOT / "bench" / "models" / "cnn.yaml", into / "cnn.yaml")
    return into / "cnn" / "model.onnx"


def test_the_cnn_pipeline_answers_the_bench_requests_with_the_models_scores(
    tmp_path: Path,
) -> None:
    model_file = _built_cnn(tmp_path)
    path, pipeline, _ = PIPELINES["cnn"]
    with TopologyTestDriver.from_files([tmp_path / "cnn.yaml", path]) as driver:
        topic = driver.topics.pipeline_inputs(pipeline)
        ids = [f"t-{i}" for i in range(3)]
        driver.send_all(
            [(topic, rid, load.request_payload("cnn", rid, i), None) for i, rid in enumerate(ids)]
        )
        answers = [driver.output(pipeline, rid).arrays()["OUTPUT"] for rid in ids]
    alone = OnnxModel("cnn", model_file)
    for index, answer in enumerate(answers):
        image = load.CNN_IMAGE * (1 + index % 7)
        assert answer.shape == (1, 10)
        np.testing.assert_allclose(
            answer, alone.predict({"INPUT": image})["OUTPUT"], rtol=1e-4, atol=1e-5
        )


def test_model_stats_reads_the_requests_a_call_a_worker_serves() -> None:
    port = model_stats.free_port()
    server, thread = start_http_server(port, addr="127.0.0.1")
    try:
        before = model_stats.scrape([port])
        metrics.observe_model_call("bench-stats-model", 0.25, 32)
        metrics.observe_model_call("bench-stats-model", 0.75, 16)
        calls = model_stats.scrape([port]) - before
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert (calls.calls, calls.requests) == (2, 48)
    assert calls.per_call() == 24
    assert abs(calls.seconds - 1.0) < 1e-9
    # A worker that does not answer (gone, or no metrics port) counts nothing.
    assert model_stats.scrape([port]) == model_stats.Calls()


def _result(name: str, rate: float, per_call: int, alone: float) -> Result:
    contender = next(c for c in CONTENDERS if c.name == name)
    calls = model_stats.Calls(100, 100 * per_call, 100 * per_call / rate)  # never idle
    run = Run(rate, 9.0, 20.0, 100.0, 1_100.0, 0, 200, calls, alone, 1_000.0)
    return Result(contender, [run])


def test_the_section_compares_each_row_with_onnxruntime_alone_at_its_batch_size() -> None:
    results = [
        _result("tf-cnn-1w", 900.0, 32, 1_000.0),  # 0.90: met
        _result("tf-cnn-4p-1w", 950.0, 32, 1_000.0),
        _result("tf-cnn-4p-2w", 1_520.0, 31, float("nan")),  # 1.60×: missed
        _result("tf-mlp-1w", 10_000.0, 1000, 100_000.0),  # 0.10: reported
    ]
    alone = compute_bench.alone_for(results)
    assert alone == {"tf-cnn-1w": 1_000.0, "tf-cnn-4p-1w": 1_000.0, "tf-mlp-1w": 100_000.0}
    args = argparse.Namespace(quick=True)
    lines = compute_bench.section(results, args, alone).splitlines()
    cnn = next(i for i, line in enumerate(lines) if line.startswith("## Real model compute (cnn"))
    assert lines[cnn].endswith("; target)")
    assert "| onnxruntime alone, same batches as below | 1,000 | 32 | | 1000.0 | | | |" in lines
    assert (
        "| tensorflux cnn (3 conv layers, 1x28x28), 1 worker | 900 | 32 | 1.00 | 1100.0 "
        "| 0.90× | ≥ 0.85× | met |" in lines
    )
    assert (
        "| 4 partitions, 2 workers vs 1 worker | 950 → 1,520 | 31 | 1.00 | 1100.0 "
        "| 1.60× (2w/1w) | ≥ 1.7× | MISSED |" in lines
    )
    mlp = next(i for i, line in enumerate(lines) if line.startswith("## Real model compute (mlp"))
    assert lines[mlp].endswith("; reported, not a target)")
    assert any(line.startswith("| tensorflux mlp256") and "| reported |" in line for line in lines)
