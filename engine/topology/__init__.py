"""Seldon Core 2 YAML -> validated pipeline topology. Pure data: no Kafka imports here.

specs = load_files(["examples/"])
topology = compile_topology(specs, TopicNames(prefix="tensorflux", namespace="default"))
print(describe_text(topology.pipelines["tfsimples"]))

The names below are imported on first use (PEP 562): a module that needs only
`engine.topology.topics` (every Kafka setting does) should not pay for the spec models
and the compiler, which are most of a CLI command's start.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_HOMES = {
    "DEFAULT_JOIN_WINDOW_MS": "compiler",
    "DEFAULT_MAX_STEP_REVISITS": "compiler",
    "compile_collecting": "compiler",
    "compile_topology": "compiler",
    "describe_mermaid": "describe",
    "describe_text": "describe",
    "Problem": "errors",
    "TopologyError": "errors",
    "TopologyWarning": "errors",
    "Batch": "graph",
    "JoinType": "graph",
    "Node": "graph",
    "NodeKind": "graph",
    "PipelineGraph": "graph",
    "Port": "graph",
    "Source": "graph",
    "TensorRef": "graph",
    "Topology": "graph",
    "SpecSet": "loader",
    "load_files": "loader",
    "load_text": "loader",
    "read_files": "loader",
    "read_text": "loader",
    "ExperimentSpec": "specs",
    "ModelSpec": "specs",
    "PipelineSpec": "specs",
    "TopicNames": "topics",
    "TopicOwner": "topics",
}

__all__ = [
    "Batch",
    "DEFAULT_JOIN_WINDOW_MS",
    "DEFAULT_MAX_STEP_REVISITS",
    "ExperimentSpec",
    "JoinType",
    "ModelSpec",
    "Node",
    "NodeKind",
    "PipelineGraph",
    "PipelineSpec",
    "Port",
    "Problem",
    "Source",
    "SpecSet",
    "TensorRef",
    "TopicNames",
    "TopicOwner",
    "Topology",
    "TopologyError",
    "TopologyWarning",
    "compile_collecting",
    "compile_topology",
    "describe_mermaid",
    "describe_text",
    "load_files",
    "load_text",
    "read_files",
    "read_text",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'engine.topology' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"engine.topology.{home}"), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:
    from engine.topology.compiler import (
        DEFAULT_JOIN_WINDOW_MS,
        DEFAULT_MAX_STEP_REVISITS,
        compile_collecting,
        compile_topology,
    )
    from engine.topology.describe import describe_mermaid, describe_text
    from engine.topology.errors import Problem, TopologyError, TopologyWarning
    from engine.topology.graph import (
        Batch,
        JoinType,
        Node,
        NodeKind,
        PipelineGraph,
        Port,
        Source,
        TensorRef,
        Topology,
    )
    from engine.topology.loader import SpecSet, load_files, load_text, read_files, read_text
    from engine.topology.specs import ExperimentSpec, ModelSpec, PipelineSpec
    from engine.topology.topics import TopicNames, TopicOwner
