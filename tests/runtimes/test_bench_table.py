"""The bench's target table (bench/table.py): issue 17's targets, each computed from one
run's rows, with the verdict the figures give. No timing is measured here."""

from __future__ import annotations

import argparse

from bench.contenders import CONTENDERS
from bench.table import report
from bench.timing import Result, Run

RATES = {
    "plain": 100_000.0,
    "quix": 8_000.0,
    "faust": 3_000.0,
    "tf-1step-1w": 45_000.0,  # 0.45 of the ceiling, 5.6× Quix, 15× faust
    "tf-1step-2w": 40_000.0,
    "tf-join-1w": 15_000.0,  # 0.33 of the 1-step: missed
    "tf-cond-1w": 20_000.0,  # 0.44: met
    "tf-cnn-1w": 1_800.0,  # 0.90 of onnxruntime alone (2,000 req/s): met
    "tf-cnn-4p-1w": 1_000.0,
    "tf-cnn-4p-2w": 1_600.0,  # 1.6×: missed
    "tf-mlp-1w": 3_000.0,  # 0.30 of onnxruntime alone: reported
    "tf-mlp-4p-1w": 5_000.0,
    "tf-mlp-4p-2w": 8_000.0,
}
ALONE = {"tf-cnn-1w": 2_000.0, "tf-mlp-1w": 10_000.0}
P50_MS = {"plain": 8.0, "tf-1step-1w": 11.0}  # 1.5 ms a hop over the loop's: met


def _results() -> list[Result]:
    by_name = {c.name: c for c in CONTENDERS}
    return [
        Result(by_name[name], [Run(rate, P50_MS.get(name, 9.0), 20.0, 100.0, 10.0, 0, 1000)])
        for name, rate in RATES.items()
    ]


def _args() -> argparse.Namespace:
    return argparse.Namespace(
        repeat=1, rate=200.0, latency_requests=200, chunk=1000, linger=2, fetch_wait=10
    )


def test_the_target_table_has_issue_17s_targets_with_their_verdicts() -> None:
    text = report(_results(), _args(), ("1.0 1.0 1.0", "2.0 2.0 2.0"), alone=ALONE)
    lines = text.splitlines()
    assert "| 1-step ≥ 40% of the ceiling | 0.45 | met |" in lines
    assert "| 1-step ≥ 5× Quix Streams | 5.62 | met |" in lines
    assert "| 1-step ≥ 10× faust | 15.00 | met |" in lines
    assert "| 3-step join ≥ 40% of 1-step | 0.33 | MISSED |" in lines
    assert "| conditional ≥ 40% of 1-step | 0.44 | met |" in lines
    assert (
        "| cnn pipeline ≥ 85% of onnxruntime alone at the worker's batch sizes (1 worker) "
        "| 0.90 | met |" in lines
    )
    assert "| 2 workers ≥ 1.7× 1 worker (cnn, 4 partitions) | 1.60 | MISSED |" in lines
    assert (
        "| mlp256 pipeline vs onnxruntime alone (1 row a request): not a target, the record "
        "work is the bound | 0.30 | reported |" in lines
    )
    assert (
        "| 1-step p50 per Kafka hop within 2 ms of the plain loop's | 1.50 ms (5.5 vs 4.0) "
        "| met |" in lines
    )
    assert (
        "| 2 workers vs 1 worker (1-step): not a target, the broker is the bound | 0.89 "
        "| reported |" in lines
    )


def test_a_target_whose_rows_did_not_run_says_so_instead_of_a_verdict() -> None:
    results = [r for r in _results() if not r.contender.name.startswith("tf-cnn")]
    lines = report(results, _args(), ("1.0 1.0 1.0", "1.0 1.0 1.0")).splitlines()
    assert (
        "| cnn pipeline ≥ 85% of onnxruntime alone at the worker's batch sizes (1 worker) "
        "| — | — |" in lines
    )
    assert "| 2 workers ≥ 1.7× 1 worker (cnn, 4 partitions) | — | — |" in lines
    assert "| 3-step join ≥ 40% of 1-step | 0.33 | MISSED |" in lines
