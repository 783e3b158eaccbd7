"""Specs -> validated graphs. Every problem is collected; one `TopologyError` lists all.

Rules (each has a table-driven test): names are valid and unique; a step is
not named like its pipeline; every reference parses and names an existing
step or pipeline; tensorMap keys match an input or trigger; output steps are
steps; no cycles unless `allowCycles` (the cycle is named); windows and batch
sizes are not negative; experiment weights are not negative and not all 0;
step models are declared when a model set is given.
"""

from __future__ import annotations

import difflib
import graphlib
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from engine.topology.errors import Problem, TopologyError
from engine.topology.graph import (
    INPUT_NODE,
    OUTPUT_NODE,
    Batch,
    Node,
    PipelineGraph,
    Source,
    TensorRef,
    Topology,
)
from engine.topology.loader import SpecSet
from engine.topology.references import ReferenceProblem, parse_external, parse_internal
from engine.topology.specs import BatchSpec, ExperimentSpec, ModelSpec, PipelineSpec
from engine.topology.topics import MAX_TOPIC_LENGTH, TopicNames
from engine.topology.yamlsource import Document

DEFAULT_JOIN_WINDOW_MS = 60_000
"""PRODUCT.md: a join waits at most a minute unless the step says otherwise."""
DEFAULT_MAX_STEP_REVISITS = 10
"""Seldon's default is 0 (unbounded); with `allowCycles` we stop a runaway loop after
10 visits of one step by one request and emit an error record instead."""
DEFAULT_TOPICS = TopicNames()
"""Prefix `tensorflux`, namespace `default` (frozen, so safe as a default argument)."""
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*$")
"""Names become topic components and reference parts, so no dots."""


@dataclass
class _Report:
    """Problems of one resource, located by YAML path."""

    document: Document | None
    resource: str
    problems: list[Problem]
    warnings: list[Problem] = field(default_factory=list)

    def _problem(self, path: Sequence[Any], message: str, step: str | None) -> Problem:
        if self.document is None:
            return Problem("<specs>", None, self.resource, step, message)
        return Problem(
            self.document.file, self.document.line_of(*path), self.resource, step, message
        )

    def error(self, path: Sequence[Any], message: str, step: str | None = None) -> None:
        self.problems.append(self._problem(path, message, step))

    def warn(self, path: Sequence[Any], message: str, step: str | None = None) -> None:
        self.warnings.append(self._problem(path, message, step))


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
) -> tuple[Topology, list[Problem], list[Problem]]:
    """(topology of what compiled, problems incl. the loader's, warnings incl. the loader's)."""
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
        report = _Report(model.origin, f"model '{name}'", problems, warnings)
        _check_model(model, report)
        models[name] = model

    graphs: dict[str, PipelineGraph] = {}
    for name, spec in specs.pipelines.items():
        report = _Report(spec.origin, f"pipeline '{name}'", [], warnings)
        graph = _PipelineCompiler(
            spec, topics, report, pipeline_steps, invalid_pipelines, declared_models
        ).compile()
        problems.extend(report.problems)
        if graph is not None and not report.problems and ("Pipeline", name) not in specs.invalid:
            graphs[name] = graph

    experiments: dict[str, ExperimentSpec] = {}
    known_pipeline_names = set(pipeline_steps) | invalid_pipelines
    for name, experiment in specs.experiments.items():
        report = _Report(experiment.origin, f"experiment '{name}'", problems, warnings)
        _check_experiment(experiment, report, declared_models, known_pipeline_names)
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


def _check_name(
    name: str, what: str, report: _Report, path: Sequence[Any], step: str | None = None
) -> None:
    if not NAME_PATTERN.match(name):
        report.error(
            path,
            f"{what} name '{name}' is not allowed; use letters, digits, '-' and '_' "
            "(it becomes part of topic names and references, so no dots or spaces)",
            step,
        )


def _check_model(model: ModelSpec, report: _Report) -> None:
    _check_name(model.name, "model", report, ("metadata", "name"))
    if not model.storage_uri:
        report.error(
            ("spec",),
            "spec.storageUri is missing; point it at the model's directory or file, "
            "e.g. 'storageUri: ./my-model'",
        )
    for field_name in ("replicas", "min_replicas", "max_replicas"):
        value = getattr(model, field_name)
        if value is not None and value < 0:
            alias = ModelSpec.model_fields[field_name].alias
            report.error(("spec", alias), f"spec.{alias} is {value}; it cannot be negative")


