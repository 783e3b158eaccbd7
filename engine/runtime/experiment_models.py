"""Experiments over models inside the worker: each request goes to one candidate.

Two places call an experiment instead of a model: a pipeline step that names the
experiment as its model, and the model node of an experiment's `default` (so a
request produced straight to that model's Kafka inputs is split as over HTTP, and
answered on that model's outputs, where its Kafka caller waits).

The choice follows the weights as the gateway's does, but is drawn from the request
id (a hash), not at random: a record consumed again after a crash, or replayed, goes
to the same candidate. An `x-seldon-route` header naming a candidate with traffic
pins it, as a caller's sticky route pins the gateway's choice (the gateway writes the
candidate it chose on the request, so what it routed is not split twice). The answer
carries the route taken in `x-seldon-route`. A mirror gets a copy of its percent of
the requests on its own inputs topic: its model node answers there, nobody waits.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from engine import headers as h
from engine.codec import encode_avro
from engine.runtime.arrivals import Ready
from engine.runtime.records import Outgoing
from engine.runtimes.base import ModelRuntime
from engine.runtimes.errors import ModelFailure
from engine.topology.specs import ExperimentSpec
from engine.topology.topics import TopicNames

Loaded = ModelRuntime | Exception


@dataclass(frozen=True, eq=False)
class Candidate:
    name: str
    weight: int
    runtime: ModelRuntime


class ExperimentModel(ModelRuntime):
    """An experiment in a model's place: `route` picks the runtime each request calls.

    Unbatchable, so each request is routed (and called) alone; neither lane takes it."""

    batchable = False

    def __init__(
        self,
        spec: ExperimentSpec,
        candidates: tuple[Candidate, ...],
        mirror: tuple[str, int, str] | None,
    ) -> None:
        """`mirror`: (model name, percent, its inputs topic)."""
        self.name = spec.name
        self.spec = spec
        self.candidates = candidates
        self.mirror = mirror
        self.total = sum(c.weight for c in candidates)
        self.in_process = all(c.runtime.in_process for c in candidates)
        self.inputs = candidates[0].runtime.inputs
        self.outputs = candidates[0].runtime.outputs

    def same(self, spec: ExperimentSpec, runtimes: Iterable[ModelRuntime]) -> bool:
        """Built from this spec over these very runtimes (the planner reuses it then)."""
        return self.spec == spec and all(
            c.runtime is r for c, r in zip(self.candidates, runtimes, strict=True)
        )

    def choose(self, request_id: str, headers: list[tuple[str, bytes]]) -> Candidate:
        names = {candidate.name for candidate in self.candidates}
        sticky = h.route_candidate(h.header_value(headers, h.SELDON_ROUTE), names)
        for candidate in self.candidates:
            if candidate.name == sticky and candidate.weight > 0:
                return candidate
        point = zlib.crc32(request_id.encode("utf-8", "replace")) % self.total
        for candidate in self.candidates:
            if point < candidate.weight:
                return candidate
            point -= candidate.weight
        raise AssertionError("unreachable: the point lies below the sum of the weights")

    def route(self, ready: Ready, out: list[Outgoing]) -> tuple[ModelRuntime, Ready]:
        """The runtime `ready` calls, and `ready` with its answer's headers marked with the
        route; the mirror's copy, when this request is one of its share, goes to `out`."""
        request_id = ready.message.id
        chosen = self.choose(request_id, ready.records[0].headers)
        marked = h.with_headers(ready.headers, **{h.SELDON_ROUTE: chosen.name})
        if self.mirror is not None:
            name, percent, topic = self.mirror
            if zlib.crc32(b"mirror:" + request_id.encode("utf-8", "replace")) % 100 < percent:
                copy = ready.message.replace(model_name=name)
                copy_headers = h.with_headers(ready.headers, **{h.SELDON_ROUTE: name})
                out.append(Outgoing(topic, request_id, encode_avro(copy), copy_headers))
        return chosen.runtime, replace(ready, headers=marked)

    def predict(self, inputs: dict) -> dict:
        raise ModelFailure(self.name, "an experiment is called through `route`, not `predict`")

    def close(self) -> None:
        """The candidates belong to the model pool, which closes them."""


def experiment_models(
    experiments: Mapping[str, ExperimentSpec],
    models: Mapping[str, Loaded],
    topics: TopicNames,
    running: Iterable[ModelRuntime | None],
) -> dict[str, ExperimentModel | str]:
    """Each experiment over models: what runs it, or why it cannot run ("model 'x' is not
    loaded"). One built over the same runtimes before (in `running`) is kept, so the
    agents calling it live on."""
    previous = [m for m in running if isinstance(m, ExperimentModel)]
    built: dict[str, ExperimentModel | str] = {}
    for name, spec in sorted(experiments.items()):
        if spec.resource_type != "model":
            continue
        names = [c.name for c in spec.candidates]
        if spec.mirror is not None:
            names.append(spec.mirror.name)
        reasons = [_unavailable(n, models.get(n)) for n in names]
        if any(reasons):
            built[name] = f"experiment '{name}': " + "; ".join(r for r in reasons if r)
            continue
        runtimes = [models[c.name] for c in spec.candidates]
        kept = next((m for m in previous if m.same(spec, runtimes)), None)  # type: ignore[arg-type]
        if kept is not None:
            built[name] = kept
            continue
        mirror = None
        if spec.mirror is not None:
            m = spec.mirror
            mirror = (m.name, m.percent, topics.model_inputs(m.name))
        candidates = tuple(
            Candidate(c.name, c.weight, models[c.name])  # type: ignore[arg-type]
            for c in spec.candidates
        )
        built[name] = ExperimentModel(spec, candidates, mirror)
    return built


def defaults(experiments: Mapping[str, ExperimentModel | str]) -> dict[str, ExperimentModel]:
    """Model name -> the running experiment whose `default` it is (the first by name, as
    the gateway's resolver picks)."""
    found: dict[str, ExperimentModel] = {}
    for model in experiments.values():
        if isinstance(model, ExperimentModel) and model.spec.default is not None:
            found.setdefault(model.spec.default, model)
    return found


def _unavailable(name: str, runtime: Loaded | None) -> str:
    if runtime is None:
        return f"model '{name}' is not loaded"
    if isinstance(runtime, Exception):
        return f"model '{name}' failed to load: {runtime}"
    return ""
