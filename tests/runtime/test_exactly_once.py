"""Exactly once on the session broker: a join pipeline answered through transactions.

On tansu (the default tier) transactions are accepted but aborted records are not
hidden, so the worker says so when it starts; the real-Kafka tier
(`make test-kafka`) runs the same test on Apache Kafka, where it holds, and
tests/kafka/test_exactly_once.py proves what only Kafka can (resume, fencing).
"""

from __future__ import annotations

import logging

from engine.runtime.settings import WorkerSettings

from .helpers import MODELS, PIPELINES, Kafka, int32, new_id

EXACTLY_ONCE = WorkerSettings(processing_guarantee="exactly-once")
SPECS = [*(MODELS / f"tfsimple{i}.yaml" for i in (1, 2, 3)), PIPELINES / "tfsimples-join.yaml"]
ROW = int32(*range(1, 17), shape=(1, 16))


def test_exactly_once_answers_every_request_of_a_join(running_worker, kafka: Kafka, caplog):
    caplog.set_level(logging.WARNING, "tensorflux.worker")
    worker = running_worker(SPECS, worker_settings=EXACTLY_ONCE)
    worker.wait_ready("pipeline", "tfsimples-join")
    assert worker.worker.delivery.exactly_once
    on_tansu = kafka.producer.list_topics(timeout=10).cluster_id.startswith("tansu")
    warned = any("does not hide aborted records" in r.getMessage() for r in caplog.records)
    assert warned == on_tansu
    ids = [new_id() for _ in range(20)]
    for rid in ids:
        kafka.infer("tfsimples-join", rid, INPUT0=ROW, INPUT1=ROW)
    answers = kafka.outputs("tfsimples-join", ids)
    assert all(not answer.is_error for answer in answers.values())
    assert answers[ids[0]].arrays()["OUTPUT0"] == [[2 * v for v in range(1, 17)]]
