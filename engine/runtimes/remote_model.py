"""Remote models: a Model whose `storageUri` is `oip+http(s)://` or `oip+grpc(s)://HOST:PORT[/MODEL]`,
called over the Open Inference Protocol V2 (MLServer, Triton, KServe, another tensorflux).

At load, the server's metadata for the model (`GET /v2/models/M`, or
`ModelMetadata`) gives its signature and its readiness endpoint must say
ready; otherwise the model fails to load with the server's words. Each
`predict` is one inference call with the model's timeout; one connection
(HTTP keep-alive, one gRPC channel) serves every call.

The Model's `parameters` tune it (Seldon's free-form name/value list):
`timeout` (seconds to wait for the server, default 30), `max_batch_size` (requests merged
into one call: set it when the remote model takes a batch axis that its
metadata does not show), `binary_data` (HTTP: tensors in the binary tensor
extension rather than JSON; Triton and tensorflux read it, MLServer does not),
`retries` (connection failures only, default 2: tried again after 0.1 s, then twice as
long each time; a timeout or an answer, even a 5xx, is never retried, since the server
may have done the work) and `max_in_flight` (calls at once: the model's threads in the
worker, `engine/topology/specs.py`; one connection pool serves them).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from engine.runtimes.base import DYNAMIC, ModelRuntime, TensorSpec
from engine.runtimes.errors import (
    ModelFailure,
    ModelInputError,
    ModelLoadError,
    ModelUnreachable,
)
from engine.runtimes.hosts import RemoteAddress
from engine.topology.specs import ModelSpec

DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 2
FIRST_RETRY_S = 0.1
"""The wait before the first retry of a connection that failed; doubled each time."""
LOAD_TIMEOUT_S = 5.0
"""At most this long for each readiness or metadata call at load: a load blocks the
worker's loop, and a server not answering is tried again later (runtime/models.py)."""


@dataclass(frozen=True)
class RemoteOptions:
    """What a remote Model's `parameters` say."""

    timeout_s: float = DEFAULT_TIMEOUT_S
    """Seconds to wait: to connect, to send, for each read of the answer (gRPC: the call)."""
    max_batch_size: int | None = None
    """At most this many requests in one call; set: the model takes a batch axis."""
    binary_data: bool = False
    """HTTP only: send and ask for tensors in the binary tensor extension."""
    retries: int = DEFAULT_RETRIES
    """Tries after a connection failure (nothing reached the server), with backoff."""

    @property
    def load_timeout_s(self) -> float:
        """The timeout of the readiness and metadata calls at load."""
        return min(self.timeout_s, LOAD_TIMEOUT_S)


class RemoteCallFailed(Exception):
    """What a transport could not do; RemoteModel words it as a model error.

    `kind`: "unreachable" (no connection, no answer in time: the request is not at
    fault), "input" (the server refused the request: 4xx, INVALID_ARGUMENT) or
    "failure" (the server failed: 5xx, INTERNAL, anything else)."""

    def __init__(self, kind: str, status: str, message: str, *, connect: bool = False) -> None:
        self.kind, self.status, self.message = kind, status, message
        self.connect = connect
        """No connection was made: the request never reached the server (safe to retry)."""
        super().__init__(f"{status}: {message}")


