"""A remote model's calls over OIP gRPC (KServe V2 `inference.GRPCInferenceService`, grpcio).

One channel per model carries every call (HTTP/2 multiplexes them; grpcio's
channels are thread-safe). Tensors go in `raw_input_contents`, as stock
clients send them; answers are read raw or typed. `oip+grpcs` uses TLS,
verified against the bundle in SSL_CERT_FILE or grpc's own roots.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, Final

import grpc
import numpy as np

from engine.codec import CodecError
from engine.codec.oip_protobuf import response_from_proto
from engine.codec.proto import grpc_predict_v2_pb2 as pb
from engine.codec.raw import raw_from_array
from engine.messages import Tensor
from engine.runtimes.hosts import RemoteAddress
from engine.runtimes.remote_model import RemoteCallFailed, RemoteOptions

SERVICE: Final = "/inference.GRPCInferenceService/"

_UNREACHABLE: Final = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})
_INPUT: Final = frozenset({grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OUT_OF_RANGE})


class GrpcTransport:
    def __init__(self, address: RemoteAddress, options: RemoteOptions) -> None:
        self._timeout_s = options.timeout_s
        self._load_timeout_s = options.load_timeout_s
        if address.tls:
            roots = None
            bundle = os.environ.get("SSL_CERT_FILE")
            if bundle:
                with open(bundle, "rb") as pem:
                    roots = pem.read()
            credentials = grpc.ssl_channel_credentials(roots)
            self._channel = grpc.secure_channel(address.authority, credentials)
        else:
            self._channel = grpc.insecure_channel(address.authority)
        self._infer = self._method("ModelInfer", pb.ModelInferRequest, pb.ModelInferResponse)
        self._metadata = self._method(
            "ModelMetadata", pb.ModelMetadataRequest, pb.ModelMetadataResponse
        )
        self._ready = self._method("ModelReady", pb.ModelReadyRequest, pb.ModelReadyResponse)

    def _method(self, name: str, request: Any, response: Any) -> Any:
        return self._channel.unary_unary(
            SERVICE + name,
            request_serializer=request.SerializeToString,
            response_deserializer=response.FromString,
        )

    def metadata(self, model: str) -> Mapping[str, Any]:
        answer = self._call(
            self._metadata, pb.ModelMetadataRequest(name=model), self._load_timeout_s
        )
        return {
            "name": answer.name,
            "platform": answer.platform,
            "inputs": [_tensor_metadata(t) for t in answer.inputs],
            "outputs": [_tensor_metadata(t) for t in answer.outputs],
        }

    def ready(self, model: str) -> tuple[bool, str]:
        try:
            answer = self._call(self._ready, pb.ModelReadyRequest(name=model), self._load_timeout_s)
        except RemoteCallFailed as failure:
            if failure.kind == "unreachable" or failure.status == "NOT_FOUND":
                raise
            return False, str(failure)  # e.g. UNAVAILABLE-like refusals naming why
        return (True, "") if answer.ready else (False, "ModelReady answers false")

    def infer(
        self, model: str, inputs: dict[str, np.ndarray], requested: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        request = pb.ModelInferRequest(model_name=model)
        try:
            for name, array in inputs.items():
                tensor = Tensor.from_array(name, array)
                request.inputs.add(name=name, datatype=tensor.datatype, shape=tensor.shape)
                request.raw_input_contents.append(
                    raw_from_array(tensor.datatype, tensor.data, tensor=name)
                )
        except CodecError as error:
            raise RemoteCallFailed("input", "not sent", str(error)) from None
        for name in requested:
            request.outputs.add(name=name)
        answer = self._call(self._infer, request)
        try:
            message = response_from_proto(answer)
        except CodecError as error:
            raise RemoteCallFailed(
                "failure", "OK", f"the answer is not an OIP inference response: {error}"
            ) from None
        return {tensor.name: tensor.data for tensor in message.tensors}

    def close(self) -> None:
        self._channel.close()

    def _call(self, method: Any, request: Any, timeout_s: float | None = None) -> Any:
        waited = timeout_s or self._timeout_s
        try:
            return method(request, timeout=waited)
        except grpc.RpcError as error:
            code = error.code() if callable(getattr(error, "code", None)) else None
            details = error.details() if callable(getattr(error, "details", None)) else ""
            if code in _UNREACHABLE:
                kind = "unreachable"
                if code == grpc.StatusCode.DEADLINE_EXCEEDED:
                    details = f"no answer within {waited} s ({details})"
            else:
                kind = "input" if code in _INPUT else "failure"
            # UNAVAILABLE: no connection (or a server shedding load): gRPC's own retryable code.
            connect = code == grpc.StatusCode.UNAVAILABLE
            raise RemoteCallFailed(
                kind, code.name if code else "error", details or "", connect=connect
            ) from None


def _tensor_metadata(tensor: Any) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
