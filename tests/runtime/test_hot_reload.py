"""Hot load and unload: a running worker keeps serving what stays while pipelines come and go."""

from __future__ import annotations

import time
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


def kip848_only(worker: RunningWorker) -> None:
    if worker.worker.group_protocol != "consumer":
        pytest.skip(
            "the embedded broker speaks only the classic group protocol, where every "
            "subscription change revokes everything (README 'Hot changes'); make test-kafka runs it"
        )


def test_loading_a_pipeline_takes_no_partition_from_the_others(
    kafka_settings: KafkaSettings,
    running_worker: Callable[..., RunningWorker],
    kafka: Kafka,
) -> None:
    models = [
        MODELS / f"{m}.yaml" for m in ("tfsimple1", "tfsimple2", "conditional", "add10", "mul10")
    ]
    kept = [*models, PIPELINES / "tfsimples.yaml"]
    worker = running_worker(kept)
    kip848_only(worker)
    worker.wait_ready("pipeline", "tfsimples")
    check_kept_chain(kafka, "before")

    worker.apply(compile_specs(kafka_settings, [*kept, PIPELINES / "conditional.yaml"]))
    worker.wait_ready("pipeline", "conditional-routing")
    assert worker.worker.revoked == 0  # KIP-848 added the new topics beside the old ones
    check_kept_chain(kafka, "loaded")
    routed = new_id("routed")
    kafka.infer("conditional-routing", routed, INPUT=fp32(1, 2, 3, 4), CHOICE=int32(0))
    assert kafka.outputs("conditional-routing", [routed])[routed].arrays() == {
        "OUTPUT": [10, 20, 30, 40]
    }

    worker.apply(compile_specs(kafka_settings, kept))
    check_kept_chain(kafka, "unloaded")
    # Only the unloaded pipeline's partitions were given back.
    conditional = compile_specs(kafka_settings, [*models, PIPELINES / "conditional.yaml"])
    only_its_own = conditional.pipelines["conditional-routing"].read_topics()
    assert 0 < worker.worker.revoked <= len(only_its_own) * kafka_settings.partitions


def check_kept_chain(kafka: Kafka, label: str, partitions: int | None = None) -> None:
    chain = [new_id(f"{label}-chain") for _ in range(4)]
    for rid in chain:
        kafka.infer("tfsimples", rid, INPUT0=ROW, INPUT1=ROW)
    for answer in kafka.outputs("tfsimples", chain, partitions=partitions).values():
        assert answer.arrays()["OUTPUT0"] == DOUBLED


def test_a_joining_worker_takes_only_the_partitions_that_move_to_it(
    kafka_settings: KafkaSettings,
    running_worker: Callable[..., RunningWorker],
    kafka: Kafka,
) -> None:
    settings = kafka_settings.model_copy(update={"partitions": 2})
    specs = [MODELS / "tfsimple1.yaml", MODELS / "tfsimple2.yaml", PIPELINES / "tfsimples.yaml"]
    first = running_worker(specs, settings=settings)
    kip848_only(first)
    first.wait_ready("pipeline", "tfsimples")
    assigned_alone = len(first.worker._assigned)
    second = running_worker(specs, settings=settings)
    second.wait_ready("pipeline", "tfsimples")
    deadline = time.monotonic() + 30
    while len(second.worker._assigned) < assigned_alone // 2:
        assert time.monotonic() < deadline, "the second worker never got its share"
        time.sleep(0.1)
    # The first kept one partition number of every topic, and gave only the other up.
    assert first.worker.revoked == assigned_alone // 2
    assert {p for _, p in first.worker._assigned}.isdisjoint(
        {p for _, p in second.worker._assigned}
    )  # co-partitioned: a request's records still meet on one worker
    check_kept_chain(kafka, "shared", partitions=2)
