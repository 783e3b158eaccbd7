"""Hot load and unload: a running worker keeps serving what stays while pipelines come and go."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from engine.config import KafkaSettings

from .helpers import MODELS, PIPELINES, Kafka, RunningWorker, compile_specs, fp32, int32, new_id

ROW = int32(*range(1, 17), shape=(1, 16))
DOUBLED = [[2 * v for v in range(1, 17)]]


def send_kept(kafka: Kafka, label: str) -> tuple[list[str], list[str]]:
    chain = [new_id(f"{label}-chain") for _ in range(5)]
    routed = [new_id(f"{label}-cond") for _ in range(5)]
    for rid in chain:
        kafka.infer("tfsimples", rid, INPUT0=ROW, INPUT1=ROW)
    for rid in routed:
        kafka.infer("conditional-routing", rid, INPUT=fp32(1, 2, 3, 4), CHOICE=int32(0))
    return chain, routed


def check_kept(kafka: Kafka, chain: list[str], routed: list[str]) -> None:
    for answer in kafka.outputs("tfsimples", chain).values():
        assert answer.arrays()["OUTPUT0"] == DOUBLED
    for answer in kafka.outputs("conditional-routing", routed).values():
        assert answer.arrays() == {"OUTPUT": [10, 20, 30, 40]}


def test_unload_one_pipeline_and_load_another_while_two_keep_serving(
    kafka_settings: KafkaSettings,
    running_worker: Callable[..., RunningWorker],
    kafka: Kafka,
) -> None:
    kept = [PIPELINES / "tfsimples.yaml", PIPELINES / "conditional.yaml"]
    worker = running_worker([MODELS, *kept, PIPELINES / "add10-batch.yaml"])
    batched = new_id("batch")
    kafka.infer("add10-batch", batched, INPUT=fp32(1, 2, 3, 4))
    before = send_kept(kafka, "before")
    assert kafka.outputs("add10-batch", [batched])[batched].arrays() == {"OUTPUT": [11, 12, 13, 14]}
    check_kept(kafka, *before)
    worker.wait_ready("pipeline", "add10-batch")

    # Requests in flight while the worker swaps add10-batch for trigger-joins.
    during = send_kept(kafka, "during")
    worker.apply(compile_specs(kafka_settings, [MODELS, *kept, PIPELINES / "trigger-joins.yaml"]))
    after = send_kept(kafka, "after")
    triggered = new_id("trigger")
    kafka.infer("trigger-joins", triggered, INPUT=fp32(1, 2, 3, 4), ok3=int32(1))
    orphan = new_id("unloaded")
    kafka.infer("add10-batch", orphan, INPUT=fp32(1, 2, 3, 4))

    check_kept(kafka, *during)
    check_kept(kafka, *after)
    assert kafka.outputs("trigger-joins", [triggered])[triggered].arrays() == {
        "OUTPUT": [11, 12, 13, 14]
    }
    worker.wait_ready("pipeline", "trigger-joins")
    assert worker.state("pipeline", "tfsimples") == "Ready"
    # The unloaded pipeline no longer answers; its topics stay (cleanTopicsOnDelete is off).
    with pytest.raises(AssertionError, match="no record"):
        kafka.outputs("add10-batch", [orphan], deadline_s=0.5)


def test_a_reload_on_the_same_topics_is_ready_again(running_worker, kafka_settings) -> None:
    # Nothing to rebalance, so no assignment callback: the worker must say Ready itself.
    specs = [MODELS / "tfsimple1.yaml", PIPELINES / "chain-base.yaml"]
    worker = running_worker(specs)
    worker.wait_ready("pipeline", "chain-base")
    worker.apply(compile_specs(kafka_settings, specs))
    assert worker.statuses[-1].state == "Ready"
    assert worker.state("pipeline", "chain-base") == "Ready"
    assert worker.state("model", "tfsimple1") == "Ready"


def batch_pipeline(window_ms: int) -> str:
    return (
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: slow-batch\n"
        f"spec:\n  steps:\n  - name: add10\n    batch:\n      size: 100\n      windowMs: {window_ms}\n"
        "  output:\n    steps:\n    - add10\n"
    )


def test_requests_held_by_a_reloaded_step_are_answered_by_its_successor(
    kafka_settings: KafkaSettings,
    running_worker: Callable[..., RunningWorker],
    kafka: Kafka,
    tmp_path,
) -> None:
    # A batch that waits ten minutes holds its requests; the reload shortens the wait.
    specs = tmp_path / "slow-batch.yaml"
    specs.write_text(batch_pipeline(600_000))
    worker = running_worker([MODELS / "add10.yaml", specs])
    worker.wait_ready("pipeline", "slow-batch")
    held = [new_id("held") for _ in range(3)]
    for rid in held:
        kafka.infer("slow-batch", rid, INPUT=fp32(1, 2, 3, 4))
    kafka.collect(kafka.topics.step_inputs("slow-batch", "add10"), held)  # the step has them

    specs.write_text(batch_pipeline(10))
    worker.apply(compile_specs(kafka_settings, [MODELS / "add10.yaml", specs]))
    answers = kafka.outputs("slow-batch", held)
    assert all(a.arrays() == {"OUTPUT": [11, 12, 13, 14]} for a in answers.values())
