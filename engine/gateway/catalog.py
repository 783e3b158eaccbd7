"""What the gateway knows exists: pipelines and models, their topics, signatures and state.

The gateway asks a `Catalog` and nothing else, so where that knowledge comes
from is swappable: `StaticCatalog.from_topology` serves a compiled topology
(tests, `tensorflux gateway -f SPECS`), `ControlCatalog` follows the control
topic and the workers' status reports (`tensorflux up`, `tensorflux gateway`).
Experiments come with them; whether their candidates are loaded is judged
per request against the same catalog.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol, TypeVar

from engine.config import KafkaSettings
from engine.gateway.experiments import ExperimentInfo
from engine.topology import PipelineGraph, TopicNames, Topology
from engine.topology.specs import ModelSpec, ResourceType

log = logging.getLogger("tensorflux.gateway")

State = Literal["Ready", "Loading", "Pending", "Failed"]
"""A resource's state as the gateway serves it (Seldon's names)."""


@dataclass(frozen=True)
class TensorInfo:
    """One tensor of a signature, as OIP model metadata lists it (-1: any size)."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def document(self) -> dict[str, object]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class ModelInfo:
    """A loaded model: where direct inference over Kafka goes, and what it declares."""

    name: str
    inputs_topic: str
    outputs_topic: str
    platform: str = ""
    """"onnx", "python" or "" when unknown."""
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    state: State = "Ready"
    reason: str = ""


@dataclass(frozen=True)
class PipelineInfo:
    """A loaded pipeline: the topics a caller writes and waits on, and its signature."""

    name: str
    inputs_topic: str
    outputs_topic: str
    steps: tuple[str, ...] = ()
    inputs: tuple[TensorInfo, ...] = ()
    outputs: tuple[TensorInfo, ...] = ()
    state: State = "Ready"
    reason: str = ""


_Info = TypeVar("_Info", "PipelineInfo", "ModelInfo")


class Catalog(Protocol):
    """The gateway's only source of what exists; None means "no such name" (404)."""

    def pipeline(self, name: str) -> PipelineInfo | None: ...

    def model(self, name: str) -> ModelInfo | None: ...

    def names(self) -> tuple[Sequence[str], Sequence[str]]:
        """(pipeline names, model names) known now."""
        ...

    def experiment(self, name: str) -> ExperimentInfo | None: ...

    def experiment_on(self, kind: ResourceType, name: str) -> ExperimentInfo | None:
        """The experiment whose `default` is this model or pipeline, if any."""
        ...

    def experiment_names(self) -> Sequence[str]: ...

    def workers_reporting(self) -> bool:
        """Whether any worker reports on this namespace now (False: none runs, as
        with workers scaled to zero; a Pending resource then waits for one)."""
        ...


@dataclass
class StaticCatalog:
    """A fixed set of pipelines and models, everything assumed Ready."""

    pipelines: Mapping[str, PipelineInfo] = field(default_factory=dict)
    models: Mapping[str, ModelInfo] = field(default_factory=dict)
    experiments: Mapping[str, ExperimentInfo] = field(default_factory=dict)

    @classmethod
    def from_topology(
        cls, topology: Topology, topics: TopicNames, *, signatures: bool = True
    ) -> StaticCatalog:
        """Everything `topology` holds. With `signatures`, ONNX models are opened once
        (not run) to read their declared inputs and outputs for metadata."""
        return cls(*_infos(topology, topics, {}, signatures=signatures), _experiments(topology))

    def pipeline(self, name: str) -> PipelineInfo | None:
        return self.pipelines.get(name)

    def model(self, name: str) -> ModelInfo | None:
        return self.models.get(name)

    def names(self) -> tuple[Sequence[str], Sequence[str]]:
        return sorted(self.pipelines), sorted(self.models)

    def experiment(self, name: str) -> ExperimentInfo | None:
        return self.experiments.get(name)

    def experiment_on(self, kind: ResourceType, name: str) -> ExperimentInfo | None:
        # Two experiments on one default: the first by name wins, every time.
        return next(
            (
                self.experiments[e]
                for e in sorted(self.experiments)
                if self.experiments[e].default == name and self.experiments[e].resource_type == kind
            ),
            None,
        )

    def experiment_names(self) -> Sequence[str]:
        return sorted(self.experiments)

    def workers_reporting(self) -> bool:
        return True


