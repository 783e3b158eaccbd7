"""The worker counts what it consumes, produces and turns into error records (Prometheus)."""

from __future__ import annotations

from pathlib import Path

from prometheus_client import REGISTRY

from .helpers import Kafka, int32, new_id

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_worker_metrics_count_records_errors_and_model_calls(running_worker, kafka: Kafka):
    worker = running_worker(
        [EXAMPLES / "models" / "tfsimple1.yaml", EXAMPLES / "pipelines" / "chain-base.yaml"]
    )
    worker.wait_ready("pipeline", "chain-base")
    inputs, outputs = (
        kafka.topics.pipeline_inputs("chain-base"),
        kafka.topics.pipeline_outputs("chain-base"),
    )
    # Model, pipeline and step labels are not namespaced: other tests in this process
    # count there too, so those are compared before and after.
    errors_before = _chain_base_errors()
    calls_before = sample("tensorflux_model_call_requests_sum", model="tfsimple1")
    ids = [new_id() for _ in range(3)]
    for rid in ids:
        kafka.infer(
            "chain-base",
            rid,
            INPUT0=int32(*range(16), shape=(1, 16)),
            INPUT1=int32(*range(16), shape=(1, 16)),
        )
    bad = new_id("bad")
    kafka.send(inputs, bad, b"\xff not avro")
    kafka.outputs("chain-base", [*ids, bad])
    assert sample("tensorflux_records_consumed_total", topic=inputs) == 4
    assert sample("tensorflux_records_produced_total", topic=outputs) == 4  # 3 answers, 1 error
    assert _chain_base_errors() - errors_before == 1
    assert sample("tensorflux_model_call_requests_sum", model="tfsimple1") - calls_before == 3


def _chain_base_errors() -> float:
    return sample(
        "tensorflux_error_records_total", pipeline="chain-base", step="tfsimple1", kind="bad-input"
    )
