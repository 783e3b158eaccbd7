"""Seldon Core 2 YAML -> validated pipeline topology. Pure data: no Kafka imports here.

specs = load_files(["examples/"])
topology = compile_topology(specs, TopicNames(prefix="tensorflux", namespace="default"))
print(describe_text(topology.pipelines["tfsimples"]))
"""

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

__all__ = [
    "DEFAULT_JOIN_WINDOW_MS",
    "DEFAULT_MAX_STEP_REVISITS",
    "Batch",
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
