"""The MLServer runtimes in a running worker, through the embedded broker: the iris
example pipeline, a direct model call asking for `predict_proba`, a bad request as an
error record, and a model whose library is missing failing alone."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import joblib
import numpy as np
import pytest

from engine.config import KafkaSettings
from engine.messages import InferenceMessage
from tests.runtime.helpers import (
    MODELS,
    PIPELINES,
    Kafka,
    RunningWorker,
    compile_specs,
    new_id,
    tensors,
)
from tests.runtimes import mlserver_artifacts as art

ROWS = art.IRIS_ROWS

NEEDS_LIGHTGBM = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: needs-lightgbm
spec:
  storageUri: {path}
  requirements:
  - lightgbm
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: uses-lightgbm
spec:
  steps:
  - name: needs-lightgbm
  output:
    steps:
    - needs-lightgbm
"""


@pytest.fixture(scope="module")
def settings(module_kafka_settings: KafkaSettings) -> KafkaSettings:
    return module_kafka_settings


@pytest.fixture(scope="module")
def worker(
    settings: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    extra: Path = tmp_path_factory.mktemp("lightgbm")
    art.lightgbm_booster(extra / "booster")
    (extra / "specs.yaml").write_text(NEEDS_LIGHTGBM.format(path=extra / "booster"))
    specs = [MODELS, PIPELINES / "iris.yaml", extra / "specs.yaml"]
    with pytest.MonkeyPatch.context() as patch:
        # What `import lightgbm` sees on a machine without the extra.
        patch.setitem(sys.modules, "lightgbm", None)
        running = RunningWorker(settings, compile_specs(settings, specs))
        running.wait_ready("pipeline", "iris")
    yield running
    running.stop()


@pytest.fixture
def kafka(settings: KafkaSettings, worker: RunningWorker) -> Iterator[Kafka]:
    client = Kafka(settings)
    yield client
    client.close()
    worker.check_alive()


def test_iris_pipeline_answers_with_both_runtimes(kafka: Kafka) -> None:
    rid = new_id()
    kafka.infer("iris", rid, INPUT=ROWS)
    answer = kafka.outputs("iris", [rid])[rid].response()
    by_name = {t.name: t for t in answer.tensors}
    assert sorted(by_name) == ["SKLEARN", "XGBOOST"]
    for tensor in by_name.values():
        assert (tensor.datatype, tensor.shape) == ("INT64", (3, 1))
        assert tensor.data.ravel().tolist() == [0, 1, 2]


def test_direct_call_asking_for_predict_proba(kafka: Kafka) -> None:
    topics = kafka.topics
    proba_id, plain_id = new_id("proba"), new_id("plain")
    asking = InferenceMessage(
        proba_id, tensors(INPUT=ROWS), "request", requested_outputs=("predict_proba",)
    )
    kafka.send(topics.model_inputs("iris-sklearn"), proba_id, asking)
    kafka.send(
        topics.model_inputs("iris-sklearn"),
        plain_id,
        InferenceMessage(plain_id, tensors(INPUT=ROWS), "request"),
    )
    answers = kafka.collect(topics.model_outputs("iris-sklearn"), [proba_id, plain_id])
    proba = answers[proba_id].response().tensors
    assert [(t.name, t.datatype, t.shape) for t in proba] == [("predict_proba", "FP32", (3, 3))]
    fitted = joblib.load(MODELS / "iris-sklearn" / "model.joblib")
    np.testing.assert_array_equal(proba[0].data, fitted.predict_proba(ROWS))
    assert [t.name for t in answers[plain_id].response().tensors] == ["predict"]


def test_a_bad_request_is_an_error_record_and_the_stream_goes_on(kafka: Kafka) -> None:
    bad, good = new_id("bad"), new_id("good")
    kafka.infer("iris", bad, INPUT=ROWS[:, :3])  # three features, the model wants four
    kafka.infer("iris", good, INPUT=ROWS)
    answers = kafka.outputs("iris", [bad, good])
    error = answers[bad].error()
    assert error.step in ("iris-sklearn", "iris-xgboost") and error.stage == "model"
    assert error.step in error.reason and "feature" in error.reason.lower()  # either model
    assert answers[good].arrays()["SKLEARN"] == [[0], [1], [2]]


def test_a_model_whose_library_is_missing_fails_alone(worker: RunningWorker) -> None:
    failed = [s for s in worker.statuses if s.kind == "model" and s.name == "needs-lightgbm"]
    assert failed and failed[-1].state == "Failed"
    assert "pip install 'tensorflux[lightgbm]'" in failed[-1].reason
    assert worker.state("pipeline", "uses-lightgbm") == "Failed"
    assert worker.state("model", "iris-sklearn") == "Ready"
