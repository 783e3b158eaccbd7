"""The join lane writes exactly what the general path writes, for every kind of join.

Whole pipelines run on the test driver (the worker's planner and agents) twice:
once as planned (joins, triggers, conditional routing and batch windows on the
join lane) and once with the join lane switched off. Every topic must hold the
same records, byte for byte (records of different request ids may come in
another order: they are independent). The lane's run is made twice: with model
calls inline (the test driver's) and on the worker's call pool (`CallPool`: the
calls on the models' threads, their answers written in a later turn).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine import headers as h
from engine import testing
from engine.codec import decode_avro, decode_error, encode_avro
from engine.messages import InferenceMessage, Tensor
from engine.runtime import plan as planner
from engine.runtime.join_lane import JoinLane, fits_join_lane
from engine.runtime.model_calls import CallPool
from engine.runtime.records import Outgoing
from engine.runtimes import ModelRuntime, load_model
from engine.testing import TopicRecord, TopologyTestDriver
from engine.topology import TopicNames, Topology, compile_topology, load_files

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOPICS = TopicNames("tf", "joinlane")
WINDOW_MS = 1000

EXTRA = f"""
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: outer-join
spec:
  steps:
  - name: mul10
    inputs: [outer-join.inputs.INPUT0]
    tensorMap: {{outer-join.inputs.INPUT0: INPUT}}
  - name: add10
    inputs: [outer-join.inputs.INPUT1]
    tensorMap: {{outer-join.inputs.INPUT1: INPUT}}
  output:
    steps: [mul10, add10]
    stepsJoin: outer
    joinWindowMs: {WINDOW_MS}
    tensorMap: {{mul10.outputs.OUTPUT: MUL, add10.outputs.OUTPUT: ADD}}
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: clash
spec:
  steps:
  - name: mul10
  - name: add10
  - name: tfsimple1  # both answer OUTPUT: a model's request cannot hold it twice
    inputs: [mul10.outputs, add10.outputs]
  output:
    steps: [tfsimple1]
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: both-outputs
spec:
  steps:
  - name: mul10
  - name: add10
  output:
    steps: [mul10, add10]  # both answer OUTPUT: the pipeline answers it twice, as Seldon
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: batched-join
spec:
  steps:
  - name: tfsimple1
  - name: tfsimple2
  - name: tfsimple3
    inputs: [tfsimple1.outputs.OUTPUT0, tfsimple2.outputs.OUTPUT1]
    tensorMap: {{tfsimple1.outputs.OUTPUT0: INPUT0, tfsimple2.outputs.OUTPUT1: INPUT1}}
    joinWindowMs: {WINDOW_MS}
    batch: {{size: 4, windowMs: 50}}
  output:
    steps: [tfsimple3]
"""


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Topology:
    extra = tmp_path_factory.mktemp("specs") / "extra.yaml"
    extra.write_text(EXTRA)
    return compile_topology(load_files([EXAMPLES, extra]), TOPICS)


class Counting(ModelRuntime):
    """A model as loaded, counting its calls and the rows each call got."""

    def __init__(self, model: ModelRuntime) -> None:
        self.inner = model
        self.name = model.name
        self.batchable = model.batchable
        self.max_batch_size = model.max_batch_size
        self.calls: list[int] = []

    def predict(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.calls.append(len(next(iter(inputs.values()))) if inputs else 0)
        return self.inner.predict(inputs)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture(scope="module")
def models(topology: Topology) -> Iterator[dict[str, Counting]]:
    loaded = {name: Counting(load_model(spec)) for name, spec in topology.models.items()}
    yield loaded
    for model in loaded.values():
        model.close()


class PooledDriver(TopologyTestDriver):
    """The test driver with the worker's call pool: each model call runs on its model's
    thread and its answers are written in a later turn, as the worker writes them."""

    def __init__(self, topology: Topology, pools: list[CallPool], **options) -> None:
        def pooled_plan(topology, loaded, topics, tracker):
            self.pool = CallPool(tracker)
            pools.append(self.pool)
            return planner.plan(topology, loaded, topics, tracker, calls=self.pool)

        original, testing.plan = testing.plan, pooled_plan
        try:
            super().__init__(topology, **options)
        finally:
            testing.plan = original

    def _run(self, pending: list[Outgoing]) -> list[TopicRecord]:
        """The driver's loop, as the worker's: a chunk, its agents' ticks, then the pool's
        turn (the answers of calls that returned); at the end, until every call is answered."""
        written: list[TopicRecord] = []
        deadline = time.monotonic() + 30
        first_turn = True
        while pending or first_turn or self.pool.in_flight():
            assert time.monotonic() < deadline, "a model call was never answered"
            first_turn = False
            chunk, pending = pending[: self._chunk], pending[self._chunk :]
            out = self._turn(chunk, written)
            self.pool.turn(out)
            if not out and not pending and self.pool.in_flight():
                time.sleep(0.001)
            pending += out
        return written


@pytest.fixture(params=["inline", "pool"])
def calls(request: pytest.FixtureRequest) -> Iterator[list[CallPool] | None]:
    """How the lane's driver runs model calls: inline (None), or on call pools (closed after)."""
    if request.param == "inline":
        yield None
        return
    pools: list[CallPool] = []
    yield pools
    for pool in pools:
        pool.close()


