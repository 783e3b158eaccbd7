"""One pipeline spec -> its graph: step names, nodes (input, steps, output), windows,
batches and revisits, each problem reported where it is."""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from engine.topology.graph import INPUT_NODE, OUTPUT_NODE, Batch, Node, PipelineGraph, TensorRef
from engine.topology.order import step_order
from engine.topology.report import Report, check_name
from engine.topology.specs import BatchSpec, PipelineSpec
from engine.topology.tensor_names import Signatures, check_node_names
from engine.topology.topics import MAX_TOPIC_LENGTH, TopicNames
from engine.topology.wiring import Wiring

DEFAULT_JOIN_WINDOW_MS = 60_000
"""PRODUCT.md: a join waits at most a minute unless the step says otherwise."""
DEFAULT_MAX_STEP_REVISITS = 10
"""Seldon's default is 0 (unbounded); with `allowCycles` we stop a runaway loop after
10 visits of one step by one request and emit an error record instead."""


class PipelineCompiler:
    """Compiles one pipeline spec, reporting every problem it finds."""

    def __init__(
        self,
        spec: PipelineSpec,
        topics: TopicNames,
        report: Report,
        pipeline_steps: Mapping[str, Collection[str]],
        invalid_pipelines: Collection[str],
        declared_models: set[str] | None,
        signatures: Signatures | None = None,
    ) -> None:
        """`signatures`: the tensor names of models whose signature is known (validate reads
        ONNX files), so that two tensors of one name meeting in a node are caught early."""
        self.spec = spec
        self.signatures: Signatures = signatures or {}
        self.name = spec.name
        self.topics = topics
        self.report = report
        self.declared_models = declared_models
        self.step_names = [step.name for step in spec.steps]
        self.wiring = Wiring(
            self.name, self.step_names, topics, report, pipeline_steps, invalid_pipelines
        )

    # --- the whole pipeline ---------------------------------------------------------

    def compile(self) -> PipelineGraph | None:
        spec, report = self.spec, self.report
        check_name(self.name, "pipeline", report, ("metadata", "name"))
        if not spec.steps:
            report.error(
                ("spec", "steps"), "the pipeline has no steps; add at least one under spec.steps"
            )
        self._check_step_names()
        input_node = self._input_node()
        steps = [self._step_node(index) for index in range(len(spec.steps))]
        output_node = self._output_node()
        order = step_order(self.spec, self.report)
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
        self._check_tensor_names(graph)
        for topic in sorted(graph.owned_topics()):
            if len(topic) > MAX_TOPIC_LENGTH:
                report.error(
                    ("metadata", "name"),
                    f"topic '{topic}' is longer than Kafka's {MAX_TOPIC_LENGTH} characters; "
                    "use shorter pipeline/step names",
                )
        return None if report.problems else graph

    def _check_tensor_names(self, graph: PipelineGraph) -> None:
        for index, step in enumerate(self.spec.steps):
            node = next(n for n in graph.steps if n.name == step.name)
            path = ("spec", "steps", index, "inputs") if step.inputs else ("spec", "steps", index)
            check_node_names(node, self.report, path, self.signatures)
        check_node_names(graph.output_node, self.report, ("spec", "output"), self.signatures)

    def _check_step_names(self) -> None:
        seen: set[str] = set()
        for index, step in enumerate(self.spec.steps):
            path = ("spec", "steps", index, "name")
            check_name(step.name, "step", self.report, path, step.name)
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
        parse = self.wiring.internal_parser(step.name)
        if step.inputs:
            inputs = self.wiring.refs(step.inputs, (*path, "inputs"), parse, step.name)
        else:
            # Seldon: a step without inputs reads the pipeline's inputs, every tensor.
            inputs = [TensorRef(self.name, None, "inputs", None)]
        triggers = self.wiring.refs(step.triggers, (*path, "triggers"), parse, step.name)
        hint = ""
        for key in step.model_extra or {}:
            # A misspelt `inputs` silently makes the step read the pipeline's inputs.
            guess = difflib.get_close_matches(str(key), ["inputs", "triggers"], n=1)
            if guess:
                hint = f" (the step has an unknown field '{key}': did you mean '{guess[0]}'?)"
        input_sources, trigger_sources = self.wiring.sources(
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
        parse = self.wiring.external_parser()
        inputs = self.wiring.refs(spec.external_inputs, (*path, "externalInputs"), parse, None)
        triggers = self.wiring.refs(
            spec.external_triggers, (*path, "externalTriggers"), parse, None
        )
        if not spec.external_inputs:
            self.report.error(
                (*path, "externalTriggers"),
                "externalTriggers without externalInputs forward nothing; add externalInputs",
            )
        input_sources, trigger_sources = self.wiring.sources(
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
        parse = self.wiring.internal_parser(None)
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
            refs = self.wiring.refs(spec.steps, (*path, "steps"), parse, None)
            tensor_map = spec.tensor_map
        for index, ref in enumerate(refs):
            if ref is not None and ref.step is None:
                self.report.error(
                    (*path, "steps", index),
                    f"output step '{ref.spelled(self.name)}' is the pipeline's inputs, not a step; "
                    f"output.steps lists steps ({', '.join(self.step_names)})",
                )
        inputs, _ = self.wiring.sources(refs, [], tensor_map, (*path, "tensorMap"), parse, None, "")
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
