"""Experiments in the gateway without Kafka: the weighted choice with a seeded
random source, and name resolution through the app with a fake reply router."""

from __future__ import annotations

import random

import numpy as np
import pytest
from fastapi.testclient import TestClient

from engine.codec import decode_payload, encode_avro
from engine.config import KafkaSettings
from engine.gateway import ExperimentInfo, ModelInfo, PipelineInfo, StaticCatalog, create_app
from engine.gateway.experiments import choose_candidate, mirror_this_one
from engine.gateway.router import Reply
from engine.messages import InferenceMessage, Tensor
from engine.topology import TopicNames, load_text

AB = ExperimentInfo("ab", "model", (("a", 1), ("b", 3)))

# -- the choice ------------------------------------------------------------------------


def test_choice_follows_the_weights_for_a_seeded_source() -> None:
    # One randrange(sum of weights) per request: 0 falls on 'a' (weight 1), 1..3 on 'b'.
    rng, same = random.Random(11), random.Random(11)
    chosen = [choose_candidate(AB, rng) for _ in range(20)]
    assert chosen == ["a" if same.randrange(4) == 0 else "b" for _ in range(20)]
    assert [choose_candidate(AB, random_at(p)) for p in range(4)] == ["a", "b", "b", "b"]


def test_weight_zero_is_never_chosen() -> None:
    only_b = ExperimentInfo("e", "model", (("a", 0), ("b", 1)))
    rng = random.Random(0)
    assert {choose_candidate(only_b, rng) for _ in range(50)} == {"b"}


def test_a_sticky_route_wins_unless_it_has_no_traffic() -> None:
    assert choose_candidate(AB, random_at(3), sticky="a") == "a"
    assert choose_candidate(AB, random_at(0), sticky="nope") == "a"
    stopped = ExperimentInfo("e", "model", (("a", 0), ("b", 1)))
    assert choose_candidate(stopped, random_at(0), sticky="a") == "b"
    # Seldon's spelling of the same route: `:a_1:` (name and version between colons).
    assert choose_candidate(AB, random_at(3), sticky=":a_1:") == "a"
    assert choose_candidate(AB, random_at(0), sticky=":nope_1:") == "a"


def test_mirror_takes_its_percent() -> None:
    mirrored = ExperimentInfo("e", "model", (("a", 1),), mirror=("m", 30))
    assert mirror_this_one(mirrored, random_at(29)) == "m"
    assert mirror_this_one(mirrored, random_at(30)) is None
    assert mirror_this_one(AB, random_at(0)) is None


class random_at(random.Random):  # noqa: N801 - reads as a value
    """A random source whose randrange always answers `point`."""

    def __init__(self, point: int) -> None:
        super().__init__(0)
        self.point = point

    def randrange(self, *args: object, **kwargs: object) -> int:  # type: ignore[override]
        return self.point


# -- through the app, with a fake reply router ------------------------------------------


class FakeRouter:
    """Answers every request at once with OUTPUT = the topic it was sent to."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.sent: list[tuple[str, str]] = []

    def listen(self, *_: str) -> None:
        return None

    def alive(self) -> bool:
        return True

    async def request(self, topic, reply_topic, key, value, headers, timeout_s) -> Reply:
        self.requests.append(topic)
        answer = InferenceMessage(
            key, (Tensor.from_array("OUTPUT", np.array([b"%s" % topic.encode()])),), "response"
        )
        return Reply(reply_topic, 0, 0, encode_avro(answer), [])

    def send(self, topic, key, value, headers) -> None:
        self.sent.append((topic, decode_payload(value, headers, "request").id))


SPECS = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata: {name: to-b}
spec:
  default: a
  candidates: [{name: a, weight: 0}, {name: b, weight: 1}]
  mirror: {name: m, percent: 100}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata: {name: pipes}
spec:
  resourceType: pipeline
  candidates: [{name: p, weight: 1}, {name: q, weight: 0}]
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Experiment
metadata: {name: half-loaded}
spec:
  default: m
  candidates: [{name: m, weight: 1}, {name: ghost, weight: 1}]
"""


