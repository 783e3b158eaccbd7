"""The Open Inference Protocol V2 HTTP gateway over tensorflux's Kafka topics.

app = create_app(settings, StaticCatalog.from_topology(topology, topics))
run_gateway(settings, ControlCatalog(settings), "127.0.0.1", 9000, stop_event)
"""

from engine.gateway.app import DEFAULT_TIMEOUT_S, create_app
from engine.gateway.catalog import (
    Catalog,
    ControlCatalog,
    ModelInfo,
    PipelineInfo,
    StaticCatalog,
    TensorInfo,
)
from engine.gateway.errors import GatewayError
from engine.gateway.experiments import ExperimentInfo
from engine.gateway.router import ReplyRouter
from engine.gateway.server import run_gateway

__all__ = [
    "DEFAULT_TIMEOUT_S",
    "Catalog",
    "ControlCatalog",
    "ExperimentInfo",
    "GatewayError",
    "ModelInfo",
    "PipelineInfo",
    "ReplyRouter",
    "StaticCatalog",
    "TensorInfo",
    "create_app",
    "run_gateway",
]
