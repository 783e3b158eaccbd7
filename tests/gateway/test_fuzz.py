"""The gateway fuzzed through real HTTP (issue 18): malformed bodies of every kind get a
4xx with an OIP error body, never a 500, and the gateway goes on answering."""

from __future__ import annotations

import json

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.gateway.conftest import DOUBLED, ONES_TO_16, Stack, tensors

FUZZ = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
datatypes = st.sampled_from(
    ["INT32", "FP32", "BYTES", "BOOL", "UINT8", "FP16", "INT64", "NOPE", ""]
)
tensor = st.fixed_dictionaries(
    {
        "name": st.sampled_from(["INPUT0", "INPUT1", "X", ""]),
        "datatype": datatypes,
        "shape": st.lists(st.integers(-2, 20), max_size=3),
        "data": json_values,
    }
)
near_requests = st.fixed_dictionaries({"inputs": st.lists(tensor, max_size=3)}, optional={"id": json_values, "parameters": json_values, "outputs": json_values})  # fmt: skip


@pytest.fixture(scope="module")
def client(stack: Stack):
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        yield http


def _refused_cleanly(reply: httpx.Response) -> None:
    assert reply.status_code < 500, reply.text
    if reply.status_code != 200:
        assert isinstance(reply.json()["error"], str)


@FUZZ
@given(body=st.binary(max_size=300))
def test_arbitrary_bytes(client: httpx.Client, body: bytes) -> None:
    for content_type in ("application/json", "application/octet-stream"):
        reply = client.post("/v2/pipelines/tfsimples/infer", content=body, headers={"content-type": content_type})  # fmt: skip
        _refused_cleanly(reply)


@FUZZ
@given(document=json_values)
def test_arbitrary_json(client: httpx.Client, document: object) -> None:
    _refused_cleanly(client.post("/v2/pipelines/tfsimples/infer", content=json.dumps(document)))


@FUZZ
@given(document=near_requests)
def test_near_valid_requests(client: httpx.Client, document: dict) -> None:
    _refused_cleanly(client.post("/v2/models/tfsimple1/infer", content=json.dumps(document)))


@FUZZ
@given(
    header=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12),
    body=st.binary(max_size=200),
)
def test_binary_extension_headers(client: httpx.Client, header: str, body: bytes) -> None:
    headers = {"inference-header-content-length": header}
    _refused_cleanly(client.post("/v2/pipelines/tfsimples/infer", content=body, headers=headers))


def test_the_gateway_still_answers_after_the_fuzzing(client: httpx.Client) -> None:
    reply = client.post("/v2/pipelines/tfsimples/infer", json=tensors(ONES_TO_16, ONES_TO_16))
    assert reply.status_code == 200 and reply.json()["outputs"][0]["data"] == DOUBLED
