"""A pipeline's references, parsed and wired: which topics a node reads, and how
the tensorMap renames what it reads.

Each bad reference is reported once, at its YAML path, with what would fix it.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from engine.topology.graph import Source, TensorRef
from engine.topology.references import ReferenceProblem, parse_external, parse_internal
from engine.topology.report import Report
from engine.topology.topics import TopicNames


class Wiring:
    """References of pipeline `name` to tensors, sources and topics."""

    def __init__(
        self,
        name: str,
        step_names: Sequence[str],
        topics: TopicNames,
        report: Report,
        pipeline_steps: Mapping[str, Collection[str]],
        invalid_pipelines: Collection[str],
    ) -> None:
        self.name = name
        self.step_names = step_names
        self.topics = topics
        self.report = report
        self.pipeline_steps = pipeline_steps
        self.invalid_pipelines = invalid_pipelines
        self.failed_heads: set[str] = set()
        """First parts of references already reported as bad (to report each once)."""

    def internal_parser(self, step: str | None) -> Callable[[str], TensorRef]:
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

    def external_parser(self) -> Callable[[str], TensorRef]:
        return lambda text: parse_external(
            text, self.name, self.pipeline_steps, self.invalid_pipelines
        )

    def refs(
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

    def sources(
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
            return Source(ref=ref, topic=self.topic(ref), renames=tuple(renames[ref]))

        return tuple(source(ref) for ref in inputs), tuple(source(ref) for ref in triggers)

    def topic(self, ref: TensorRef) -> str:
        if ref.step is None:
            if ref.port == "inputs":
                return self.topics.pipeline_inputs(ref.pipeline)
            return self.topics.pipeline_outputs(ref.pipeline)
        if ref.port == "inputs":
            return self.topics.step_inputs(ref.pipeline, ref.step)
        return self.topics.step_outputs(ref.pipeline, ref.step)
