"""The HTTP gateway against a running worker: real HTTP calls, stock OIP clients."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from engine.broker import free_port
from tests.gateway.conftest import DOUBLED, ONES_TO_16, Stack, tensors, wait_ready

REPO = Path(__file__).resolve().parents[2]


def post(stack: Stack, path: str, body: object, **kwargs: object) -> httpx.Response:
    return httpx.post(f"{stack.url}{path}", json=body, timeout=30, **kwargs)


def outputs(reply: httpx.Response) -> dict[str, list]:
    return {o["name"]: o["data"] for o in reply.json()["outputs"]}


# -- inference -------------------------------------------------------------------------


def test_pipeline_infer_returns_the_chain_outputs(stack: Stack) -> None:
    reply = post(stack, "/v2/pipelines/tfsimples/infer", tensors(ONES_TO_16, ONES_TO_16))
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert body["model_name"] == "tfsimples"
    assert outputs(reply) == {"OUTPUT0": DOUBLED, "OUTPUT1": DOUBLED}
    assert {o["shape"][1] for o in body["outputs"]} == {16}
    assert reply.headers["x-request-id"] == body["id"]


def test_model_infer_goes_through_the_model_topics(stack: Stack) -> None:
    reply = post(stack, "/v2/models/tfsimple1/infer", tensors(ONES_TO_16, ONES_TO_16))
    assert reply.status_code == 200, reply.text
    assert outputs(reply) == {"OUTPUT0": DOUBLED, "OUTPUT1": [0] * 16}


def test_x_request_id_is_honoured_and_echoed(stack: Stack) -> None:
    request_id = f"req-{uuid.uuid4().hex}"
    reply = post(
        stack,
        "/v2/pipelines/tfsimples/infer",
        tensors(ONES_TO_16, ONES_TO_16),
        headers={"x-request-id": request_id},
    )
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-request-id"] == request_id
    assert reply.json()["id"] == request_id


def test_body_id_is_echoed_and_requested_outputs_filter(stack: Stack) -> None:
    body = {**tensors(ONES_TO_16, ONES_TO_16), "id": "my-id-1", "outputs": [{"name": "OUTPUT1"}]}
    reply = post(stack, "/v2/pipelines/tfsimples/infer", body)
    assert reply.status_code == 200, reply.text
    assert reply.json()["id"] == "my-id-1"
    assert outputs(reply) == {"OUTPUT1": DOUBLED}


def test_tritonclient_on_a_pipeline_and_a_model(stack: Stack) -> None:
    client = triton.InferenceServerClient(stack.url.removeprefix("http://"))
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.get_server_metadata()["name"] == "tensorflux"
    for name in ("tfsimples", "tfsimple1"):
        assert client.is_model_ready(name)
        metadata = client.get_model_metadata(name)
        assert metadata["name"] == name
        assert [i["name"] for i in metadata["inputs"]] == ["INPUT0", "INPUT1"]
        assert {i["datatype"] for i in metadata["inputs"]} == {"INT32"}
        assert [o["name"] for o in metadata["outputs"]] == ["OUTPUT0", "OUTPUT1"]

    a = np.arange(1, 17, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 3, dtype=np.int32)
    inputs = [
        triton.InferInput("INPUT0", [1, 16], "INT32"),
        triton.InferInput("INPUT1", [1, 16], "INT32"),
    ]
    inputs[0].set_data_from_numpy(a, binary_data=False)
    inputs[1].set_data_from_numpy(b, binary_data=False)
    wanted = [triton.InferRequestedOutput(n, binary_data=False) for n in ("OUTPUT0", "OUTPUT1")]

    result = client.infer("tfsimples", inputs, outputs=wanted, request_id="triton-pipeline-1")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * a)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), 2 * b)
    assert result.get_response()["id"] == "triton-pipeline-1"

    result = client.infer("tfsimple1", inputs, outputs=wanted)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)

    # Seldon Core 2's spelling picks the pipeline explicitly.
    result = client.infer("tfsimples", inputs, headers={"seldon-model": "tfsimples.pipeline"})
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), 2 * a)


def test_duplicate_output_names_come_back_both_in_order(stack: Stack) -> None:
    body = {"inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [4], "data": [1, 2, 3, 4]}]}
    reply = post(stack, "/v2/pipelines/both-outputs/infer", body)
    assert reply.status_code == 200, reply.text
    # As Seldon answers its pipeline-inputs sample: two tensors called OUTPUT.
    assert [(o["name"], o["data"]) for o in reply.json()["outputs"]] == [
        ("OUTPUT", [10.0, 20.0, 30.0, 40.0]),
        ("OUTPUT", [11.0, 12.0, 13.0, 14.0]),
    ]
    # Binary answers (the Triton extension) keep both too, in order.
    binary = {**body, "parameters": {"binary_data_output": True}}
    reply = post(stack, "/v2/pipelines/both-outputs/infer", binary)
    assert reply.status_code == 200, reply.text
    size = int(reply.headers["inference-header-content-length"])
    head = json.loads(reply.content[:size])
    assert [o["name"] for o in head["outputs"]] == ["OUTPUT", "OUTPUT"]
    tail = np.frombuffer(reply.content[size:], dtype=np.float32)
    assert tail.tolist() == [10, 20, 30, 40, 11, 12, 13, 14]
    # A request naming one input twice is still refused: a model reads inputs by name.
    twice = {"inputs": body["inputs"] * 2}
    reply = post(stack, "/v2/pipelines/both-outputs/infer", twice)
    assert reply.status_code == 400 and "'INPUT'" in reply.text, reply.text


# -- errors ----------------------------------------------------------------------------


def test_a_python_model_that_raises_gives_its_text(stack: Stack) -> None:
    body = {"inputs": [{"name": "X", "datatype": "FP32", "shape": [2], "data": [1.0, 2.0]}]}
    for path in ("/v2/pipelines/boom-pipeline/infer", "/v2/models/boom/infer"):
        reply = post(stack, path, body)
        assert reply.status_code == 500, reply.text
        assert "boom: this model always fails" in reply.json()["error"]
        assert reply.headers["x-request-id"]

    client = triton.InferenceServerClient(stack.url.removeprefix("http://"))
    x = triton.InferInput("X", [2], "FP32")
    x.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float32), binary_data=False)
    with pytest.raises(InferenceServerException, match="boom: this model always fails"):
        client.infer("boom-pipeline", [x])


def test_bad_tensors_are_400_naming_the_tensor(stack: Stack) -> None:
    # Refused by the gateway's decoder.
    bad = tensors(ONES_TO_16, ONES_TO_16)
    bad["inputs"][1]["data"] = ["x"] * 16
    reply = post(stack, "/v2/pipelines/tfsimples/infer", bad)
    assert reply.status_code == 400
    assert "INPUT1" in reply.json()["error"]
    # Refused by the model on the worker (wrong width): an error record, still 400.
    reply = post(stack, "/v2/models/tfsimple1/infer", tensors([1, 2, 3], [1, 2, 3]))
    assert reply.status_code == 400, reply.text
    assert "INPUT0" in reply.json()["error"] or "INPUT1" in reply.json()["error"]
    # A python model fed the wrong tensors: it raises, so that is the model's failure.
    reply = post(
        stack,
        "/v2/models/conditional/infer",
        {"inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [1], "data": [1.0]}]},
    )
    assert reply.status_code == 500 and "CHOICE" in reply.json()["error"]


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b'{"inputs": 3}', "inputs"),
        (b'{"inputs": []}', "no inputs"),
        (b'{"inputs": [{"name": "A", "datatype": "NOPE", "shape": [1], "data": [1]}]}', "'A'"),
        (b'{"inputs": [{"name": "A", "datatype": "INT32", "shape": [2], "data": [1]}]}', "'A'"),
    ],
)
def test_malformed_requests_are_400(stack: Stack, content: bytes, words: str) -> None:
    reply = httpx.post(f"{stack.url}/v2/pipelines/tfsimples/infer", content=content, timeout=10)
    assert reply.status_code == 400
    assert words in reply.json()["error"]


def test_unknown_names_are_404(stack: Stack) -> None:
    body = tensors(ONES_TO_16, ONES_TO_16)
    for path in ("/v2/pipelines/nope/infer", "/v2/models/nope/infer"):
        reply = post(stack, path, body)
        assert reply.status_code == 404
        assert "'nope'" in reply.json()["error"] and "tfsimples" in reply.json()["error"]
    for path in (
        "/v2/pipelines/nope",
        "/v2/models/nope",
        "/v2/models/nope/ready",
        "/v2/pipelines/nope/ready",
    ):
        assert httpx.get(f"{stack.url}{path}").status_code == 404
    # A model is not a pipeline.
    assert post(stack, "/v2/pipelines/tfsimple1/infer", body).status_code == 404


def test_timeout_is_504_with_the_request_id(stack: Stack, start_gateway) -> None:
    url = start_gateway(stack.catalog, timeout_s=0.5)
    # add10 waits for trigger ok3 and mul10 for ok1/ok2: none is sent, nothing answers.
    request_id = f"never-{uuid.uuid4().hex}"
    body = {
        "inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]
    }
    reply = httpx.post(
        f"{url}/v2/pipelines/trigger-joins/infer",
        json=body,
        headers={"x-request-id": request_id},
        timeout=10,
    )
    assert reply.status_code == 504
    assert request_id in reply.json()["error"]
    assert reply.headers["x-request-id"] == request_id


def test_callers_sharing_a_body_id_each_get_their_own_answer(stack: Stack) -> None:
    # Clients send fixed body ids ("1"); only x-request-id names a request on Kafka.
    fives = [5] * 16
    bodies = [{**tensors(ONES_TO_16, ONES_TO_16), "id": "1"}, {**tensors(fives, fives), "id": "1"}]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        replies = list(pool.map(lambda b: post(stack, "/v2/pipelines/tfsimples/infer", b), bodies))
    assert [r.status_code for r in replies] == [200, 200]
    assert [r.json()["id"] for r in replies] == ["1", "1"]
    assert outputs(replies[0])["OUTPUT0"] == DOUBLED
    assert outputs(replies[1])["OUTPUT0"] == [10] * 16
    assert replies[0].headers["x-request-id"] != replies[1].headers["x-request-id"]


def test_a_request_id_in_flight_is_refused_not_shared(stack: Stack, start_gateway) -> None:
    url = start_gateway(stack.catalog, timeout_s=3)
    request_id = f"twice-{uuid.uuid4().hex}"
    body = {
        "inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [1, 4], "data": [1, 2, 3, 4]}]
    }

    def send() -> httpx.Response:
        return httpx.post(
            f"{url}/v2/pipelines/trigger-joins/infer",  # waits for triggers that never come
            json=body,
            headers={"x-request-id": request_id},
            timeout=10,
        )

    # Both are in flight together: the first waits its 3 s out (504), so the second,
    # sent meanwhile, meets it in the gateway and is refused at once.
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        replies = [pool.submit(send), pool.submit(send)]
        statuses = sorted(reply.result().status_code for reply in replies)
    assert statuses == [409, 504]
    refused = next(r.result() for r in replies if r.result().status_code == 409)
    assert request_id in refused.json()["error"]


# -- server endpoints ------------------------------------------------------------------


def test_health_metadata_and_readiness(stack: Stack) -> None:
    get = lambda path: httpx.get(f"{stack.url}{path}", timeout=10)  # noqa: E731
    assert get("/v2/health/live").status_code == 200
    assert get("/v2/health/ready").status_code == 200
    assert get("/v2").json()["name"] == "tensorflux"
    assert get("/v2/pipelines/tfsimples/ready").json() == {"name": "tfsimples", "ready": True}
    assert get("/v2/models/tfsimple1/ready").status_code == 200
    pipeline = get("/v2/pipelines/tfsimples").json()
    assert pipeline["platform"] == "tensorflux-pipeline"
    assert [o["name"] for o in pipeline["outputs"]] == ["OUTPUT0", "OUTPUT1"]
    assert get("/v2/models/conditional").json()["platform"] == "python"


def test_openapi_is_served(stack: Stack) -> None:
    schema = httpx.get(f"{stack.url}/openapi.json", timeout=10).json()
    for path in (
        "/v2/pipelines/{name}/infer",
        "/v2/models/{name}/infer",
        "/v2/health/ready",
        "/v2/models/{name}/ready",
    ):
        assert path in schema["paths"]
    infer = schema["paths"]["/v2/pipelines/{name}/infer"]["post"]
    assert "inputs" in infer["requestBody"]["content"]["application/json"]["schema"]["properties"]
    assert httpx.get(f"{stack.url}/docs", timeout=10).status_code == 200


# -- several gateway processes ---------------------------------------------------------


def test_two_gateway_processes_answer_concurrent_callers(stack: Stack) -> None:
    urls, processes = [], []
    try:
        for _ in range(2):
            port = free_port()
            command = [sys.executable, "-m", "engine.gateway", "--port", str(port)]
            command += ["--bootstrap", stack.settings.bootstrap]
            command += ["--namespace", stack.settings.namespace]
            for directory in stack.spec_dirs:
                command += ["-f", directory]
            processes.append(
                subprocess.Popen(
                    command,
                    cwd=REPO,
                    env={**os.environ, "PYTHONPATH": str(REPO)},
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                )
            )
            urls.append(f"http://127.0.0.1:{port}")
        for url in urls:
            wait_ready(url)

        def call(index: int) -> tuple[int, httpx.Response]:
            a = [index + i for i in range(16)]
            b = [index * 2] * 16
            reply = httpx.post(
                f"{urls[index % 2]}/v2/pipelines/tfsimples/infer",
                json=tensors(a, b),
                headers={"x-request-id": f"two-gw-{index}-{uuid.uuid4().hex[:6]}"},
                timeout=30,
            )
            return index, reply

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            results = list(pool.map(call, range(60)))
        for index, reply in results:
            assert reply.status_code == 200, reply.text
            got = outputs(reply)
            assert got["OUTPUT0"] == [2 * (index + i) for i in range(16)]
            assert got["OUTPUT1"] == [4 * index] * 16
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
