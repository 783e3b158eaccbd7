"""OpenAPI documentation of the OIP bodies (served at /docs; never used to parse:
the codec does)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class TensorDoc(BaseModel):
    name: str
    shape: list[int]
    datatype: str = Field(description="BOOL, UINT8..64, INT8..64, FP16/32/64 or BYTES")
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


INFER_OPENAPI = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": InferenceRequestDoc.model_json_schema()}},
    }
}
INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"model": InferenceResponseDoc, "description": "the outputs"},
    400: {"model": ErrorDoc, "description": "malformed request or bad tensor (named)"},
    404: {"model": ErrorDoc, "description": "no such pipeline or model"},
    500: {"model": ErrorDoc, "description": "the model failed (its reason)"},
    503: {"model": ErrorDoc, "description": "it failed to load"},
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
