"""OpenAPI documentation of the OIP bodies (served at /docs; never used to parse:
the codec does)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field

from engine.dtypes import DATATYPES


class TensorDoc(BaseModel):
    name: str
    shape: list[Annotated[int, Field(ge=0)]]
    datatype: str = Field(
        description="BOOL, UINT8..64, INT8..64, FP16/32/64 or BYTES",
        json_schema_extra={"enum": sorted({*DATATYPES, "BYTES"})},
    )
    parameters: dict[str, Any] | None = None
    data: list[Any] = Field(description="flat or nested row-major elements")


class RequestedOutputDoc(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequestDoc(BaseModel):
    id: str | None = Field(None, description="request id (else x-request-id, else generated)")
    parameters: dict[str, Any] | None = None
    inputs: list[TensorDoc]
    outputs: list[RequestedOutputDoc] | None = None


class InferenceResponseDoc(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str
    parameters: dict[str, Any] | None = None
    outputs: list[TensorDoc]


class ErrorDoc(BaseModel):
    error: str


class MetadataDoc(BaseModel):
    name: str
    versions: list[str] = []
    platform: str
    inputs: list[dict[str, Any]]
    outputs: list[dict[str, Any]]


def _inlined(model: type[BaseModel]) -> dict[str, Any]:
    """`model`'s JSON schema with its `$defs` written in place: pydantic's `#/$defs/...`
    references would point at the OpenAPI document's root, where nothing is (schemathesis
    found the request body unreadable so)."""
    schema = model.model_json_schema()
    definitions = schema.pop("$defs", {})

    def inline(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return inline(definitions[ref.removeprefix("#/$defs/")])
            return {key: inline(value) for key, value in node.items()}
        if isinstance(node, list):
            return [inline(value) for value in node]
        return node

    return inline(schema)


EXAMPLE_REQUEST = {
    "inputs": [
        {"name": name, "datatype": "INT32", "shape": [1, 16], "data": list(range(1, 17))}
        for name in ("INPUT0", "INPUT1")
    ]
}
"""Two INT32 [1, 16] tensors, what examples/ tfsimple1 (and the tfsimples pipeline) takes."""

INFER_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": _inlined(InferenceRequestDoc),
                "example": EXAMPLE_REQUEST,
            }
        },
    }
}
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": InferenceResponseDoc, "description": "the outputs"},
    400: {"model": ErrorDoc, "description": "malformed request or bad tensor (named)"},
    404: {"model": ErrorDoc, "description": "no such pipeline or model"},
    409: {"model": ErrorDoc, "description": "a request with this x-request-id is in flight"},
    413: {"model": ErrorDoc, "description": "the body is over --max-request-bytes"},
    415: {"model": ErrorDoc, "description": "a Content-Encoding other than gzip"},
    500: {"model": ErrorDoc, "description": "the model failed (its reason)"},
    503: {"model": ErrorDoc, "description": "it failed to load; Kafka is unreachable; stopping"},
    504: {"model": ErrorDoc, "description": "no reply in time (names the request id)"},
}
METADATA_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": MetadataDoc},
    404: {"model": ErrorDoc},
}
READY_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorDoc},
    503: {"model": ErrorDoc},
}
SERVER_READY_RESPONSES: dict[int | str, dict[str, Any]] = {503: {"model": ErrorDoc}}
