"""Errors of the gateway. Their HTTP status is chosen in `statuses.py`, not here."""

from __future__ import annotations

from engine.errors import TensorfluxError
from engine.messages import ErrorRecord


class GatewayError(TensorfluxError):
    """A request the gateway could not answer with a result."""


class UnknownName(GatewayError):
    """No pipeline or model of that name is loaded; lists those that are."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        self.kind = kind
        self.name = name
        listed = ", ".join(repr(n) for n in known) or "none"
        super().__init__(f"no {kind} '{name}' is loaded; loaded: {listed}")


class BadRequest(GatewayError):
    """The request body is not a valid Open Inference Protocol request."""


class UnsupportedEncoding(BadRequest):
    """The request body comes in a Content-Encoding the gateway does not read."""


class RequestTooLarge(GatewayError):
    """The request body is over the gateway's `--max-request-bytes`."""


class ShuttingDown(GatewayError):
    """The gateway is stopping: it takes no new request, and one still waiting at the end
    of the grace is answered with this."""


class BrokerUnavailable(GatewayError):
    """Kafka cannot be reached from this gateway now."""


class NotReady(GatewayError):
    """The pipeline or model exists but failed to load."""


class ReplyTimeout(GatewayError):
    """No reply arrived on the outputs topic in time."""

    def __init__(self, where: str, request_id: str, timeout_s: float) -> None:
        self.request_id = request_id
        super().__init__(
            f"no reply from {where} within {timeout_s:g}s (request id {request_id}); "
            f"the request may still complete: inspect its topics with "
            f"`tensorflux pipeline inspect ... --request-id {request_id}`"
        )


class StepFailed(GatewayError):
    """The pipeline or model answered with an error record."""

    def __init__(self, record: ErrorRecord) -> None:
        self.record = record
        where = (
            f"pipeline '{record.pipeline}' step '{record.step}'"
            if record.pipeline
            else f"model '{record.step}'"
        )
        super().__init__(f"{where} failed ({record.kind}, {record.stage}): {record.reason}")


class DeliveryFailed(GatewayError):
    """Kafka refused the request record."""


class RequestInFlight(GatewayError):
    """A request with this x-request-id is still waiting for its answer in this gateway."""

    def __init__(self, request_id: str) -> None:
        super().__init__(
            f"request id '{request_id}' is already in flight here; "
            "send each request with its own x-request-id"
        )
        self.request_id = request_id
