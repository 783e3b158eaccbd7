"""`tensorflux pipeline|model infer --grpc`: one request over the OIP gRPC gateway.

A pipeline is addressed the Seldon way (`NAME.pipeline`), since OIP gRPC knows
only models; tensors travel in raw_input_contents, as stock clients send them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine import headers as h
from engine.cli.errors import BadRequest, GatewayUnreachable, Refused

if TYPE_CHECKING:
    from engine.topology.specs import ResourceType

DEFAULT_GRPC_ADDRESS = "127.0.0.1:9500"
GRPC_ADDRESS_VARIABLE = "TENSORFLUX_GATEWAY_GRPC"


def infer_grpc(
    address: str,
    kind: ResourceType,
    name: str,
    document: dict[str, Any],
    request_id: str,
    timeout_s: float,
    *,
    token: str | None = None,
    ca_cert: str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The response document and the response's metadata (initial and trailing)."""
    import grpc

    from engine.codec import CodecError, message_from_document, message_to_document
    from engine.codec.oip_protobuf import parameters_to_proto, response_from_proto
    from engine.codec.proto import grpc_predict_v2_pb2 as pb
    from engine.codec.raw import raw_from_array

    try:
        message = message_from_document(document, "request", default_id=request_id)
    except CodecError as error:
        raise BadRequest(error) from None
    request = pb.ModelInferRequest(
        model_name=f"{name}.pipeline" if kind == "pipeline" else name,
        id=document["id"] if isinstance(document.get("id"), str) else "",
    )
    parameters_to_proto(message.parameters, request.parameters)
    for tensor in message.tensors:
        item = request.inputs.add(name=tensor.name, datatype=tensor.datatype, shape=tensor.shape)
        parameters_to_proto(tensor.parameters, item.parameters)
        request.raw_input_contents.append(
            raw_from_array(tensor.datatype, tensor.data, tensor=tensor.name)
        )
    for output in message.requested_outputs:
        request.outputs.add(name=output)
    metadata = [*(headers or {}).items(), (h.REQUEST_ID, request_id)]
    if token:
        metadata.append(("authorization", f"Bearer {token}"))
    if ca_cert:
        with open(ca_cert, "rb") as pem:
            channel = grpc.secure_channel(address, grpc.ssl_channel_credentials(pem.read()))
    else:
        channel = grpc.insecure_channel(address)
    method = "/inference.GRPCInferenceService/ModelInfer"
    call = channel.unary_unary(
        method,
        request_serializer=pb.ModelInferRequest.SerializeToString,
        response_deserializer=pb.ModelInferResponse.FromString,
    )
    try:
        with channel:
            response, outcome = call.with_call(request, timeout=timeout_s + 5, metadata=metadata)
    except grpc.RpcError as failure:
        if failure.code() == grpc.StatusCode.UNAVAILABLE and "connect" in (failure.details() or ""):
            raise GatewayUnreachable(address, failure.details()) from None
        raise Refused(kind, name, failure.code().name, failure.details()) from None
    result = message_to_document(response_from_proto(response))
    result["model_name"] = name
    answered = [*outcome.initial_metadata(), *outcome.trailing_metadata()]
    return result, {key: str(value) for key, value in answered}