class Transport(Protocol):
    """One server, one protocol; raises RemoteCallFailed."""

    def metadata(self, model: str) -> Mapping[str, Any]:
        """The OIP metadata document of `model` (name, inputs, outputs)."""

    def ready(self, model: str) -> tuple[bool, str]:
        """Whether the server says `model` is ready, and its reason when not."""

    def infer(
        self, model: str, inputs: dict[str, np.ndarray], requested: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        """The outputs the server answers for one request."""

    def close(self) -> None: ...


class RemoteModel(ModelRuntime):
    takes_requested_outputs = True  # the request's OIP `outputs` travel to the server
    in_process = False

    def __init__(
        self, name: str, address: RemoteAddress, options: RemoteOptions, transport: Transport
    ) -> None:
        self.name = name
        self.address = address
        self.options = options
        self._transport: Transport | None = transport
        where = f"{address.server}/v2/models/{address.model}"
        try:
            ready, reason = transport.ready(address.model)
            if not ready:
                raise ModelLoadError(
                    name,
                    where,
                    f"the server says the model is not ready: {reason or 'no reason'}",
                    transient=True,
                )
            metadata = transport.metadata(address.model)
        except RemoteCallFailed as failure:
            transport.close()
            # The server may come up, or load the model, later: the worker tries again.
            raise ModelLoadError(name, where, str(failure), transient=True) from None
        except BaseException:
            transport.close()
            raise
        self.inputs = _specs(metadata.get("inputs"))
        self.outputs = _specs(metadata.get("outputs"))
        self.max_batch_size = options.max_batch_size
        # Requests merge into one call when the model takes a batch axis: said by the
        # parameters, or by a metadata whose every input leads with a free dimension.
        self.batchable = (options.max_batch_size or 0) > 1 or (
            options.max_batch_size is None
            and bool(self.inputs)
            and all(spec.shape[:1] == (DYNAMIC,) for spec in self.inputs)
        )

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.predict_outputs(inputs, ())

    def predict_outputs(
        self, inputs: dict[str, np.ndarray], requested: tuple[str, ...]
    ) -> dict[str, np.ndarray]:
        transport = self._transport
        if transport is None:
            raise ModelFailure(self.name, "the model is closed")
        retries = self.options.retries
        for attempt in range(retries + 1):
            try:
                return transport.infer(self.address.model, inputs, requested)
            except RemoteCallFailed as failure:
                if not failure.connect or attempt == retries:
                    raise self._error(failure) from None
            _backoff_sleep(FIRST_RETRY_S * 2**attempt)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _error(self, failure: RemoteCallFailed) -> Exception:
        """What the worker makes an error record of, naming the server and the status."""
        said = f"{self.address.server} model {self.address.model!r}: {failure.status}: {failure.message}"
        if failure.kind == "unreachable":
            return ModelUnreachable(self.name, said)
        if failure.kind == "input":
            return ModelInputError(self.name, f"refused by {said}")
        return ModelFailure(self.name, said)

    def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()

    def __repr__(self) -> str:
        return f"RemoteModel({self.name!r}, {self.address.server}/{self.address.model})"


def options_of(spec: ModelSpec) -> RemoteOptions:
    """The RemoteOptions in `spec.parameters`; ModelLoadError names a bad value."""
    given = {p.name: p.value for p in spec.parameters}
    where = spec.storage_uri
    timeout = given.get("timeout", DEFAULT_TIMEOUT_S)
    try:
        timeout_s = float(timeout)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        timeout_s = -1.0
    if not timeout_s > 0:
        raise ModelLoadError(
            spec.name, where, f"parameter timeout must be seconds above 0, got {timeout!r}"
        )
    size = given.get("max_batch_size")
    if size is not None:
        try:
            size = int(str(size))
        except ValueError:
            size = 0
        if size < 1:
            raise ModelLoadError(
                spec.name,
                where,
                f"parameter max_batch_size must be a positive integer, got {given['max_batch_size']!r}",
            )
    binary = given.get("binary_data", False)
    if str(binary).lower() not in ("true", "false"):
        raise ModelLoadError(
            spec.name, where, f"parameter binary_data must be true or false, got {binary!r}"
        )
    retries = given.get("retries", DEFAULT_RETRIES)
    if not str(retries).strip().isdigit() or isinstance(retries, bool):
        raise ModelLoadError(
            spec.name, where, f"parameter retries must be an integer of 0 or more, got {retries!r}"
        )
    return RemoteOptions(timeout_s, size, str(binary).lower() == "true", int(str(retries)))


def _backoff_sleep(seconds: float) -> None:
    time.sleep(seconds)  # a name of its own, so that tests can see the waits


def _specs(items: Any) -> tuple[TensorSpec, ...]:
    """Metadata tensors as TensorSpecs; what is not a well-formed entry is left out."""
    specs = []
    for item in items if isinstance(items, list | tuple) else ():
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            continue
        shape = item.get("shape")
        dims = tuple(int(d) for d in shape) if isinstance(shape, list | tuple) else ()
        specs.append(TensorSpec(item["name"], str(item.get("datatype", "")), dims))
    return tuple(specs)