class ControlCatalog:
    """Follows the control topic (specs) and the status topic (workers' reports).

    A reader thread keeps both up to date; a resource is Ready when any worker
    says so, Failed when one reports a failure, Pending before any report.
    """

    def __init__(
        self, settings: KafkaSettings, *, poll_s: float = 0.2, worker_in_process: bool = False
    ) -> None:
        """`worker_in_process` (`tensorflux up`): a worker is sure to come, so a
        Pending resource counts as loading even before that worker's first report."""
        from engine.topic_reader import TopicReader

        self.settings = settings
        self.topics = settings.topics()
        self._control = TopicReader(settings, self.topics.control())
        self._status = TopicReader(settings, self.topics.status())
        self._lock = threading.Lock()
        self._signatures: dict[str, tuple[str, tuple[TensorInfo, ...], tuple[TensorInfo, ...]]] = {}
        self._static = StaticCatalog()
        self._compiled: tuple[dict[str, str], Any, dict[str, str], Any] | None = None
        """The last specs compiled: (documents, topology, failures, (pipelines, models))."""
        self._reporting = worker_in_process
        self._worker_in_process = worker_in_process
        self._poll_s = poll_s
        self._stop = threading.Event()
        self._control.read_to_end()
        self._status.read_to_end()
        self._rebuild()
        self._thread = threading.Thread(target=self._follow, name="gateway-catalog", daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        while not self._stop.is_set():
            try:
                changed = self._control.poll(self._poll_s / 2)
                changed |= self._status.poll(self._poll_s / 2)
                if changed:
                    self._rebuild()
            except Exception:  # keep serving what we knew
                log.exception("control catalog: cannot follow the control topic")
                self._stop.wait(1.0)

    def _rebuild(self) -> None:
        from engine.runtime.control import combine_reports, compile_documents

        documents = {key: value.decode() for key, value in self._control.values.items()}
        if self._compiled is None or self._compiled[0] != documents:
            # Only a change of specs recompiles: the status topic moves on every worker
            # heartbeat (5 s), and compiling examples/ takes tens of ms.
            topology, failures = compile_documents(documents, self.topics)
            infos = _infos(topology, self.topics, self._signatures, signatures=True)
            self._compiled = (documents, topology, failures, infos)
        _, topology, failures, (pipelines, models) = self._compiled
        reports = [json.loads(value) for value in self._status.values.values()]
        states: dict[str, tuple[State, str]] = {
            key: (state, reason) for key, (state, reason, _) in combine_reports(reports).items()
        }
        for key, reason in failures.items():
            states[key] = ("Failed", reason)
        pipelines = {
            name: _with_state(info, states.get(f"pipeline/{name}", ("Pending", "")))
            for name, info in pipelines.items()
        }
        models = {
            name: _with_state(info, states.get(f"model/{name}", ("Pending", "")))
            for name, info in models.items()
        }
        with self._lock:
            self._static = StaticCatalog(pipelines, models, _experiments(topology))
            self._reporting = self._worker_in_process or bool(reports)

    def pipeline(self, name: str) -> PipelineInfo | None:
        with self._lock:
            return self._static.pipeline(name)

    def model(self, name: str) -> ModelInfo | None:
        with self._lock:
            return self._static.model(name)

    def names(self) -> tuple[Sequence[str], Sequence[str]]:
        with self._lock:
            return self._static.names()

    def experiment(self, name: str) -> ExperimentInfo | None:
        with self._lock:
            return self._static.experiment(name)

    def experiment_on(self, kind: ResourceType, name: str) -> ExperimentInfo | None:
        with self._lock:
            return self._static.experiment_on(kind, name)

    def experiment_names(self) -> Sequence[str]:
        with self._lock:
            return self._static.experiment_names()

    def workers_reporting(self) -> bool:
        with self._lock:
            return self._reporting

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._control.close()
        self._status.close()


def _experiments(topology: Topology) -> dict[str, ExperimentInfo]:
    # Kept even when a candidate is missing: the gateway then answers 503 naming it.
    return {name: ExperimentInfo.from_spec(spec) for name, spec in topology.experiments.items()}


def _with_state(info: _Info, state: tuple[State, str]) -> _Info:
    return replace(info, state=state[0], reason=state[1])


# -- signatures ------------------------------------------------------------------------


def _infos(
    topology: Topology,
    topics: TopicNames,
    cache: dict[str, tuple[str, tuple[TensorInfo, ...], tuple[TensorInfo, ...]]],
    *,
    signatures: bool,
) -> tuple[dict[str, PipelineInfo], dict[str, ModelInfo]]:
    models: dict[str, ModelInfo] = {}
    for name, spec in topology.models.items():
        platform, inputs, outputs = _signature(spec, cache) if signatures else ("", (), ())
        models[name] = ModelInfo(
            name, topics.model_inputs(name), topics.model_outputs(name), platform, inputs, outputs
        )
    pipelines = {
        name: PipelineInfo(
            name,
            graph.input_topic,
            graph.output_topic,
            tuple(node.name for node in graph.steps),
            *_pipeline_signature(graph, models),
        )
        for name, graph in topology.pipelines.items()
    }
    return pipelines, models


def _signature(
    spec: ModelSpec,
    cache: dict[str, tuple[str, tuple[TensorInfo, ...], tuple[TensorInfo, ...]]],
) -> tuple[str, tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    """(platform, inputs, outputs); only ONNX files are opened (python models run user code)."""
    from engine.runtimes import OnnxModel, resolve_artifact

    key = f"{spec.name}|{spec.storage_uri}|{spec.requirements}"
    if key in cache:
        return cache[key]
    try:
        kind, path = resolve_artifact(spec)
    except Exception:
        return "", (), ()
    result: tuple[str, tuple[TensorInfo, ...], tuple[TensorInfo, ...]] = (kind, (), ())
    if kind == "onnx":
        try:
            with OnnxModel(spec.name, path) as runtime:
                result = (
                    kind,
                    tuple(TensorInfo(s.name, s.datatype, s.shape) for s in runtime.inputs),
                    tuple(TensorInfo(s.name, s.datatype, s.shape) for s in runtime.outputs),
                )
        except Exception as error:
            log.warning("cannot read the signature of model %s: %s", spec.name, error)
    cache[key] = result
    return result


def _pipeline_signature(
    graph: PipelineGraph, models: Mapping[str, ModelInfo]
) -> tuple[tuple[TensorInfo, ...], tuple[TensorInfo, ...]]:
    """Best effort: the pipeline's inputs are what its first steps' models take
    (tensorMap undone), its outputs what the output node selects (tensorMap applied)."""
    inputs: dict[str, TensorInfo] = {}
    for node in graph.steps:
        model = models.get(node.model or "")
        if model is None:
            continue
        for source in node.inputs:
            if source.topic != graph.input_topic:
                continue
            for tensor in model.inputs:
                topic_name = next(
                    (old for old, new in source.renames if new == tensor.name), tensor.name
                )
                if source.ref.tensor is not None and source.ref.tensor != topic_name:
                    continue
                inputs.setdefault(topic_name, TensorInfo(topic_name, tensor.datatype, tensor.shape))
    outputs: dict[str, TensorInfo] = {}
    steps = {node.name: node for node in graph.steps}
    for source in graph.output_node.inputs:
        node = steps.get(source.ref.step or "")
        model = models.get(node.model or "") if node is not None else None
        if model is None:
            continue
        declared = model.outputs if source.ref.port == "outputs" else model.inputs
        for tensor in declared:
            if source.ref.tensor is not None and source.ref.tensor != tensor.name:
                continue
            name = source.rename(tensor.name)
            outputs.setdefault(name, TensorInfo(name, tensor.datatype, tensor.shape))
    return tuple(inputs.values()), tuple(outputs.values())
