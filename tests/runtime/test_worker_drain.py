"""A worker stopped with a grace (issue 18, `worker --shutdown-grace`) finishes the
requests already inside a pipeline: a two-step request whose first step was running
when the stop came is answered, and the step topic's offsets are committed."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from engine.admin import watermark_offsets
from engine.config import KafkaSettings
from engine.runtime.worker import Worker, group_id
from tests.gateway.conftest import ECHO_MODEL

from .helpers import DEADLINE_S, Kafka, compile_specs, fp32, new_id

pytestmark = pytest.mark.broker

NAP_MODEL = """
from pathlib import Path
import time

import numpy as np


class Model:
    def predict(self, inputs):
        Path(__file__).with_name("started").touch()
        time.sleep(float(np.asarray(inputs["SECONDS"]).ravel()[0]))
        return dict(inputs)
"""

SPECS = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: nap
spec:
  storageUri: ./nap
  requirements: [python]
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: echo
spec:
  storageUri: ./echo
  requirements: [python]
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: nap-then-echo
spec:
  steps:
  - name: nap
  - name: echo
    inputs: [nap]
  output:
    steps: [echo]
"""


def test_a_stopped_worker_finishes_the_requests_inside_its_pipelines(
    kafka_settings: KafkaSettings, kafka: Kafka, tmp_path: Path
) -> None:
    for name, code in (("nap", NAP_MODEL), ("echo", ECHO_MODEL)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "model.py").write_text(code)
    (tmp_path / "specs.yaml").write_text(SPECS)
    worker = Worker(kafka_settings)
    worker.apply(compile_specs(kafka_settings, [tmp_path]))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), kwargs={"grace_s": 30.0})
    thread.start()
    try:
        request = new_id("drain")
        kafka.infer("nap-then-echo", request, SECONDS=fp32(1.0))
        deadline = time.monotonic() + DEADLINE_S
        while not (tmp_path / "nap" / "started").exists():  # step one runs: stop now
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.02)
        stop.set()
        thread.join(DEADLINE_S)
        assert not thread.is_alive()
    finally:
        stop.set()
        thread.join(DEADLINE_S)
    # Step two ran after the stop: the request got its answer.
    answer = kafka.outputs("nap-then-echo", [request])[request]
    assert not answer.is_error and answer.arrays() == {"SECONDS": [1.0]}
    # ... and what the worker consumed inside the pipeline is committed.
    step_topic = kafka_settings.topics().step_outputs("nap-then-echo", "nap")
    consumer = Consumer(kafka_settings.consumer_config(group_id(kafka_settings)))
    try:
        (committed,) = consumer.committed([TopicPartition(step_topic, 0)], timeout=10)
        _, produced = watermark_offsets(consumer, TopicPartition(step_topic, 0))
    finally:
        consumer.close()
    assert committed.offset == produced