def drivers(
    topology: Topology,
    models: dict[str, Counting],
    monkeypatch: pytest.MonkeyPatch,
    calls: list[CallPool] | None,
) -> tuple[TopologyTestDriver, TopologyTestDriver]:
    """(as planned, with `calls`; general path only, calls inline); the models' call counts
    start afresh."""
    if calls is None:
        lane = TopologyTestDriver(topology, topics=TOPICS, models=models)
    else:
        lane = PooledDriver(topology, calls, topics=TOPICS, models=models)
    with monkeypatch.context() as patch:
        patch.setattr(planner, "fits_join_lane", lambda *args: False)
        general = TopologyTestDriver(topology, topics=TOPICS, models=models)
    assert not any(agent.join_lane for agent in general._plan.agents)
    for model in models.values():
        model.calls.clear()
    return lane, general


def lane_of(driver: TopologyTestDriver, pipeline: str, node: str) -> JoinLane:
    [agent] = [
        a for a in driver._plan.agents if a.node.pipeline == pipeline and a.node.name == node
    ]
    assert agent.join_lane is not None, f"{pipeline}.{node} should take the join lane"
    return agent.join_lane


def spy_on_general_path(driver: TopologyTestDriver, pipeline: str, node: str) -> list[str]:
    """The request ids whose records the node's join lane hands to its general path."""
    [agent] = [
        a for a in driver._plan.agents if a.node.pipeline == pipeline and a.node.name == node
    ]
    handed_over: list[str] = []
    general_process = agent.process

    def process(index, record, now_ms, out):
        handed_over.append(record.key)
        general_process(index, record, now_ms, out)

    agent.process = process  # type: ignore[method-assign]
    return handed_over


def topics_of(driver: TopologyTestDriver) -> dict[str, list[tuple]]:
    """Every topic's records (key, value, headers) by key; error records without their time."""
    found = {}
    for topic, records in driver._topics.items():
        items = []
        for record in records:
            value: object = record.value
            if record.is_error:
                value = dataclasses.replace(decode_error(record.value), timestamp_ms=0)
            items.append((record.key, repr(value), record.headers))
        found[topic] = sorted(items, key=lambda item: (item[0], item[1]))
    return found


def same_on_both(lane: TopologyTestDriver, general: TopologyTestDriver, steps) -> None:
    """Run `steps(driver)` on both drivers; both must write the same records."""
    steps(lane)
    steps(general)
    assert topics_of(lane) == topics_of(general)
    assert lane.tracker.held_count() == general.tracker.held_count()


def request(rid: str, **arrays: np.ndarray) -> InferenceMessage:
    return InferenceMessage(
        rid, tuple(Tensor.from_array(k, v) for k, v in arrays.items()), "request"
    )


def response(rid: str, model: str, **arrays: np.ndarray) -> bytes:
    tensors = tuple(Tensor.from_array(k, v) for k, v in arrays.items())
    return encode_avro(InferenceMessage(rid, tensors, "response", model_name=model))


def ints(start: int) -> np.ndarray:
    return np.arange(start, start + 16, dtype=np.int32).reshape(1, 16)


def fp32(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)


