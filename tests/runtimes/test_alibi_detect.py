"""The alibi-detect runtime answers as MLServer's: drift detectors `is_drift`, `distance`,
`p_val`, `threshold`; outlier detectors `is_outlier`, `instance_score`; a pipeline step
with `batch.size: 20` tests its requests 20 at a time, through the embedded broker.

alibi-detect 0.13 needs numpy<2, so these run in .venv-alibi (`make test-alibi`, which
sets TENSORFLUX_REQUIRE_ALIBI so that a missing alibi-detect fails instead of skipping).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

if not os.environ.get("TENSORFLUX_REQUIRE_ALIBI"):
    pytest.importorskip(
        "alibi_detect",
        reason="alibi-detect needs numpy<2 and is not in this venv; `make test-alibi` runs these",
    )

from alibi_detect.cd import KSDrift  # noqa: E402
from alibi_detect.saving import save_detector  # noqa: E402

from engine.config import KafkaSettings  # noqa: E402
from engine.operators.model_call import call_model  # noqa: E402
from engine.runtimes import load_model  # noqa: E402
from engine.runtimes.alibi_detect_model import AlibiDetectModel  # noqa: E402
from tests.runtime.helpers import (  # noqa: E402
    EXAMPLES,
    MODELS,
    Kafka,
    RunningWorker,
    compile_specs,
    new_id,
)
from tests.runtimes import mlserver_artifacts as art  # noqa: E402
from tests.runtimes.conftest import spec  # noqa: E402

DRIFT_EXAMPLE = EXAMPLES.parent / "examples-drift"


def _detector(directory: Path) -> KSDrift:
    reference, _ = art.iris()
    detector = KSDrift(reference, p_val=0.05)
    save_detector(detector, str(directory))
    return detector


def _flowers(drifted: bool = False) -> np.ndarray:
    rows = art.iris()[0][::7][:20]
    return rows * 1.5 if drifted else rows


def test_drift_outputs_as_mlserver_names_and_shapes_them(tmp_path: Path) -> None:
    detector = _detector(tmp_path / "cd")
    model = load_model(spec(tmp_path / "cd", "mlserver", "alibi-detect", name="drift"))
    assert isinstance(model, AlibiDetectModel) and model.shares_batch_answer
    for drifted in (False, True):
        out = model.predict({"INPUT": _flowers(drifted)})
        expected = detector.predict(_flowers(drifted))["data"]
        assert list(out) == ["is_drift", "distance", "p_val", "threshold"]
        assert (out["is_drift"].dtype, out["is_drift"].shape) == (np.int64, (1, 1))
        assert out["is_drift"].tolist() == [[int(drifted)]] == [[expected["is_drift"]]]
        assert out["p_val"].shape == out["distance"].shape == (1, 4)
        np.testing.assert_array_equal(out["p_val"][0], expected["p_val"])
        assert (out["threshold"].dtype, out["threshold"].tolist()) == (np.float64, [[0.0125]])


def test_inferred_from_a_saved_detector_directory(tmp_path: Path) -> None:
    _detector(tmp_path / "cd")
    assert isinstance(load_model(spec(tmp_path / "cd")), AlibiDetectModel)


def test_outlier_outputs(tmp_path: Path) -> None:
    from alibi_detect.od import IForest

    # Saving an outlier detector needs TensorFlow (alibi-detect's legacy format), too big
    # for the test venv: the runtime is loaded from a drift directory and handed a fitted
    # IForest, so what is checked is how outlier answers are encoded.
    _detector(tmp_path / "cd")
    model = load_model(spec(tmp_path / "cd", "alibi-detect"))
    detector = IForest(threshold=0.0, n_estimators=10)
    detector.fit(art.iris()[0])
    model._detector = detector
    out = model.predict({"INPUT": art.IRIS_ROWS})
    assert sorted(out) == ["instance_score", "is_outlier"]  # feature_score is None: left out
    assert out["is_outlier"].shape == out["instance_score"].shape == (1, 3)
    np.testing.assert_array_equal(
        out["instance_score"][0], detector.predict(art.IRIS_ROWS)["data"]["instance_score"]
    )


def test_mlserver_batch_size_and_predict_parameters(tmp_path: Path) -> None:
    _detector(tmp_path)
    art.settings(
        tmp_path,
        implementation="mlserver_alibi_detect.AlibiDetectRuntime",
        parameters={"extra": {"batch_size": 2, "predict_parameters": {"return_distance": False}}},
    )
    model = load_model(spec(tmp_path, name="drift"))
    flowers = _flowers()
    assert model.predict({"INPUT": flowers[:10]}) == {}  # MLServer: nothing until the batch is full
    out = model.predict({"INPUT": flowers[10:]})
    assert "distance" not in out and out["is_drift"].tolist() == [[0]]  # tested on all 20 rows


def test_a_step_batch_shares_one_detection(tmp_path: Path) -> None:
    _detector(tmp_path)
    model = load_model(spec(tmp_path, "alibi-detect"))
    requests = [{"INPUT": row.reshape(1, 4)} for row in _flowers(drifted=True)]
    together = call_model(model, requests, whole_batch=True)
    assert all(answer["is_drift"].tolist() == [[1]] for answer in together)
    assert len({id(answer) for answer in together}) == 1
    alone = call_model(model, requests[:2])  # no batch: each request is its own detection
    assert alone[0] is not alone[1]


@pytest.fixture(scope="module")
def settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(
        bootstrap=kafka_bootstrap, namespace=f"t{uuid.uuid4().hex[:12]}", partitions=1
    )


@pytest.fixture(scope="module")
def worker(settings: KafkaSettings) -> Iterator[RunningWorker]:
    specs = [MODELS / "iris-sklearn.yaml", DRIFT_EXAMPLE]
    running = RunningWorker(settings, compile_specs(settings, specs))
    running.wait_ready("pipeline", "iris-monitored")
    yield running
    running.stop()


def _requests(name: str) -> list[np.ndarray]:
    lines = (DRIFT_EXAMPLE / "requests" / name).read_text().splitlines()
    return [
        np.array(json.loads(line)["inputs"][0]["data"], np.float32).reshape(1, 4) for line in lines
    ]


@pytest.mark.parametrize(("requests", "is_drift"), [("normal.jsonl", 0), ("drifted.jsonl", 1)])
def test_the_drift_example_through_kafka(
    settings: KafkaSettings, worker: RunningWorker, requests: str, is_drift: int
) -> None:
    kafka = Kafka(settings)
    try:
        ids = [new_id(requests.split(".")[0]) for _ in range(20)]
        for rid, rows in zip(ids, _requests(requests), strict=True):
            kafka.infer("iris-monitored", rid, INPUT=rows)
        answers = kafka.outputs("iris-monitored", ids)
        assert all(len(answers[rid].arrays()["predict"]) == 1 for rid in ids)
        topic = kafka.topics.step_outputs("iris-monitored", "iris-drift")
        drift = kafka.collect(topic, ids)
        assert {str(drift[rid].arrays()["is_drift"]) for rid in ids} == {str([[is_drift]])}
    finally:
        kafka.close()
    worker.check_alive()
