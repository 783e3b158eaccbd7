"""The control plane on Kafka: what is loaded, and what the workers say of it.

Specs live on a compacted control topic, one record per resource (key
`model/<name>`, `pipeline/<name>` or `experiment/<name>`, value its YAML, a
tombstone for unloaded), so every worker rebuilds the same set by reading it
from the start and follows loads and unloads as they come. Workers report
each resource's state on a compacted status topic, keyed by worker.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Literal

import yaml
from confluent_kafka import Producer

from engine.admin import TopicAdmin
from engine.config import KafkaSettings
from engine.errors import TensorfluxError
from engine.runtime.reports import (
    PENDING,
    ResourceStatus,
    combine_reports,
    experiment_state,
    resource_key,
)
from engine.topic_reader import COMPACTED, TopicReader
from engine.topology import (
    Problem,
    SpecSet,
    TopicNames,
    Topology,
    compile_collecting,
    read_text,
)
from engine.topology.loader import read_files

KINDS = {"Model": "model", "Pipeline": "pipeline", "Experiment": "experiment"}


class ControlError(TensorfluxError):
    """A control-plane request could not be carried out."""


def documents_of(specs: SpecSet) -> dict[str, str]:
    """Each resource as a YAML document, keyed for the control topic.

    A model's relative storageUri is written resolved (absolute), so a worker
    started elsewhere in the file system finds the same artifact.
    """
    documents: dict[str, str] = {}
    for kind, resources in (
        ("model", specs.models),
        ("pipeline", specs.pipelines),
        ("experiment", specs.experiments),
    ):
        for name, spec in resources.items():
            data = dict(spec.origin.data)
            if kind == "model" and getattr(spec, "storage_uri", None):
                data["spec"] = {**data.get("spec", {}), "storageUri": spec.storage_uri}
            documents[resource_key(kind, name)] = yaml.safe_dump(data, sort_keys=False)
    return documents


def compile_documents(
    documents: Mapping[str, str], topics: TopicNames
) -> tuple[Topology, dict[str, str]]:
    """The topology of what compiles, and a reason for each resource that does not."""
    text = "\n---\n".join(documents[key] for key in sorted(documents))
    specs = read_text(text, source="control topic")
    topology, problems, _ = compile_collecting(specs, topics)
    return topology, failures_by_resource(problems)


def failures_by_resource(problems: Iterable[Problem]) -> dict[str, str]:
    reasons: dict[str, list[str]] = {}
    for problem in problems:
        if not problem.resource:
            continue
        kind, _, quoted = problem.resource.partition(" ")
        step = f"step '{problem.step}': " if problem.step else ""
        reasons.setdefault(resource_key(kind, quoted.strip("'")), []).append(step + problem.message)
    return {key: "; ".join(messages) for key, messages in reasons.items()}


@dataclass(frozen=True)
class LoadedResource:
    """One resource a load published, and what that did to the engine."""

    key: str
    change: Literal["loaded", "replaced", "unchanged"]

    def __str__(self) -> str:
        if self.change == "replaced":
            return f"replaced {self.key} (a different spec was loaded under that name)"
        if self.change == "unchanged":
            return f"unchanged {self.key} (the same spec was already loaded)"
        return f"loaded {self.key}"


def _change(before: str | None, after: str) -> Literal["loaded", "replaced", "unchanged"]:
    if before is None:
        return "loaded"
    return "unchanged" if before == after else "replaced"


def _nothing_loaded(problems: list[str]) -> str:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    return "\n".join([f"nothing loaded; {count}:", *(f"  {problem}" for problem in problems)])


def not_loaded(kind: str, name: str, loaded: Iterable[str]) -> str:
    """Why `kind/name` cannot be found, naming the other kind that has that name, if any
    (an experiment is not a model, though it answers under its own name)."""
    others = [key.partition("/")[0] for key in loaded if key.partition("/")[2] == name]
    message = f"no {kind} '{name}' is loaded"
    if others:
        other = others[0]
        verb = {"experiment": "stop"}.get(other, "unload")
        article = "an" if other[0] in "aeiou" else "a"
        message += (
            f"; {article} {other} is: see `tensorflux {other} status {name}` ({other} {verb})"
        )
    return message


class ControlPlane:
    """What the CLI uses: load, unload, list and status."""

    def __init__(self, settings: KafkaSettings) -> None:
        self.settings = settings
        self.topics = settings.topics()
        TopicAdmin(settings).ensure(
            [self.topics.control(), self.topics.status()], partitions=1, config=COMPACTED
        )
        # Not idempotent: on the embedded broker an idempotent producer's flush waited
        # ~0.5 s about one time in two (its producer id), which was half of a `load` or
        # `unload`. Nothing is lost by it: a publish writes each key once and is flushed
        # before the command ends, so a retry's duplicate is the same record again, and
        # the control topic is compacted and read to its end by key.
        self._producer = Producer(settings.producer_config(**{"enable.idempotence": False}))

    def loaded(self) -> dict[str, str]:
        reader = TopicReader(self.settings, self.topics.control(), one_shot=True)
        try:
            return {key: value.decode() for key, value in reader.read_to_end().items()}
        finally:
            reader.close()

    def load(self, paths: Iterable[str]) -> list[LoadedResource]:
        """Validate the files against what is loaded, then publish every resource they hold.

        All or nothing: one mistake anywhere loads none of them (a file mixing Models and
        Pipelines loads whole), and the error lists every problem with its file and line.
        """
        specs = read_files(paths)
        documents = documents_of(specs)
        loaded = self.loaded()
        problems = [str(p) for p in self._problems(specs, documents, loaded)]
        if not problems and not documents:
            problems = [f"{', '.join(map(str, paths))}: no Model, Pipeline or Experiment found"]
        if problems:
            raise ControlError(_nothing_loaded(problems))
        self._publish(documents)
        return [LoadedResource(key, _change(loaded.get(key), documents[key])) for key in documents]

    def _problems(
        self, specs: SpecSet, documents: Mapping[str, str], loaded: Mapping[str, str]
    ) -> list[Problem]:
        """What is wrong with `specs`, judged beside the resources already loaded (those the
        files replace excepted), each problem with its file and line."""
        others = {key: text for key, text in loaded.items() if key not in documents}
        context, _ = compile_documents(others, self.topics)
        known_models = {key.partition("/")[2] for key in others if key.startswith("model/")}
        known_models |= {
            name for name, exp in context.experiments.items() if exp.resource_type == "model"
        }
        _, problems, _ = compile_collecting(
            specs,
            self.topics,
            # None, as with no model anywhere: a pipeline may be loaded before its models.
            known_models=known_models or None,
            known_pipelines=context.pipelines,
        )
        return problems

    def unload(self, kind: str, name: str) -> list[str]:
        """Stop a resource; its topics stay unless the pipeline says `cleanTopicsOnDelete`.

        Returns the topics deleted.
        """
        loaded = self.loaded()
        key = resource_key(kind, name)
        if key not in loaded:
            raise ControlError(not_loaded(kind, name, loaded))
        graph = None
        if kind == "pipeline":
            topology, _ = compile_documents(loaded, self.topics)
            graph = topology.pipelines.get(name)
        self._publish({key: None})
        if graph is None or not graph.clean_topics_on_delete:
            return []
        self._wait_withdrawn(key)
        topics = sorted(graph.owned_topics())
        TopicAdmin(self.settings).delete(topics)
        return topics

    def _wait_withdrawn(self, key: str, within_s: float = 15.0) -> None:
        """Until no worker reports `key`: its agents have stopped reading the topics."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            reports = self._reports()
            if not any(resource_key(r["kind"], r["name"]) == key for r in reports):
                return
            time.sleep(0.2)

    def _publish(self, documents: Mapping[str, str | None]) -> None:
        for key, text in documents.items():
            self._producer.produce(
                self.topics.control(), None if text is None else text.encode(), key
            )
        if self._producer.flush(15):
            raise ControlError("the control topic did not acknowledge the change")

    def status(self) -> list[ResourceStatus]:
        # The two topics read side by side: each read ends with a quiet moment (IDLE_END_S).
        with ThreadPoolExecutor(max_workers=1) as pool:
            reports = pool.submit(self._reports)
            loaded = self.loaded()
            combined = combine_reports(reports.result())
        experiments = {
            key for key in loaded if key.startswith("experiment/") and key not in combined
        }
        if experiments:  # no worker reports experiments: the gateways run them
            topology, _ = compile_documents(loaded, self.topics)
            for key in experiments:
                spec = topology.experiments.get(key.partition("/")[2])
                if spec is not None:
                    combined[key] = experiment_state(spec, combined)
        statuses = []
        for key in sorted(loaded):
            kind, _, name = key.partition("/")
            statuses.append(ResourceStatus(kind, name, *combined.get(key, PENDING)))
        return statuses

    def _reports(self) -> list[dict]:
        """Every worker's latest word on every resource (the status topic, compacted)."""
        reader = TopicReader(self.settings, self.topics.status(), one_shot=True)
        try:
            return [json.loads(value) for value in reader.read_to_end().values()]
        finally:
            reader.close()

    def close(self) -> None:
        self._producer.flush(5)


def new_worker_id() -> str:
    return f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