def test_the_planner_puts_joins_triggers_and_outputs_on_the_join_lane(topology, models):
    planned = planner.plan(topology, models, TOPICS, planner.OffsetTracker())
    on_lane = {(a.node.pipeline, a.node.name) for a in planned.agents if a.join_lane}
    tracker = planner.OffsetTracker()
    pool = CallPool(tracker)
    try:  # the worker's call pool (its default) changes nothing of what takes the lane
        pooled = planner.plan(topology, models, TOPICS, tracker, calls=pool)
    finally:
        pool.close()
    assert {(a.node.pipeline, a.node.name) for a in pooled.agents if a.join_lane} == on_lane
    assert {
        ("tfsimples-join", "tfsimple3"),  # inner join of two steps
        ("trigger-joins", "mul10"),  # triggers (any), and the output's any join
        ("trigger-joins", "add10"),
        ("conditional-routing", "output"),  # the output's any join
        ("outer-join", "output"),
        ("add10-batch", "add10"),  # one source, but a batch window
        ("batched-join", "tfsimple3"),
        ("conditional-routing", "conditional"),  # an unbatchable model: one call a request
    } <= on_lane
    # The fast lane's steps, outputs passing bytes on, cycles, direct model calls: not here.
    assert ("tfsimples-join", "tfsimple1") not in on_lane
    assert ("tfsimples", "output") not in on_lane
    assert not any(pipeline == "counter" for pipeline, _ in on_lane)
    assert not fits_join_lane(planner.model_node("mul10", TOPICS), models["mul10"], None)


def test_an_inner_join_is_answered_identically_in_one_model_call(
    topology, models, monkeypatch, calls
):
    lane, general = drivers(topology, models, monkeypatch, calls)
    handed_over = spy_on_general_path(lane, "tfsimples-join", "tfsimple3")

    def steps(driver: TopologyTestDriver) -> None:
        driver.send_all(
            [
                (
                    TOPICS.pipeline_inputs("tfsimples-join"),
                    f"r{i}",
                    request(f"r{i}", INPUT0=ints(i), INPUT1=ints(100 + i)),
                    None,
                )
                for i in range(30)
            ]
        )

    steps(lane)
    assert handed_over == []
    assert models["tfsimple3"].calls == [30]  # the chunk's joined requests in one call
    if isinstance(lane, PooledDriver):  # that call was the pool's (held until answered)
        assert lane.pool.stats("tfsimple3").peak_held == 30
    steps(general)
    assert topics_of(lane) == topics_of(general)
    answers = lane.outputs("tfsimples-join")
    assert len(answers) == 30
    # tfsimple3 adds and subtracts tfsimple1's OUTPUT0 (a + b) and tfsimple2's OUTPUT1 (a - b).
    a, b = ints(7), ints(107)
    assert answers["r7"].arrays()["OUTPUT0"].tolist() == ((a + b) + (a - b)).tolist()
    assert lane.tracker.held_count() == 0


def test_halves_joined_across_chunks_and_windows_that_close(topology, models, monkeypatch, calls):
    lane, general = drivers(topology, models, monkeypatch, calls)
    one = TOPICS.step_outputs("tfsimples-join", "tfsimple1")
    two = TOPICS.step_outputs("tfsimples-join", "tfsimple2")

    def steps(driver: TopologyTestDriver) -> None:
        for i in range(4):  # each half in a chunk of its own, the other half later
            driver.send(one, f"h{i}", response(f"h{i}", "tfsimple1", OUTPUT0=ints(i)))
        driver.send(one, "h0", response("h0", "tfsimple1", OUTPUT0=ints(9)))  # a duplicate
        driver.send_all(
            [
                (two, f"h{i}", response(f"h{i}", "tfsimple2", OUTPUT1=ints(i)), None)
                for i in range(3)
            ]
        )
        driver.advance(6000)  # h3's window (5 s) closes: a timeout error record
        driver.send(two, "late", response("late", "tfsimple2", OUTPUT1=ints(1)))
        driver.advance(6000)

    same_on_both(lane, general, steps)
    outputs = lane.outputs("tfsimples-join")
    assert sorted(outputs) == ["h0", "h1", "h2", "h3", "late"]
    assert outputs["h3"].is_error and outputs["h3"].error().kind == "timeout"
    assert outputs["late"].is_error
    assert not outputs["h0"].is_error
    assert lane.tracker.held_count() == 0


def test_an_outer_join_emits_what_it_has_at_the_window_end(topology, models, monkeypatch, calls):
    lane, general = drivers(topology, models, monkeypatch, calls)
    handed_over = spy_on_general_path(lane, "outer-join", "output")
    inputs = TOPICS.pipeline_inputs("outer-join")

    def steps(driver: TopologyTestDriver) -> None:
        driver.send_all(
            [
                (inputs, "both", request("both", INPUT0=fp32(1, 2), INPUT1=fp32(3, 4)), None),
                (inputs, "mul", request("mul", INPUT0=fp32(5, 6)), None),
                (inputs, "add", request("add", INPUT1=fp32(7, 8)), None),
            ]
        )
        driver.advance(WINDOW_MS)

    same_on_both(lane, general, steps)
    assert handed_over == []
    answers = {k: r.arrays() for k, r in lane.outputs("outer-join").items()}
    assert {k: {n: a.tolist() for n, a in v.items()} for k, v in answers.items()} == {
        "both": {"MUL": [10, 20], "ADD": [13, 14]},
        "mul": {"MUL": [50, 60]},
        "add": {"ADD": [17, 18]},
    }


