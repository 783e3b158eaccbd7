"""The worker's per-pipeline and per-step metrics, counted by the agents the worker runs
(driven in memory here; the Prometheus test scrapes them from a running engine)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from prometheus_client import REGISTRY

from engine.runtime import metrics
from engine.runtime.plan import Status
from engine.testing import TopologyTestDriver

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROW = np.arange(1, 17, dtype=np.int32).reshape(1, 16)


def value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_steps_and_pipelines_count_answers_and_failures_by_outcome() -> None:
    names = {
        "ok1": (
            "tensorflux_step_requests_total",
            {"pipeline": "tfsimples-join", "step": "tfsimple1", "outcome": "ok"},
        ),  # fmt: skip
        "ok3": (
            "tensorflux_step_requests_total",
            {"pipeline": "tfsimples-join", "step": "tfsimple3", "outcome": "ok"},
        ),  # fmt: skip
        "bad1": (
            "tensorflux_step_requests_total",
            {"pipeline": "tfsimples-join", "step": "tfsimple1", "outcome": "bad-input"},
        ),  # fmt: skip
        "answers": (
            "tensorflux_pipeline_requests_total",
            {"pipeline": "tfsimples-join", "outcome": "ok"},
        ),  # fmt: skip
        "failures": (
            "tensorflux_pipeline_requests_total",
            {"pipeline": "tfsimples-join", "outcome": "bad-input"},
        ),  # fmt: skip
        "seconds3": (
            "tensorflux_step_seconds_count",
            {"pipeline": "tfsimples-join", "step": "tfsimple3"},
        ),  # fmt: skip
        "join3": (
            "tensorflux_join_wait_seconds_count",
            {"pipeline": "tfsimples-join", "step": "tfsimple3"},
        ),  # fmt: skip
        "chain": (
            "tensorflux_pipeline_requests_total",
            {"pipeline": "tfsimples", "outcome": "ok"},
        ),  # fmt: skip
    }
    before = {key: value(name, **labels) for key, (name, labels) in names.items()}
    with TopologyTestDriver.from_files([EXAMPLES]) as driver:
        for _ in range(3):
            driver.infer("tfsimples-join", {"INPUT0": ROW, "INPUT1": ROW})
        driver.infer("tfsimples", {"INPUT0": ROW, "INPUT1": ROW})
        driver.infer("tfsimples-join", {"INPUT0": np.array([[1.5]], dtype=np.float64)})
    after = {key: value(name, **labels) for key, (name, labels) in names.items()}
    delta = {key: after[key] - before[key] for key in names}
    assert delta["ok1"] == 3 and delta["ok3"] == 3
    assert delta["answers"] == 3
    assert delta["chain"] == 1
    assert delta["seconds3"] == 3 and delta["join3"] == 3
    # The bad request fails at the first steps (both read the pipeline's inputs) and
    # reaches the pipeline's outputs as error records.
    assert delta["bad1"] == 1
    assert delta["failures"] >= 1


def test_many_observations_at_once_fill_one_bucket() -> None:
    child = metrics.STEP_SECONDS.labels("observe-many", "step")
    metrics.observe_many(child, 0.003, 40)
    labels = {"pipeline": "observe-many", "step": "step"}
    assert value("tensorflux_step_seconds_count", **labels) == 40
    assert value("tensorflux_step_seconds_bucket", le="0.0025", **labels) == 0
    assert value("tensorflux_step_seconds_bucket", le="0.005", **labels) == 40
    assert abs(value("tensorflux_step_seconds_sum", **labels) - 0.12) < 1e-9


def test_model_state_follows_the_status_reports() -> None:
    metrics.observe_statuses([Status("model", "state-test", "Loading")])
    assert value("tensorflux_model_state", model="state-test", state="Loading") == 1
    metrics.observe_statuses([Status("model", "state-test", "Ready"), Status("pipeline", "p", "Ready")])  # fmt: skip
    assert value("tensorflux_model_state", model="state-test", state="Loading") == 0
    assert value("tensorflux_model_state", model="state-test", state="Ready") == 1
    assert REGISTRY.get_sample_value("tensorflux_model_state", {"model": "p", "state": "Ready"}) is None  # fmt: skip
