"""The one table from failures to HTTP statuses (and so gRPC codes), and the error answer.

Core errors carry no HTTP codes (STYLE 7): the gateway decides here, once.
A step's error record is answered by its kind: bad input is the caller's
fault (400), a model failure or an internal error the server's (500), a
step's own timeout 504.
"""

from __future__ import annotations

from typing import Final

from fastapi.responses import JSONResponse

from engine import headers as h
from engine.codec import CodecError
from engine.gateway.errors import (
    BadRequest,
    BrokerUnavailable,
    DeliveryFailed,
    NotReady,
    ReplyTimeout,
    RequestInFlight,
    RequestTooLarge,
    ShuttingDown,
    StepFailed,
    UnknownName,
    UnsupportedEncoding,
)
from engine.gateway.experiments import ROUTE_HEADER
from engine.messages import ErrorKind

STATUS_OF: Final[dict[type[Exception], int]] = {
    BadRequest: 400,
    CodecError: 400,
    UnknownName: 404,
    RequestInFlight: 409,
    RequestTooLarge: 413,
    UnsupportedEncoding: 415,
    DeliveryFailed: 502,
    NotReady: 503,
    ShuttingDown: 503,
    BrokerUnavailable: 503,
    ReplyTimeout: 504,
}
"""By class; a subclass answers as its nearest listed ancestor, anything else 500."""

STATUS_OF_ERROR_KIND: Final[dict[ErrorKind, int]] = {
    "bad-input": 400,
    "model-failure": 500,
    "internal": 500,
    "timeout": 504,
}
"""A StepFailed answers by its error record's kind."""


GRPC_CODE_OF_STATUS: Final[dict[int, str]] = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    413: "RESOURCE_EXHAUSTED",
    415: "INVALID_ARGUMENT",
    500: "INTERNAL",
    502: "UNAVAILABLE",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
"""The gRPC gateway answers a failure with the code of its HTTP status (names of
`grpc.StatusCode`), so both protocols decide by the tables above."""


def grpc_code_of(failure: Exception) -> str:
    return GRPC_CODE_OF_STATUS.get(status_of(failure), "INTERNAL")


def status_of(failure: Exception) -> int:
    if isinstance(failure, StepFailed):
        return STATUS_OF_ERROR_KIND.get(failure.record.kind, 500)
    for cls in type(failure).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


def error_response(
    failure: Exception, request_id: str | None = None, route: str | None = None
) -> JSONResponse:
    """An OIP error body (`{"error": message}`) with the status of `failure`,
    naming the request id and the experiment route when there are ones."""
    headers = {h.REQUEST_ID: request_id} if request_id else {}
    if route:
        headers[ROUTE_HEADER] = route
    return JSONResponse({"error": str(failure)}, status_code=status_of(failure), headers=headers)