def test_conditional_routing_and_an_any_join(topology, models, monkeypatch, calls):
    lane, general = drivers(topology, models, monkeypatch, calls)
    lane_of(lane, "conditional-routing", "output")
    inputs = TOPICS.pipeline_inputs("conditional-routing")

    def steps(driver: TopologyTestDriver) -> None:
        driver.send_all(
            [
                (
                    inputs,
                    f"c{i}",
                    request(f"c{i}", INPUT=fp32(1, 2, 3, i), CHOICE=np.array([i % 2], np.int32)),
                    None,
                )
                for i in range(10)
            ]
            + [(inputs, "no-choice", request("no-choice", INPUT=fp32(1, 2, 3, 4)), None)]
        )

    same_on_both(lane, general, steps)
    assert models["conditional"].calls.count(4) == 2 * 11  # one call a request, on both
    if isinstance(lane, PooledDriver):  # the calls were the pool's
        assert lane.pool.stats("conditional").peak_held == 11
    outputs = lane.outputs("conditional-routing")
    assert outputs["no-choice"].is_error  # the model raised: the general path says why
    assert "CHOICE" in outputs["no-choice"].error().reason
    assert outputs["c2"].arrays()["OUTPUT"].tolist() == [10, 20, 30, 20]
    assert outputs["c3"].arrays()["OUTPUT"].tolist() == [11, 12, 13, 13]
    assert outputs["c3"].message().model_name == "conditional-routing"


def test_triggers_gate_and_are_not_passed_on(topology, models, monkeypatch, calls):
    lane, general = drivers(topology, models, monkeypatch, calls)
    inputs = TOPICS.pipeline_inputs("trigger-joins")
    yes = np.array([1], np.int32)

    def steps(driver: TopologyTestDriver) -> None:
        driver.send_all(
            [
                (inputs, "one", request("one", INPUT=fp32(1, 2, 3, 4), ok1=yes), None),
                (inputs, "two", request("two", INPUT=fp32(1, 2, 3, 4), ok2=yes), None),
                (inputs, "three", request("three", INPUT=fp32(1, 2, 3, 4), ok3=yes), None),
                (inputs, "all", request("all", INPUT=fp32(1, 2, 3, 4), ok1=yes, ok3=yes), None),
                (inputs, "none", request("none", INPUT=fp32(1, 2, 3, 4)), None),
            ]
        )
        driver.advance(61_000)

    same_on_both(lane, general, steps)
    mul10 = {r.key: r for r in lane.records(TOPICS.step_inputs("trigger-joins", "mul10"))}
    assert sorted(mul10) == ["all", "one", "two"]
    assert mul10["one"].message().names() == ("INPUT",)  # the trigger tensor stays behind
    assert sorted(lane.outputs("trigger-joins")) == ["all", "one", "three", "two"]


