"""Tracing settings from the standard OpenTelemetry variables, read once at startup.

Only these are read (from the environ a process hands in, so tests pass their
own): `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`),
`OTEL_EXPORTER_OTLP_PROTOCOL` (or `..._TRACES_PROTOCOL`: `grpc`, `http/protobuf`),
`OTEL_TRACES_SAMPLER` and `OTEL_TRACES_SAMPLER_ARG`, `OTEL_SERVICE_NAME`, and
`OTEL_SDK_DISABLED`. No endpoint: tracing is off.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal

from engine.errors import TensorfluxError

Protocol = Literal["grpc", "http/protobuf"]
PROTOCOLS: Final = ("grpc", "http/protobuf")
SAMPLERS: Final = (
    "always_on",
    "always_off",
    "traceidratio",
    "parentbased_always_on",
    "parentbased_always_off",
    "parentbased_traceidratio",
)
DEFAULT_SERVICE_NAME: Final = "tensorflux"


class TracingConfigError(TensorfluxError):
    """An OTEL_* variable has a value tensorflux cannot use."""


@dataclass(frozen=True)
class TracingConfig:
    endpoint: str
    """Where spans go: a collector's OTLP gRPC or HTTP address."""
    protocol: Protocol = "grpc"
    """OTLP over gRPC or over HTTP with protobuf bodies."""
    sampler: str = "parentbased_always_on"
    """One of SAMPLERS (the specification's names)."""
    ratio: float = 1.0
    """The share of new traces kept by the ratio samplers (OTEL_TRACES_SAMPLER_ARG)."""
    service_name: str = DEFAULT_SERVICE_NAME
    """The resource's service.name: what Jaeger lists the spans under."""
    traces_endpoint: bool = False
    """The endpoint came from ..._TRACES_ENDPOINT: used as is (no /v1/traces added)."""

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> TracingConfig | None:
        """The settings of `environ`, or None when tracing is off."""
        if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
            return None
        traces_endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
        endpoint = traces_endpoint or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        if not endpoint:
            return None
        protocol = (
            environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
            or "grpc"
        ).strip()
        if protocol not in PROTOCOLS:
            raise TracingConfigError(
                f"OTEL_EXPORTER_OTLP_PROTOCOL is '{protocol}'; tensorflux exports traces "
                f"over {' or '.join(PROTOCOLS)}"
            )
        sampler = (environ.get("OTEL_TRACES_SAMPLER") or "parentbased_always_on").strip().lower()
        if sampler not in SAMPLERS:
            raise TracingConfigError(
                f"OTEL_TRACES_SAMPLER is '{sampler}'; choose one of {', '.join(SAMPLERS)}"
            )
        ratio = 1.0
        if sampler.endswith("traceidratio"):
            raw = environ.get("OTEL_TRACES_SAMPLER_ARG", "1.0").strip() or "1.0"
            try:
                ratio = float(raw)
            except ValueError:
                ratio = -1.0
            if not 0.0 <= ratio <= 1.0:
                raise TracingConfigError(
                    f"OTEL_TRACES_SAMPLER_ARG is '{raw}'; the ratio samplers take a "
                    "number from 0 to 1"
                )
        elif sampler.endswith("always_off"):
            ratio = 0.0
        service = (environ.get("OTEL_SERVICE_NAME") or DEFAULT_SERVICE_NAME).strip()
        return cls(
            endpoint,
            protocol,  # type: ignore[arg-type]
            sampler,
            ratio,
            service or DEFAULT_SERVICE_NAME,
            bool(traces_endpoint),
        )

    def http_url(self) -> str:
        """The OTLP/HTTP URL: the base endpoint gets the signal's path, as the spec says."""
        if self.traces_endpoint:
            return self.endpoint
        return self.endpoint.rstrip("/") + "/v1/traces"
