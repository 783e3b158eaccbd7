"""The gateway's name resolution, experiment routing and readiness, without HTTP.

The resolver reads a catalog and nothing else, so each rule of Seldon's
addressing is checked here on plain values; the status table is checked on
the failures it maps.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from engine.codec import InvalidJson
from engine.gateway import ExperimentInfo, ModelInfo, PipelineInfo, StaticCatalog, TensorInfo
from engine.gateway.errors import (
    BadRequest,
    DeliveryFailed,
    GatewayError,
    NotReady,
    ReplyTimeout,
    RequestInFlight,
    StepFailed,
    UnknownName,
)
from engine.gateway.resolver import Resolver
from engine.gateway.statuses import error_response, status_of
from engine.messages import ErrorRecord


def model(name: str, **changes: object) -> ModelInfo:
    return replace(ModelInfo(name, f"m.{name}.in", f"m.{name}.out"), **changes)  # type: ignore[arg-type]


def pipeline(name: str, **changes: object) -> PipelineInfo:
    return replace(PipelineInfo(name, f"p.{name}.in", f"p.{name}.out"), **changes)  # type: ignore[arg-type]


def catalog(**experiments: ExperimentInfo) -> StaticCatalog:
    # "both" is a model and a pipeline; "p" a pipeline only.
    return StaticCatalog(
        pipelines={n: pipeline(n) for n in ("both", "p", "q")},
        models={n: model(n) for n in ("both", "a", "b", "m")},
        experiments=experiments,
    )


class Always(random.Random):
    """A random source whose randrange answers `point`."""

    def __init__(self, point: int) -> None:
        super().__init__(0)
        self.point = point

    def randrange(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
        return self.point


# -- names -----------------------------------------------------------------------------


def test_on_models_a_model_wins_and_the_pipeline_is_asked_for_by_suffix_or_header() -> None:
    resolver = Resolver(catalog())
    assert resolver.resolve("both", "model") == model("both")
    assert resolver.resolve("both", "pipeline") == pipeline("both")
    assert resolver.resolve("both.pipeline", "model") == pipeline("both")
    assert resolver.resolve("anything", "model", seldon_model="both.pipeline") == pipeline("both")
    # a pipeline no model shadows is found from /v2/models too
    assert resolver.resolve("p", "model") == pipeline("p")


def test_unknown_names_list_what_is_loaded_for_that_endpoint() -> None:
    resolver = Resolver(catalog())
    with pytest.raises(UnknownName) as on_models:
        resolver.resolve("nope", "model")
    assert str(on_models.value) == (
        "no model or pipeline 'nope' is loaded; loaded: 'a', 'b', 'both', 'm', 'both', 'p', 'q'"
    )
    with pytest.raises(UnknownName) as on_pipelines:
        resolver.resolve("a", "pipeline")
    assert str(on_pipelines.value) == "no pipeline 'a' is loaded; loaded: 'both', 'p', 'q'"


def test_experiments_are_named_by_suffix_header_or_a_free_name() -> None:
    ab = ExperimentInfo("ab", "model", (("a", 1), ("b", 1)))
    resolver = Resolver(catalog(ab=ab))
    assert resolver.resolve("ab", "model") == ab
    assert resolver.resolve("ab.experiment", "model") == ab
    assert resolver.resolve("a", "model", seldon_model="ab.experiment") == ab
    with pytest.raises(UnknownName) as unknown:
        resolver.resolve("nope", "model")
    assert "no model, pipeline or experiment 'nope'" in str(unknown.value)
    assert "'ab'" in str(unknown.value)
    # /v2/pipelines knows only experiments over pipelines
    with pytest.raises(UnknownName) as on_pipelines:
        resolver.resolve("ab.experiment", "pipeline")
    assert str(on_pipelines.value) == "no pipeline experiment 'ab' is loaded; loaded: none"


def test_an_active_experiment_takes_its_defaults_inference_but_not_its_metadata() -> None:
    split = ExperimentInfo("split", "model", (("a", 1), ("b", 1)), default="a")
    resolver = Resolver(catalog(split=split))
    assert resolver.resolve("a", "model") == split
    assert resolver.resolve("a", "model", split=False) == model("a")
    assert resolver.resolve("b", "model") == model("b")


def test_an_inactive_experiment_leaves_its_default_alone_and_is_not_ready() -> None:
    ghost = ExperimentInfo("ghost", "model", (("a", 1), ("gone", 1)), default="a")
    loading = catalog(ghost=ghost)
    loading.models["b"] = model("b", state="Loading")  # type: ignore[index]
    waits = ExperimentInfo("waits", "model", (("a", 1), ("b", 1)))
    loading.experiments["waits"] = waits  # type: ignore[index]
    resolver = Resolver(loading)
    assert resolver.resolve("a", "model") == model("a")
    assert resolver.inactive(ghost) == (
        "experiment 'ghost' is not active: its candidates model 'gone' (not loaded) are not Ready"
    )
    assert "model 'b' (Loading)" in resolver.inactive(waits)
    with pytest.raises(NotReady, match="'gone' \\(not loaded\\)"):
        resolver.readiness(ghost)
    with pytest.raises(NotReady, match="not active"):
        resolver.route(ghost)
    zero = ExperimentInfo("zero", "model", (("a", 0),))
    assert resolver.inactive(zero) == "experiment 'zero' has no candidate with a positive weight"


# -- routing ---------------------------------------------------------------------------


def test_routing_draws_by_weight_keeps_a_sticky_route_and_mirrors() -> None:
    ab = ExperimentInfo("ab", "model", (("a", 1), ("b", 3)), mirror=("m", 50))
    resolver = Resolver(catalog(ab=ab), Always(0))
    first = resolver.route(ab)
    assert (first.target, first.route, first.mirror) == (model("a"), "a", model("m"))
    resolver.rng = Always(60)  # the sticky route wins the draw; 60 is over the mirror's 50%
    sticky = resolver.route(ab, sticky="b")
    assert (sticky.target, sticky.route, sticky.mirror) == (model("b"), "b", None)
    plain = resolver.route(model("a"))
    assert (plain.target, plain.route, plain.mirror) == (model("a"), None, None)


def test_the_mirror_gets_no_copy_when_it_is_the_chosen_one_or_not_ready() -> None:
    self_mirror = ExperimentInfo("s", "model", (("a", 1),), mirror=("a", 100))
    to_loading = ExperimentInfo("l", "model", (("a", 1),), mirror=("b", 100))
    loading = catalog(s=self_mirror, l=to_loading)
    loading.models["b"] = model("b", state="Loading")  # type: ignore[index]
    resolver = Resolver(loading, Always(0))
    assert resolver.route(self_mirror).mirror is None
    assert resolver.route(to_loading).mirror is None


# -- metadata and readiness ------------------------------------------------------------


def test_metadata_of_targets_and_of_experiments() -> None:
    signature = (TensorInfo("INPUT", "FP32", (-1, 4)),)
    models = catalog()
    models.models["a"] = model("a", platform="onnx", inputs=signature)  # type: ignore[index]
    ab = ExperimentInfo("ab", "model", (("gone", 1), ("a", 1)))
    empty = ExperimentInfo("empty", "model", (("gone", 1),))
    resolver = Resolver(models)
    assert resolver.metadata(models.models["a"]) == {
        "name": "a",
        "versions": [],
        "platform": "onnx",
        "inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [-1, 4]}],
        "outputs": [],
    }
    assert resolver.metadata(pipeline("p"))["platform"] == "tensorflux-pipeline"
    assert resolver.metadata(ab)["name"] == "ab"
    assert resolver.metadata(ab)["platform"] == "onnx"  # its first loaded candidate's
    assert resolver.metadata(empty) == {
        "name": "empty",
        "versions": [],
        "platform": "",
        "inputs": [],
        "outputs": [],
    }


def test_readiness_of_ready_loading_and_failed_targets() -> None:
    resolver = Resolver(catalog())
    assert resolver.readiness(model("a")) == {"name": "a", "ready": True}
    assert resolver.readiness(model("a", state="Loading")) == {"name": "a", "ready": False}
    with pytest.raises(NotReady) as failed:
        resolver.readiness(pipeline("p", state="Failed", reason="model 'x' not loaded"))
    assert str(failed.value) == "pipeline 'p' failed: model 'x' not loaded"


# -- the status table ------------------------------------------------------------------


def record(kind: str) -> ErrorRecord:
    return ErrorRecord("p", "s", "r1", "model", "why", kind=kind)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("failure", "status"),
    [
        (BadRequest("x"), 400),
        (InvalidJson("x"), 400),
        (UnknownName("model", "n", []), 404),
        (RequestInFlight("r1"), 409),
        (DeliveryFailed("x"), 502),
        (NotReady("x"), 503),
        (ReplyTimeout("model 'm'", "r1", 1.0), 504),
        (StepFailed(record("bad-input")), 400),
        (StepFailed(record("model-failure")), 500),
        (StepFailed(record("internal")), 500),
        (StepFailed(record("timeout")), 504),
        (GatewayError("x"), 500),
    ],
)
def test_each_failure_has_one_status(failure: Exception, status: int) -> None:
    assert status_of(failure) == status


def test_an_error_answer_names_the_request_and_the_route() -> None:
    answer = error_response(NotReady("down"), "r1", "b")
    assert answer.status_code == 503
    assert answer.body == b'{"error":"down"}'
    assert answer.headers["x-request-id"] == "r1"
    assert answer.headers["x-seldon-route"] == "b"
    assert "x-request-id" not in error_response(NotReady("down")).headers