@pytest.fixture
def gateway() -> tuple[TestClient, FakeRouter]:
    topics = TopicNames("tf", "ns")
    # Only the specs: the candidates exist in the catalog below, not as declared resources.
    experiments = load_text(SPECS).experiments
    catalog = StaticCatalog(
        pipelines={
            n: PipelineInfo(n, topics.pipeline_inputs(n), topics.pipeline_outputs(n)) for n in "pq"
        },
        models={n: ModelInfo(n, topics.model_inputs(n), topics.model_outputs(n)) for n in "abm"},
        experiments={n: ExperimentInfo.from_spec(s) for n, s in experiments.items()},
    )
    router = FakeRouter()
    app = create_app(KafkaSettings(), catalog, router=router, rng=random.Random(1))  # type: ignore[arg-type]
    with TestClient(app) as client:
        yield client, router


BODY = {"inputs": [{"name": "INPUT", "datatype": "FP32", "shape": [1], "data": [1]}]}


def answered_by(reply) -> str:
    return reply.json()["outputs"][0]["data"][0]


def test_the_default_name_is_split_and_the_route_named(gateway) -> None:
    client, router = gateway
    reply = client.post("/v2/models/a/infer", json=BODY, headers={"x-request-id": "r1"})
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-seldon-route"] == "b"
    assert reply.json()["model_name"] == "b"
    assert answered_by(reply) == "tf.ns.model.b.inputs"
    assert router.sent == [("tf.ns.model.m.inputs", "r1")]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/v2/models/to-b/infer", {}),
        ("/v2/models/to-b.experiment/infer", {}),
        ("/v2/models/anything/infer", {"seldon-model": "to-b.experiment"}),
    ],
)
def test_the_experiment_answers_under_its_own_name(gateway, path, headers) -> None:
    client, _ = gateway
    reply = client.post(path, json=BODY, headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["x-seldon-route"] == "b"


def test_pipeline_experiments_route_to_pipelines(gateway) -> None:
    client, _ = gateway
    for path in ("/v2/pipelines/pipes/infer", "/v2/models/pipes.experiment/infer"):
        reply = client.post(path, json=BODY)
        assert reply.status_code == 200, reply.text
        assert reply.headers["x-seldon-route"] == "p"
        assert answered_by(reply) == "tf.ns.pipeline.p.inputs"
    # A model experiment is no pipeline.
    reply = client.post("/v2/pipelines/to-b/infer", json=BODY)
    assert reply.status_code == 404
    assert reply.json()["error"] == "no pipeline 'to-b' is loaded; loaded: 'p', 'q'"


def test_missing_candidates_answer_503_naming_them(gateway) -> None:
    client, router = gateway
    reply = client.post("/v2/models/half-loaded/infer", json=BODY)
    assert reply.status_code == 503
    assert "'ghost' (not loaded)" in reply.json()["error"]
    assert client.get("/v2/models/half-loaded/ready").status_code == 503
    assert router.requests == []
    # Inactive, the experiment leaves its default alone.
    reply = client.post("/v2/models/m/infer", json=BODY)
    assert reply.status_code == 200 and "x-seldon-route" not in reply.headers
    assert answered_by(reply) == "tf.ns.model.m.inputs"


def test_other_names_are_untouched_and_metadata_is_not_split(gateway) -> None:
    client, _ = gateway
    reply = client.post("/v2/models/b/infer", json=BODY)
    assert "x-seldon-route" not in reply.headers
    assert client.get("/v2/models/a").json()["name"] == "a"
    assert client.get("/v2/models/to-b").json()["name"] == "to-b"
    assert client.get("/v2/models/to-b/ready").json() == {"name": "to-b", "ready": True}
    unknown = client.post("/v2/models/nope.experiment/infer", json=BODY)
    assert unknown.status_code == 404 and "'to-b'" in unknown.json()["error"]
    unknown = client.post("/v2/models/nope/infer", json=BODY)
    assert "or experiment 'nope'" in unknown.json()["error"]
    assert "'half-loaded'" in unknown.json()["error"]
