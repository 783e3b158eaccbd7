"""OIP V2 REST JSON: the specification's own examples, flat and nested data,
parameters, and what the JSON codec refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.codec import (
    CodecError,
    ContentsMismatch,
    InvalidJson,
    InvalidShape,
    UnknownDatatype,
    decode_json,
    encode_json,
)
from engine.messages import InferenceMessage, Tensor

# The inference request example of the Open Inference Protocol V2 REST
# specification ("Inference Request Examples"), verbatim. Note the spec's own
# slip: input1 declares shape [3] but carries one element.
SPEC_REQUEST = """
{
  "id" : "42",
  "inputs" : [
    {
      "name" : "input0",
      "shape" : [ 2, 2 ],
      "datatype" : "UINT32",
      "data" : [ 1, 2, 3, 4 ]
    },
    {
      "name" : "input1",
      "shape" : [ 3 ],
      "datatype" : "BOOL",
      "data" : [ true ]
    }
  ],
  "outputs" : [
    {
      "name" : "output0"
    }
  ]
}
"""

# The response example, verbatim, including the comma the spec omits after "42".
SPEC_RESPONSE = """
{
  "id" : "42"
  "outputs" : [
    {
      "name" : "output0",
      "shape" : [ 3, 2 ],
      "datatype"  : "FP32",
      "data" : [ 1.0, 1.1, 2.0, 2.1, 3.0, 3.1 ]
    }
  ]
}
"""


def test_spec_request_example_decodes_once_its_shape_matches_its_data():
    with pytest.raises(
        ContentsMismatch, match="input1.*shape \\[3\\] needs 3 elements, 'data' holds 1"
    ):
        decode_json(SPEC_REQUEST)

    message = decode_json(SPEC_REQUEST.replace('"shape" : [ 3 ]', '"shape" : [ 1 ]'))

    assert message.id == "42" and message.kind == "request"
    assert message.requested_outputs == ("output0",)
    input0 = message.tensor("input0")
    assert input0.datatype == "UINT32" and input0.data.dtype == np.dtype("<u4")
    np.testing.assert_array_equal(input0.data, [[1, 2], [3, 4]])
    assert message.tensor("input1").data.tolist() == [True]


def test_spec_response_example_decodes_once_its_missing_comma_is_added():
    with pytest.raises(InvalidJson, match="not JSON"):
        decode_json(SPEC_RESPONSE, "response")

    message = decode_json(SPEC_RESPONSE.replace('"42"\n', '"42",\n'), "response")

    output = message.tensor("output0")
    assert output.shape == (3, 2) and output.data.dtype == np.float32
    np.testing.assert_array_equal(
        output.data, np.array([1.0, 1.1, 2.0, 2.1, 3.0, 3.1], "<f4").reshape(3, 2)
    )


def test_spec_nested_and_flat_data_are_the_same_tensor():
    # The spec's "Tensor Data" section: [[1, 2], [4, 5]] or flat [1, 2, 4, 5].
    def request(data):
        return json.dumps(
            {"inputs": [{"name": "m", "shape": [2, 2], "datatype": "INT32", "data": data}]}
        )

    nested = decode_json(request([[1, 2], [4, 5]]), default_id="a").tensor("m")
    flat = decode_json(request([1, 2, 4, 5]), default_id="a").tensor("m")
    assert nested == flat
    np.testing.assert_array_equal(nested.data, [[1, 2], [4, 5]])


def test_parameters_bytes_and_ids():
    document = {
        "parameters": {"content_type": "pd", "headers": {"x": 1}},
        "inputs": [
            {
                "name": "text",
                "shape": [2],
                "datatype": "BYTES",
                "parameters": {"content_type": "str"},
                "data": ["hello", "wörld"],
            },
            {
                "name": "raw",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"content_type": "base64"},
                "data": ["AP8="],
            },
            {"name": "f", "shape": [3], "datatype": "FP64", "data": ["NaN", "-Infinity", 1]},
        ],
    }
    message = decode_json(json.dumps(document), default_id="from-header")
    assert message.id == "from-header"
    assert message.parameters == {"content_type": "pd", "headers": {"x": 1}}
    assert message.tensor("text").data.tolist() == [b"hello", "wörld".encode()]
    assert dict(message.tensor("text").parameters) == {"content_type": "str"}
    assert message.tensor("raw").data.tolist() == [b"\x00\xff"]
    assert not message.tensor("raw").parameters  # base64 is how it travelled, not what it is
    f = message.tensor("f").data
    assert np.isnan(f[0]) and f[1] == -np.inf and f[2] == 1.0
    assert decode_json(json.dumps({"inputs": []})).id  # a fresh uuid when nothing names it


def test_encoding_writes_oip_json():
    message = InferenceMessage(
        "7",
        (
            Tensor.from_array("y", np.array([[0.5], [2.0]], dtype=np.float32)),
            Tensor.from_array("label", np.array(["cat", "dog"])),
            Tensor.from_array("blob", np.array([b"\xff"], dtype=object)),
        ),
        "response",
        model_name="clf",
        model_version="3",
    )
    assert json.loads(encode_json(message)) == {
        "id": "7",
        "model_name": "clf",
        "model_version": "3",
        "outputs": [
            {"name": "y", "shape": [2, 1], "datatype": "FP32", "data": [0.5, 2.0]},
            {"name": "label", "shape": [2], "datatype": "BYTES", "data": ["cat", "dog"]},
            {
                "name": "blob",
                "shape": [1],
                "datatype": "BYTES",
                "parameters": {"content_type": "base64"},
                "data": ["/w=="],
            },
        ],
    }


@pytest.mark.parametrize(
    ("tensor", "error", "match"),
    [
        (
            {"datatype": "FLOAT32", "shape": [1], "data": [1]},
            UnknownDatatype,
            "unknown datatype 'FLOAT32'",
        ),
        (
            {"datatype": "INT32", "shape": [2], "data": [1, 2, 3]},
            ContentsMismatch,
            "needs 2 elements",
        ),
        (
            {"datatype": "INT32", "shape": [1], "data": [1.5]},
            ContentsMismatch,
            "INT32 data holds 1.5",
        ),
        ({"datatype": "UINT8", "shape": [1], "data": [256]}, ContentsMismatch, "from 0 to 255"),
        ({"datatype": "BOOL", "shape": [1], "data": [1]}, ContentsMismatch, "BOOL data holds 1"),
        (
            {"datatype": "BYTES", "shape": [1], "data": [1]},
            ContentsMismatch,
            "JSON BYTES are strings",
        ),
        ({"datatype": "INT8", "shape": [-1], "data": []}, InvalidShape, "negative"),
        ({"datatype": "INT8", "shape": "2", "data": [1, 2]}, InvalidShape, "list of integers"),
    ],
)
def test_bad_tensors_raise_codec_errors_naming_the_tensor(tensor, error, match):
    payload = json.dumps({"id": "1", "inputs": [{"name": "bad", **tensor}]})
    with pytest.raises(error, match=match) as raised:
        decode_json(payload)
    assert raised.value.tensor == "bad"
    assert "'bad'" in str(raised.value)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe",
        "[1, 2]",
        '{"inputs": 3}',
        '{"id": 5, "inputs": []}',
        '{"inputs": [{"shape": []}]}',
    ],
)
def test_malformed_documents_raise_invalid_json(payload):
    with pytest.raises(InvalidJson):
        decode_json(payload)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=12,
)
tensor_like = st.fixed_dictionaries(
    {},
    optional={
        "name": st.text(max_size=3) | json_values,
        "datatype": st.sampled_from(["INT8", "UINT64", "FP16", "BOOL", "BYTES", "X"]) | json_values,
        "shape": st.lists(st.integers(-1, 3) | st.just(2**62), max_size=3) | json_values,
        "parameters": json_values,
        "data": json_values,
    },
)


@settings(max_examples=300)
@given(
    st.one_of(
        st.binary(max_size=60),
        json_values.map(json.dumps),
        st.fixed_dictionaries(
            {"inputs": st.lists(tensor_like, max_size=3)},
            optional={"id": json_values, "outputs": json_values, "parameters": json_values},
        ).map(json.dumps),
    ),
    st.sampled_from(["request", "response"]),
)
def test_arbitrary_payloads_raise_only_codec_errors(payload, kind):
    try:
        decode_json(payload, kind)
    except CodecError:
        pass


def test_deep_nesting_is_a_codec_error():
    with pytest.raises(InvalidJson):
        decode_json("[" * 100_000 + "]" * 100_000)
