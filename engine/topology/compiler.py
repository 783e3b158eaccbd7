"""Specs -> validated graphs. Every problem is collected; one `TopologyError` lists all.

Rules (each has a table-driven test): names are valid and unique; a step is
not named like its pipeline; every reference parses and names an existing
step or pipeline; tensorMap keys match an input or trigger; output steps are
steps; no cycles unless `allowCycles` (the cycle is named); windows and batch
sizes are not negative; experiment weights are not negative and not all 0;
step models are declared when a model set is given.

This module runs the whole compilation; the jobs are apart: `report.py` (where
problems go), `resource_checks.py` (models, experiments), `pipelines.py` (one
pipeline's nodes), `wiring.py` (references, sources, tensorMap) and
`order.py` (step order, cycles).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from types import MappingProxyType

from engine.topology.errors import Problem, TopologyError
from engine.topology.graph import PipelineGraph, Topology
from engine.topology.loader import SpecSet
from engine.topology.pipelines import (
    DEFAULT_JOIN_WINDOW_MS,
    DEFAULT_MAX_STEP_REVISITS,
    PipelineCompiler,
)
from engine.topology.report import Report
from engine.topology.resource_checks import check_experiment, check_model
from engine.topology.specs import ExperimentSpec, ModelSpec
from engine.topology.tensor_names import Signatures
from engine.topology.topics import TopicNames

DEFAULT_TOPICS = TopicNames()
"""Prefix `tensorflux`, namespace `default` (frozen, so safe as a default argument)."""

__all__ = [
    "DEFAULT_JOIN_WINDOW_MS",
    "DEFAULT_MAX_STEP_REVISITS",
    "DEFAULT_TOPICS",
    "compile_collecting",
    "compile_topology",
]


def compile_topology(
    specs: SpecSet,
    topics: TopicNames = DEFAULT_TOPICS,
    *,
    known_models: set[str] | None = None,
    known_pipelines: Mapping[str, PipelineGraph] | None = None,
) -> Topology:
    """Validate and compile every resource of `specs`; raise `TopologyError` listing all problems.

    `known_models`/`known_pipelines` are resources loaded earlier (a pipeline file
    loaded alone may read pipelines or use models that are already running).
    """
    topology, problems, _ = compile_collecting(
        specs, topics, known_models=known_models, known_pipelines=known_pipelines
    )
    if problems:
        raise TopologyError(problems)
    return topology


def compile_collecting(
    specs: SpecSet,
    topics: TopicNames = DEFAULT_TOPICS,
    *,
    known_models: set[str] | None = None,
    known_pipelines: Mapping[str, PipelineGraph] | None = None,
    signatures: Signatures | None = None,
) -> tuple[Topology, list[Problem], list[Problem]]:
    """(topology of what compiled, problems incl. the loader's, warnings incl. the loader's).
    `signatures`: the models' tensor names, where known (see `tensor_names`)."""
    problems: list[Problem] = list(specs.problems)
    warnings: list[Problem] = list(specs.warnings)
    pipeline_steps: dict[str, Collection[str]] = {
        name: [step.name for step in graph.steps] for name, graph in (known_pipelines or {}).items()
    }
    pipeline_steps.update(
        {name: [step.name for step in spec.steps] for name, spec in specs.pipelines.items()}
    )
    invalid_pipelines = {name for kind, name in specs.invalid if kind == "Pipeline"}
    declared_models = _declared_models(specs, known_models)

    models: dict[str, ModelSpec] = {}
    for name, model in specs.models.items():
        report = Report(model.origin, f"model '{name}'", problems, warnings)
        check_model(model, report)
        models[name] = model

    graphs: dict[str, PipelineGraph] = {}
    for name, spec in specs.pipelines.items():
        report = Report(spec.origin, f"pipeline '{name}'", [], warnings)
        graph = PipelineCompiler(
            spec, topics, report, pipeline_steps, invalid_pipelines, declared_models, signatures
        ).compile()
        problems.extend(report.problems)
        if graph is not None and not report.problems and ("Pipeline", name) not in specs.invalid:
            graphs[name] = graph

    experiments: dict[str, ExperimentSpec] = {}
    known_pipeline_names = set(pipeline_steps) | invalid_pipelines
    for name, experiment in specs.experiments.items():
        report = Report(experiment.origin, f"experiment '{name}'", problems, warnings)
        check_experiment(experiment, report, declared_models, known_pipeline_names)
        experiments[name] = experiment

    topology = Topology(
        models=MappingProxyType(models),
        pipelines=MappingProxyType(graphs),
        experiments=MappingProxyType(experiments),
    )
    return topology, problems, warnings


def _declared_models(specs: SpecSet, known_models: set[str] | None) -> set[str] | None:
    """Names a step may use as its model, or None when no model set was given (unchecked)."""
    if (
        not specs.models
        and known_models is None
        and not any(kind == "Model" for kind, _ in specs.invalid)
    ):
        return None
    names = set(specs.models) | set(known_models or ())
    names |= {name for kind, name in specs.invalid if kind == "Model"}
    # An experiment over models answers under its own name, so a step may call it.
    names |= {name for name, exp in specs.experiments.items() if exp.resource_type == "model"}
    return names