def test_errors_json_and_clashes_are_the_general_paths_and_the_stream_goes_on(
    topology, models, monkeypatch, calls
):
    lane, general = drivers(topology, models, monkeypatch, calls)
    one = TOPICS.step_outputs("tfsimples-join", "tfsimple1")
    two = TOPICS.step_outputs("tfsimples-join", "tfsimple2")
    wrong = np.arange(8, dtype=np.int32).reshape(1, 8)

    def steps(driver: TopologyTestDriver) -> None:
        driver.send_all(
            [
                (one, "ok", response("ok", "tfsimple1", OUTPUT0=ints(1)), None),
                (two, "ok", response("ok", "tfsimple2", OUTPUT1=ints(2)), None),
                (one, "bad", b"\x00\xffgarbage", None),  # undecodable: an error record
                (two, "bad", response("bad", "tfsimple2", OUTPUT1=ints(2)), None),
                (
                    one,
                    "json",
                    {
                        "id": "json",
                        "outputs": [
                            {
                                "name": "OUTPUT0",
                                "datatype": "INT32",
                                "shape": [1, 16],
                                "data": list(range(16)),
                            }
                        ],
                    },
                    None,
                ),  # JSON half, Avro other half: joined on the general path
                (two, "json", response("json", "tfsimple2", OUTPUT1=ints(3)), None),
                (one, "refused", response("refused", "tfsimple1", OUTPUT0=wrong), None),
                (two, "refused", response("refused", "tfsimple2", OUTPUT1=wrong), None),
                (one, "ok2", response("ok2", "tfsimple1", OUTPUT0=ints(4)), None),
                (two, "ok2", response("ok2", "tfsimple2", OUTPUT1=ints(5)), None),
            ]
        )
        driver.infer("clash", {"INPUT": fp32(1, 2, 3, 4)}, request_id="clash")
        driver.infer("both-outputs", {"INPUT": fp32(1, 2, 3, 4)}, request_id="both")
        driver.advance(6000)

    same_on_both(lane, general, steps)
    outputs = lane.outputs("tfsimples-join")
    assert not outputs["ok"].is_error and not outputs["ok2"].is_error
    assert not outputs["json"].is_error
    assert outputs["refused"].is_error and outputs["refused"].error().kind == "bad-input"
    errors = Counter(e.request_id for e in lane.errors())
    assert errors["bad"] >= 1 and errors["refused"] == 1 and errors["clash"] == 1
    assert "OUTPUT" in lane.outputs("clash")["clash"].error().reason
    both = lane.outputs("both-outputs")["both"].message()
    assert [(t.name, t.data.tolist()) for t in both.tensors] == [
        ("OUTPUT", [10, 20, 30, 40]),
        ("OUTPUT", [11, 12, 13, 14]),
    ]


def test_replay_lineage_and_trace_headers_are_passed_on(topology, models, monkeypatch, calls):
    lane, general = drivers(topology, models, monkeypatch, calls)
    lineage = [
        (h.REPLAY_RUN, b"run-1"),
        (h.REPLAY_OF, b"orig-1"),
        (h.REPLAY_SOURCE, b"topic:0:12"),
        (h.ORIGINAL_TIMESTAMP, b"1700000000000"),
        (h.TRACEPARENT, b"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    ]

    def steps(driver: TopologyTestDriver) -> None:
        driver.infer(
            "tfsimples-join",
            {"INPUT0": ints(1), "INPUT1": ints(2)},
            request_id="run-1-r",
            headers=lineage,
        )
        driver.infer(
            "conditional-routing",
            {"INPUT": fp32(1, 2, 3, 4), "CHOICE": np.array([1], np.int32)},
            request_id="run-1-c",
            headers=lineage,
        )

    same_on_both(lane, general, steps)
    for pipeline, rid in (("tfsimples-join", "run-1-r"), ("conditional-routing", "run-1-c")):
        answer = lane.output(pipeline, rid)
        assert not answer.is_error
        for key, value in lineage:
            assert answer.header(key) == value.decode(), (pipeline, key)


def test_batch_windows_hold_joined_requests_for_one_call(topology, models, monkeypatch, calls):
    lane, general = drivers(topology, models, monkeypatch, calls)

    def steps(driver: TopologyTestDriver) -> None:
        for i in range(6):  # one request a chunk: the batch gathers them
            driver.infer(
                "batched-join", {"INPUT0": ints(i), "INPUT1": ints(50 + i)}, request_id=f"b{i}"
            )
        driver.infer("add10-batch", {"INPUT": fp32(1, 2, 3, 4)}, request_id="a0")
        driver.advance(50)

    steps(lane)
    assert models["tfsimple3"].calls == [4, 2]  # size 4, then the window's end
    assert lane.tracker.held_count() == 0
    steps(general)
    assert topics_of(lane) == topics_of(general)
    assert sorted(lane.outputs("batched-join")) == [f"b{i}" for i in range(6)]
    answer = decode_avro(lane.output("add10-batch", "a0").value, "response")
    assert answer.tensor("OUTPUT").data.tolist() == [11, 12, 13, 14]


def test_a_request_waiting_in_a_batch_is_held_until_answered(topology, models, monkeypatch, calls):
    lane, _ = drivers(topology, models, monkeypatch, calls)
    lane.infer("batched-join", {"INPUT0": ints(1), "INPUT1": ints(1)}, request_id="w")
    # Its two halves wait in tfsimple3's batch: not committed until they are answered.
    assert lane.tracker.held_count() == 2
    assert "w" not in lane.outputs("batched-join")
    lane.advance(50)
    assert "w" in lane.outputs("batched-join")
    assert lane.tracker.held_count() == 0
