"""Which pipeline, model or experiment a request names, and what to say about it.

Pure: it reads a `Catalog` and nothing else (no HTTP, no Kafka), so name
resolution, experiment routing, metadata and readiness are tested without a
server. Failures are `GatewayError`s; the status table in `statuses.py` turns
them into HTTP answers.

`/v2/models/{name}` also serves pipelines, so stock OIP clients (which only
know models) reach them: a model of that name wins; `NAME.pipeline` or the
header `seldon-model: NAME.pipeline` (Seldon Core 2's spelling) picks the
pipeline explicitly, `NAME.experiment` an experiment. A name that no model or
pipeline has may be an experiment's; an active experiment on a model or
pipeline takes the inference requests sent to it (its `default`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from engine.gateway.catalog import Catalog, ModelInfo, PipelineInfo
from engine.gateway.errors import NotReady, UnknownName
from engine.gateway.experiments import ExperimentInfo, choose_candidate, mirror_this_one
from engine.topology.specs import ResourceType

PIPELINE_SUFFIX = ".pipeline"
EXPERIMENT_SUFFIX = ".experiment"

Prefer = ResourceType
"""Which endpoint family was called: /v2/models or /v2/pipelines."""

Target = PipelineInfo | ModelInfo


@dataclass(frozen=True)
class Destination:
    """Where one inference request goes: the target, the experiment candidate it
    is (for `x-seldon-route`, None outside experiments) and who gets a copy."""

    target: Target
    route: str | None = None
    mirror: Target | None = None


def label(target: Target) -> str:
    """ "pipeline 'p'" or "model 'm'", as error messages name a target."""
    kind = "pipeline" if isinstance(target, PipelineInfo) else "model"
    return f"{kind} '{target.name}'"


class Resolver:
    """Names to targets over one catalog; `rng` draws experiment candidates and mirrors."""

    def __init__(self, catalog: Catalog, rng: random.Random | None = None) -> None:
        self.catalog = catalog
        self.rng = rng or random.Random()

    # -- names ---------------------------------------------------------------------------

    def resolve(
        self, name: str, prefer: Prefer, *, seldon_model: str = "", split: bool = True
    ) -> Target | ExperimentInfo:
        """What `name` (and the `seldon-model` header) names, or UnknownName.

        Experiments: `NAME.experiment` (path or header), a name no model or
        pipeline has, or, with `split` (inference), the default of an active one.
        """
        for spelled in (seldon_model, name):
            if spelled.endswith(EXPERIMENT_SUFFIX):
                return self.experiment_named(spelled.removesuffix(EXPERIMENT_SUFFIX), prefer)
        try:
            target = self.lookup(name, prefer, seldon_model=seldon_model)
        except UnknownName as failure:
            try:
                return self.experiment_named(name, prefer)
            except UnknownName:
                pass
            if prefer == "model" and self.catalog.experiment_names():
                pipelines, models = self.catalog.names()
                known = [*models, *pipelines, *self.catalog.experiment_names()]
                raise UnknownName("model, pipeline or experiment", name, known) from None
            raise failure from None
        kind: ResourceType = "pipeline" if isinstance(target, PipelineInfo) else "model"
        experiment = self.catalog.experiment_on(kind, target.name) if split else None
        if experiment is not None and not self.inactive(experiment):
            return experiment
        return target

    def lookup(self, name: str, prefer: Prefer, *, seldon_model: str = "") -> Target:
        """A pipeline or model by name; on /v2/models a model wins unless the
        name or the seldon-model header ends in '.pipeline'."""
        if prefer == "model" and seldon_model.endswith(PIPELINE_SUFFIX):
            name, prefer = seldon_model.removesuffix(PIPELINE_SUFFIX), "pipeline"
        elif prefer == "model" and name.endswith(PIPELINE_SUFFIX):
            name, prefer = name.removesuffix(PIPELINE_SUFFIX), "pipeline"
        elif prefer == "model":
            model = self.catalog.model(name)
            if model is not None:
                return model
        pipeline = self.catalog.pipeline(name)
        if pipeline is not None:
            return pipeline
        pipelines, models = self.catalog.names()
        if prefer == "model":
            raise UnknownName("model or pipeline", name, [*models, *pipelines])
        raise UnknownName("pipeline", name, list(pipelines))

    def experiment_named(self, name: str, prefer: Prefer) -> ExperimentInfo:
        # /v2/pipelines serves pipelines only, so only experiments over pipelines.
        wanted = ("pipeline",) if prefer == "pipeline" else ("model", "pipeline")
        experiment = self.catalog.experiment(name)
        if experiment is None or experiment.resource_type not in wanted:
            known = [
                n
                for n in self.catalog.experiment_names()
                if (e := self.catalog.experiment(n)) is not None and e.resource_type in wanted
            ]
            kind = "pipeline experiment" if prefer == "pipeline" else "experiment"
            raise UnknownName(kind, name, known)
        return experiment

    # -- experiments ---------------------------------------------------------------------

    def candidate(self, experiment: ExperimentInfo, name: str) -> Target | None:
        if experiment.resource_type == "pipeline":
            return self.catalog.pipeline(name)
        return self.catalog.model(name)

    def inactive(self, experiment: ExperimentInfo) -> str:
        """Why the experiment cannot split traffic now ("" when it can)."""
        unready = []
        for name, _ in experiment.candidates:
            target = self.candidate(experiment, name)
            state = "not loaded" if target is None else target.state
            if state != "Ready":
                unready.append(f"{experiment.resource_type} '{name}' ({state})")
        if unready:
            return (
                f"experiment '{experiment.name}' is not active: its candidates "
                f"{', '.join(unready)} are not Ready"
            )
        if not any(weight > 0 for _, weight in experiment.candidates):
            return f"experiment '{experiment.name}' has no candidate with a positive weight"
        return ""

    def route(self, found: Target | ExperimentInfo, sticky: str | None = None) -> Destination:
        """Where an inference request for `found` goes. For an experiment: one
        candidate by weight (or the `sticky` x-seldon-route while it has traffic),
        and a Ready mirror for its percent of requests; NotReady while inactive."""
        if not isinstance(found, ExperimentInfo):
            return Destination(found)
        reason = self.inactive(found)
        if reason:
            raise NotReady(reason)
        chosen = choose_candidate(found, self.rng, sticky)
        target = self.candidate(found, chosen)
        if target is None:  # unloaded since `inactive` looked
            raise NotReady(f"candidate '{chosen}' is not loaded")
        mirror_name = mirror_this_one(found, self.rng)
        # The chosen candidate already has the request; a second copy would race its answer.
        mirror = self.candidate(found, mirror_name) if mirror_name not in (None, chosen) else None
        if mirror is not None and mirror.state != "Ready":
            mirror = None
        return Destination(target, chosen, mirror)

    # -- what the GET endpoints answer ---------------------------------------------------

    def metadata(self, found: Target | ExperimentInfo) -> dict[str, Any]:
        """OIP model metadata; an experiment shows its first loaded candidate's
        signature under its own name."""
        if not isinstance(found, ExperimentInfo):
            return _metadata(found)
        for name, _ in found.candidates:
            target = self.candidate(found, name)
            if target is not None:
                return {**_metadata(target), "name": found.name}
        return {"name": found.name, "versions": [], "platform": "", "inputs": [], "outputs": []}

    def unready(self) -> str:
        """Why the server is not ready ("" when it is): the pipelines and models still
        coming up. Loading ones always; Pending ones (no worker reported them yet) while
        any worker runs: with none (scaled to zero) requests wait in Kafka for one, so
        the gateway stays ready. A Failed one does not hold the server back: it will
        not become Ready by waiting, and every other name still serves."""
        pipelines, models = self.catalog.names()
        coming = ("Pending", "Loading") if self.catalog.workers_reporting() else ("Loading",)
        waiting = [
            f"{label(target)} ({target.state})"
            for target in (
                *(self.catalog.pipeline(n) for n in pipelines),
                *(self.catalog.model(n) for n in models),
            )
            if target is not None and target.state in coming
        ]
        return f"not Ready yet: {', '.join(waiting)}" if waiting else ""

    def readiness(self, found: Target | ExperimentInfo) -> dict[str, Any]:
        """{"name", "ready"}; NotReady for a target that failed or an inactive experiment."""
        if isinstance(found, ExperimentInfo):
            reason = self.inactive(found)
            if reason:
                raise NotReady(reason)
            return {"name": found.name, "ready": True}
        if found.state == "Failed":
            raise NotReady(f"{label(found)} failed: {found.reason}")
        return {"name": found.name, "ready": found.state == "Ready"}


def _metadata(target: Target) -> dict[str, Any]:
    platform = "tensorflux-pipeline" if isinstance(target, PipelineInfo) else target.platform or ""
    return {
        "name": target.name,
        "versions": [],
        "platform": platform,
        "inputs": [t.document() for t in target.inputs],
        "outputs": [t.document() for t in target.outputs],
    }
