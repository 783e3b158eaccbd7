"""A real MLServer (mlserver and mlserver-sklearn 1.7.1 from PyPI) serving the repo's iris
sklearn example: a tensorflux remote model pointing at it answers, over HTTP and gRPC, and
tensorflux's in-process sklearn runtime answers exactly what MLServer answers for the same
artifact and request (PRODUCT.md: answers match MLServer's runtime).

MLServer pins its own FastAPI, so it lives in `.venv-mlserver` (`make test-mlserver` builds
it and sets TENSORFLUX_REQUIRE_MLSERVER, so that a missing MLServer fails instead of skipping).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from bench.mlserver import MLSERVER, MLServer, serve
from engine.codec.oip_json import tensor_item
from engine.messages import Tensor
from engine.runtimes import load_model
from engine.testing import TopologyTestDriver
from engine.topology import load_files

ROOT = Path(__file__).resolve().parents[2]
IRIS = ROOT / "examples" / "models" / "iris-sklearn"
FEATURES = [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3], [5.9, 3.0, 5.1, 1.8]]


@pytest.fixture(scope="module")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MLServer]:
    if not MLSERVER.exists():
        if os.environ.get("TENSORFLUX_REQUIRE_MLSERVER"):
            pytest.fail(f"TENSORFLUX_REQUIRE_MLSERVER is set but {MLSERVER} does not exist")
        pytest.skip(
            "no MLServer venv (.venv-mlserver); `make test-mlserver` builds it and runs these"
        )
    models = tmp_path_factory.mktemp("mlserver")
    shutil.copytree(IRIS, models / "iris-sklearn")
    with serve(models, "iris-sklearn", models / "mlserver.log") as server:
        yield server


def specs(tmp_path: Path, uri: str) -> Path:
    (tmp_path / "specs.yaml").write_text(f"""
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: iris-remote
spec:
  storageUri: {uri}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: iris-via-mlserver
spec:
  steps:
  - name: iris-remote
  output:
    steps: [iris-remote]
""")
    return tmp_path


@pytest.mark.parametrize("scheme", ["oip+http", "oip+grpc"])
def test_a_remote_model_on_mlserver_answers_in_a_pipeline(
    mlserver: MLServer, tmp_path: Path, scheme: str
) -> None:
    address = mlserver.grpc if scheme == "oip+grpc" else mlserver.http
    directory = specs(tmp_path, f"{scheme}://{address}/iris-sklearn")
    with TopologyTestDriver.from_files([directory]) as driver:
        request = {"X": np.array(FEATURES, dtype=np.float32)}
        answer = driver.output("iris-via-mlserver", driver.infer("iris-via-mlserver", request))
    assert not answer.is_error, answer.error()
    assert answer.arrays()["predict"].tolist() == [[0], [1], [2], [2]]


@pytest.mark.parametrize("outputs", [None, ["predict_proba"], ["predict", "predict_proba"]])
def test_the_in_process_sklearn_runtime_answers_what_mlserver_answers(
    mlserver: MLServer, outputs: list[str] | None
) -> None:
    features = np.array(FEATURES, dtype=np.float32)
    request: dict = {
        "inputs": [tensor_item(Tensor.from_array("input-0", features))],
    }
    if outputs:
        request["outputs"] = [{"name": name} for name in outputs]
    reply = httpx.post(
        f"http://{mlserver.http}/v2/models/iris-sklearn/infer", json=request, timeout=30
    )
    assert reply.status_code == 200, reply.text
    theirs = [
        {key: item[key] for key in ("name", "datatype", "shape", "data")}
        for item in reply.json()["outputs"]
    ]
    spec = load_files([IRIS.parent / "iris-sklearn.yaml"]).models["iris-sklearn"]
    with load_model(spec) as runtime:
        answer = runtime.predict_outputs({"input-0": features}, tuple(outputs or ()))
    ours = [
        {key: item[key] for key in ("name", "datatype", "shape", "data")}
        for item in (tensor_item(Tensor.from_array(n, a)) for n, a in answer.items())
    ]
    assert ours == theirs


def test_mlserver_refusing_a_request_is_an_error_naming_it_and_its_reason(
    mlserver: MLServer,
) -> None:
    from engine.runtimes import ModelError
    from engine.topology.specs import ModelSpec

    spec = ModelSpec(name="iris", storage_uri=f"oip+http://{mlserver.http}/iris-sklearn")
    with load_model(spec) as remote:
        with pytest.raises(ModelError) as caught:
            remote.predict({"x": np.ones((1, 3), np.float32)})  # iris has 4 features
    message = str(caught.value)
    assert f"http://{mlserver.http} model 'iris-sklearn'" in message
    assert "4 features" in message, message  # scikit-learn's own words, through MLServer