def _check_experiment(
    experiment: ExperimentSpec,
    report: _Report,
    declared_models: set[str] | None,
    pipelines: set[str],
) -> None:
    _check_name(experiment.name, "experiment", report, ("metadata", "name"))
    kind = experiment.resource_type
    if not experiment.candidates:
        report.error(
            ("spec", "candidates"), "spec.candidates is empty; list at least one {name, weight}"
        )
    seen: set[str] = set()
    names = [candidate.name for candidate in experiment.candidates]

    def exists(name: str) -> bool:
        if kind == "pipeline":
            return name in pipelines
        return declared_models is None or name in declared_models

    def known_listing() -> str:
        known = pipelines if kind == "pipeline" else (declared_models or set())
        return ", ".join(sorted(known)) or "(none)"

    for index, candidate in enumerate(experiment.candidates):
        path = ("spec", "candidates", index)
        if candidate.name in seen:
            report.error((*path, "name"), f"candidate '{candidate.name}' is listed twice; keep one")
        seen.add(candidate.name)
        # Weight 0 keeps a candidate loaded but sends it nothing (Seldon allows it too).
        if candidate.weight < 0:
            report.error(
                (*path, "weight"),
                f"candidate '{candidate.name}' has weight {candidate.weight}; weights cannot be "
                "negative (0 sends a candidate no traffic)",
            )
        if not exists(candidate.name):
            report.error(
                (*path, "name"),
                f"candidate '{candidate.name}' is not a declared {kind}; declare it or fix the "
                f"name ({kind}s known: {known_listing()})",
            )
    if experiment.candidates and all(c.weight == 0 for c in experiment.candidates):
        report.error(
            ("spec", "candidates"),
            "every candidate has weight 0, so no request could be routed; give one a positive weight",
        )
    if experiment.default is not None and experiment.default not in names:
        report.error(
            ("spec", "default"),
            f"default '{experiment.default}' is not among the candidates ({', '.join(names) or 'none'}); "
            "add it as a candidate",
        )
    mirror = experiment.mirror
    if mirror is not None:
        if not 0 < mirror.percent <= 100:
            report.error(
                ("spec", "mirror", "percent"),
                f"mirror percent is {mirror.percent}; it must be between 1 and 100",
            )
        if not exists(mirror.name):
            report.error(
                ("spec", "mirror", "name"),
                f"mirror '{mirror.name}' is not a declared {kind} ({kind}s known: {known_listing()})",
            )


