"""The 1-step work as a user of a peer framework writes it: fastavro + onnxruntime.

No tensorflux imports (this runs in .venv-bench): the Avro schemas are read
from schemas/*.avsc, the tensors are OIP V2 records with raw little-endian
contents, and tfsimple's ONNX model runs once per request.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import fastavro
import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[2]
DTYPES = {"INT32": np.int32, "FP32": np.float32, "INT64": np.int64, "FP64": np.float64}
DATATYPES = {np.dtype(v): k for k, v in DTYPES.items()}


def schema(name: str) -> dict:
    """A parsed schema, as fastavro's docs show (`parse_schema` of the .avsc JSON)."""
    return fastavro.parse_schema(json.loads((ROOT / "schemas" / f"{name}.avsc").read_text()))


def session(model: str) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def infer(sess: ort.InferenceSession, request: dict, model_name: str) -> dict:
    """Request record (dict) -> response record (dict)."""
    feeds = {
        t["name"]: np.frombuffer(t["contents"], dtype=DTYPES[t["datatype"]]).reshape(t["shape"])
        for t in request["inputs"]
    }
    names = [o.name for o in sess.get_outputs()]
    arrays = sess.run(names, feeds)
    return {
        "id": request["id"],
        "model_name": model_name,
        "model_version": "",
        "parameters": {},
        "outputs": [
            {
                "name": name,
                "datatype": DATATYPES[array.dtype],
                "shape": list(array.shape),
                "parameters": {},
                "contents": np.ascontiguousarray(array).tobytes(),
            }
            for name, array in zip(names, arrays, strict=True)
        ],
    }


class Codec:
    """Schemaless Avro read/write with fastavro (what Quix's Avro serializers do too)."""

    def __init__(self) -> None:
        self.request = schema("InferenceRequest")
        self.response = schema("InferenceResponse")

    def decode(self, payload: bytes) -> dict:
        return fastavro.schemaless_reader(io.BytesIO(payload), self.request, None)

    def encode(self, record: dict) -> bytes:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, self.response, record)
        return out.getvalue()