class _PipelineCompiler:
    """Compiles one pipeline spec, reporting every problem it finds."""

    def __init__(
        self,
        spec: PipelineSpec,
        topics: TopicNames,
        report: _Report,
        pipeline_steps: Mapping[str, Collection[str]],
        invalid_pipelines: Collection[str],
        declared_models: set[str] | None,
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.topics = topics
        self.report = report
        self.pipeline_steps = pipeline_steps
        self.invalid_pipelines = invalid_pipelines
        self.declared_models = declared_models
        self.step_names = [step.name for step in spec.steps]
        self.failed_heads: set[str] = set()
        """First parts of references already reported as bad (to report each once)."""

    # --- the whole pipeline ---------------------------------------------------------

    def compile(self) -> PipelineGraph | None:
        spec, report = self.spec, self.report
        _check_name(self.name, "pipeline", report, ("metadata", "name"))
        if not spec.steps:
            report.error(
                ("spec", "steps"), "the pipeline has no steps; add at least one under spec.steps"
            )
        self._check_step_names()
        input_node = self._input_node()
        steps = [self._step_node(index) for index in range(len(spec.steps))]
        output_node = self._output_node()
        order = self._order()
        max_revisits = self._max_step_revisits()
        graph_steps = tuple(node for node in steps if node is not None)
        if report.problems or output_node is None or order is None:
            return None
        by_name = {node.name: node for node in graph_steps}
        graph = PipelineGraph(
            name=self.name,
            input_topic=self.topics.pipeline_inputs(self.name),
            output_topic=self.topics.pipeline_outputs(self.name),
            input_node=input_node,
            steps=tuple(by_name[name] for name in order),
            output_node=output_node,
            allow_cycles=spec.allow_cycles,
            max_step_revisits=max_revisits,
            clean_topics_on_delete=bool(spec.dataflow and spec.dataflow.clean_topics_on_delete),
        )
        for topic in sorted(graph.owned_topics()):
            if len(topic) > MAX_TOPIC_LENGTH:
                report.error(
                    ("metadata", "name"),
                    f"topic '{topic}' is longer than Kafka's {MAX_TOPIC_LENGTH} characters; "
                    "use shorter pipeline/step names",
                )
        return None if report.problems else graph

    def _check_step_names(self) -> None:
        seen: set[str] = set()
        for index, step in enumerate(self.spec.steps):
            path = ("spec", "steps", index, "name")
            _check_name(step.name, "step", self.report, path, step.name)
            if step.name in seen:
                self.report.error(
                    path, "two steps have this name; step names must be unique", step.name
                )
            seen.add(step.name)
            if step.name == self.name:
                self.report.error(
                    path,
                    f"step is named like its pipeline '{self.name}', which makes "
                    f"'{self.name}.inputs' ambiguous; rename the pipeline (e.g. '{self.name}-pipeline')",
                    step.name,
                )
            if self.declared_models is not None and step.name not in self.declared_models:
                known = ", ".join(sorted(self.declared_models)) or "(none)"
                self.report.error(
                    path,
                    f"no Model '{step.name}' is declared (a step's name is its model's name); "
                    f"add a Model resource named '{step.name}' or load its file (models known: {known})",
                    step.name,
                )

    def _max_step_revisits(self) -> int:
        value = self.spec.max_step_revisits
        if value is not None and value < 0:
            self.report.error(
                ("spec", "maxStepRevisits"), f"maxStepRevisits is {value}; it cannot be negative"
            )
        if not self.spec.allow_cycles:
            if value:
                self.report.warn(
                    ("spec", "maxStepRevisits"),
                    "maxStepRevisits has no effect without allowCycles: true",
                )
            return 0
        return DEFAULT_MAX_STEP_REVISITS if value is None or value == 0 else value

    # --- nodes ----------------------------------------------------------------------

    def _window(self, value: int | None, path: Sequence[Any], step: str | None) -> int:
        if value is None:
            return DEFAULT_JOIN_WINDOW_MS
        if value < 0:
            self.report.error(path, f"joinWindowMs is {value}; it cannot be negative", step)
        return value

    def _batch(self, batch: BatchSpec | None, path: Sequence[Any], step: str) -> Batch | None:
        if batch is None:
            return None
        if batch.size is None and batch.window_ms is None:
            self.report.error(path, "batch needs a size or a windowMs (or both)", step)
        if batch.size is not None and batch.size <= 0:
            self.report.error(
                (*path, "size"), f"batch size is {batch.size}; it must be positive", step
            )
        if batch.window_ms is not None and batch.window_ms <= 0:
            self.report.error(
                (*path, "windowMs"),
                f"batch windowMs is {batch.window_ms}; it must be positive",
                step,
            )
        return Batch(size=batch.size, window_ms=batch.window_ms, rolling=batch.rolling)

    def _step_node(self, index: int) -> Node | None:
        step = self.spec.steps[index]
        path = ("spec", "steps", index)
        parse = self._internal_parser(step.name)
        if step.inputs:
            inputs = self._refs(step.inputs, (*path, "inputs"), parse, step.name)
        else:
            # Seldon: a step without inputs reads the pipeline's inputs, every tensor.
            inputs = [TensorRef(self.name, None, "inputs", None)]
        triggers = self._refs(step.triggers, (*path, "triggers"), parse, step.name)
        hint = ""
        for key in step.model_extra or {}:
            # A misspelt `inputs` silently makes the step read the pipeline's inputs.
            guess = difflib.get_close_matches(str(key), ["inputs", "triggers"], n=1)
            if guess:
                hint = f" (the step has an unknown field '{key}': did you mean '{guess[0]}'?)"
        input_sources, trigger_sources = self._sources(
            inputs, triggers, step.tensor_map, (*path, "tensorMap"), parse, step.name, hint
        )
        window = self._window(step.join_window_ms, (*path, "joinWindowMs"), step.name)
        batch = self._batch(step.batch, (*path, "batch"), step.name)
        return Node(
            pipeline=self.name,
            name=step.name,
            kind="step",
            model=step.name,
            inputs=input_sources,
            triggers=trigger_sources,
            inputs_join=step.inputs_join_type,
            triggers_join=step.triggers_join_type,
            join_window_ms=window,
            batch=batch,
            request_topic=self.topics.step_inputs(self.name, step.name),
            output_topic=self.topics.step_outputs(self.name, step.name),
        )

    def _input_node(self) -> Node | None:
        spec = self.spec.input
        if spec is None:
            return None
        path = ("spec", "input")
        if not spec.external_inputs and not spec.external_triggers:
            if spec.tensor_map:
                self.report.error(
                    (*path, "tensorMap"),
                    "spec.input.tensorMap without externalInputs renames nothing; add "
                    "externalInputs or move the renames to the steps' tensorMap",
                )
            return None
        parse = self._external_parser()
        inputs = self._refs(spec.external_inputs, (*path, "externalInputs"), parse, None)
        triggers = self._refs(spec.external_triggers, (*path, "externalTriggers"), parse, None)
        if not spec.external_inputs:
            self.report.error(
                (*path, "externalTriggers"),
                "externalTriggers without externalInputs forward nothing; add externalInputs",
            )
        input_sources, trigger_sources = self._sources(
            inputs, triggers, spec.tensor_map, (*path, "tensorMap"), parse, None, ""
        )
        return Node(
            pipeline=self.name,
            name=INPUT_NODE,
            kind="input",
            model=None,
            inputs=input_sources,
            triggers=trigger_sources,
            inputs_join=spec.join_type,
            triggers_join=spec.triggers_join_type,
            join_window_ms=self._window(spec.join_window_ms, (*path, "joinWindowMs"), None),
            batch=None,
            request_topic=None,
            output_topic=self.topics.pipeline_inputs(self.name),
        )

    def _output_node(self) -> Node | None:
        spec = self.spec.output
        path = ("spec", "output")
        parse = self._internal_parser(None)
        if spec is None or not spec.steps:
            if not self.spec.steps:
                return None
            # Without output steps the pipeline answers with its last step, as a chain would.
            last = self.spec.steps[-1].name
            self.report.warn(
                (*path, "steps"), f"no output.steps; the pipeline outputs its last step '{last}'"
            )
            refs = [TensorRef(self.name, last, "outputs", None)]
            tensor_map: Mapping[str, str] = spec.tensor_map if spec else {}
        else:
            refs = self._refs(spec.steps, (*path, "steps"), parse, None)
            tensor_map = spec.tensor_map
        for index, ref in enumerate(refs):
            if ref is not None and ref.step is None:
                self.report.error(
                    (*path, "steps", index),
                    f"output step '{ref.spelled(self.name)}' is the pipeline's inputs, not a step; "
                    f"output.steps lists steps ({', '.join(self.step_names)})",
                )
        inputs, _ = self._sources(refs, [], tensor_map, (*path, "tensorMap"), parse, None, "")
        return Node(
            pipeline=self.name,
            name=OUTPUT_NODE,
            kind="output",
            model=None,
            inputs=inputs,
            triggers=(),
            inputs_join=spec.steps_join if spec else "inner",
            triggers_join="inner",
            join_window_ms=self._window(
                spec.join_window_ms if spec else None, (*path, "joinWindowMs"), None
            ),
            batch=None,
            request_topic=None,
            output_topic=self.topics.pipeline_outputs(self.name),
        )

    # --- references -----------------------------------------------------------------

    def _internal_parser(self, step: str | None) -> Callable[[str], TensorRef]:
        def parse(text: str) -> TensorRef:
            try:
                return parse_internal(text, self.name, self.step_names)
            except ReferenceProblem:
                head = text.split(".")[0]
                if head in self.pipeline_steps and head not in (*self.step_names, self.name):
                    raise ReferenceProblem(
                        f"'{text}' reads pipeline '{head}'; steps read only their own pipeline, "
                        f"so list it under spec.input.externalInputs and read '{self.name}.inputs'"
                    ) from None
                raise

        return parse

    def _external_parser(self) -> Callable[[str], TensorRef]:
        return lambda text: parse_external(
            text, self.name, self.pipeline_steps, self.invalid_pipelines
        )

    def _refs(
        self,
        texts: Sequence[str | None],
        path: Sequence[Any],
        parse: Callable[[str], TensorRef],
        step: str | None,
    ) -> list[TensorRef]:
        refs: list[TensorRef] = []
        seen: set[TensorRef] = set()
        for index, text in enumerate(texts):
            if text is None or not text.strip():
                self.report.error(
                    (*path, index),
                    f"empty reference in {path[-1]}; write one like 'step.outputs.TENSOR' or "
                    "delete the empty '-' item",
                    step,
                )
                continue
            try:
                ref = parse(text)
            except ReferenceProblem as problem:
                self.report.error((*path, index), problem.message, step)
                self.failed_heads.add(text.split(".")[0])
                continue
            if ref in seen:
                self.report.error((*path, index), f"'{text}' is listed twice; keep one", step)
                continue
            seen.add(ref)
            refs.append(ref)
        return refs

    def _sources(
        self,
        inputs: Sequence[TensorRef],
        triggers: Sequence[TensorRef],
        tensor_map: Mapping[str, str],
        path: Sequence[Any],
        parse: Callable[[str], TensorRef],
        step: str | None,
        hint: str,
    ) -> tuple[tuple[Source, ...], tuple[Source, ...]]:
        renames: dict[TensorRef, list[tuple[str, str]]] = {ref: [] for ref in (*inputs, *triggers)}
        for key, new_name in tensor_map.items():
            key_path = (*path, key)
            try:
                key_ref = parse(key)
            except ReferenceProblem as problem:
                # The same bad name in the inputs was reported already; say it once.
                if key.split(".")[0] not in self.failed_heads:
                    self.report.error(key_path, f"tensorMap key: {problem.message}", step)
                continue
            if key_ref.tensor is None:
                self.report.error(
                    key_path,
                    f"tensorMap key '{key}' names no tensor; write '{key_ref.prefix(self.name)}.TENSOR'",
                    step,
                )
                continue
            if not new_name:
                self.report.error(key_path, f"tensorMap '{key}' has an empty new name", step)
                continue
            # A key matches the source that selects exactly that tensor, else a whole-message source.
            target = key_ref if key_ref in renames else key_ref.whole()
            if target not in renames:
                reads = ", ".join(ref.spelled(self.name) for ref in renames) or "nothing"
                self.report.error(
                    key_path,
                    f"tensorMap key '{key}' matches no input or trigger (it reads: {reads}); "
                    f"use one of those with a tensor name, or add '{key_ref.prefix(self.name)}' "
                    f"to the inputs{hint}",
                    step,
                )
                continue
            renames[target].append((key_ref.tensor, new_name))

        def source(ref: TensorRef) -> Source:
            return Source(ref=ref, topic=self._topic(ref), renames=tuple(renames[ref]))

        return tuple(source(ref) for ref in inputs), tuple(source(ref) for ref in triggers)

    def _topic(self, ref: TensorRef) -> str:
        if ref.step is None:
            if ref.port == "inputs":
                return self.topics.pipeline_inputs(ref.pipeline)
            return self.topics.pipeline_outputs(ref.pipeline)
        if ref.port == "inputs":
            return self.topics.step_inputs(ref.pipeline, ref.step)
        return self.topics.step_outputs(ref.pipeline, ref.step)

    # --- order ----------------------------------------------------------------------

    def _dependencies(self) -> dict[str, set[str]]:
        known = set(self.step_names)
        deps: dict[str, set[str]] = {name: set() for name in self.step_names}
        for step in self.spec.steps:
            for text in (*step.inputs, *step.triggers):
                head = (text or "").split(".")[0]
                if head in known:
                    deps[step.name].add(head)
        return deps

    def _order(self) -> list[str] | None:
        """Topological order, declaration order breaking ties; None after a reported cycle."""
        names = list(dict.fromkeys(self.step_names))
        position = {name: index for index, name in enumerate(names)}
        sorter = graphlib.TopologicalSorter(self._dependencies())
        try:
            sorter.prepare()
        except graphlib.CycleError as error:
            if self.spec.allow_cycles:
                return names
            cycle = " -> ".join(error.args[1])  # in data-flow order
            index = position[error.args[1][0]]
            self.report.error(
                ("spec", "steps", index),
                f"steps form a cycle {cycle}; remove one of these references or set "
                "'allowCycles: true' (with maxStepRevisits) if the loop is intended",
                error.args[1][0],
            )
            return None
        order: list[str] = []
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        while ready:
            name = ready.pop(0)
            order.append(name)
            sorter.done(name)
            ready = sorted([*ready, *sorter.get_ready()], key=position.__getitem__)
        return order
