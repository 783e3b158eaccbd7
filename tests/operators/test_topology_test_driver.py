"""TopologyTestDriver: the example pipelines give their documented results in memory, windows
follow the driver's clock, failures are readable, and mistakes are named."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine import headers as h
from engine.messages import InferenceMessage, Tensor
from engine.runtime.errors import NoRecord, ResourcesFailed, UnknownResource, UnknownTopic
from engine.testing import TopologyTestDriver

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ROW = np.arange(1, 17, dtype=np.int32).reshape(1, 16)
FOUR = np.array([1, 2, 3, 4], dtype=np.float32)


@pytest.fixture(scope="module")
def examples() -> Iterator[TopologyTestDriver]:
    with TopologyTestDriver.from_files([EXAMPLES]) as driver:
        yield driver


@pytest.fixture
def driver() -> Iterator[TopologyTestDriver]:
    """A fresh driver (its own clock and topics) for tests that move the clock."""
    with TopologyTestDriver.from_files([EXAMPLES]) as fresh:
        yield fresh


def test_the_chain_gives_its_documented_answer(examples: TopologyTestDriver) -> None:
    """tfsimples.yaml: INPUT0 = INPUT1 = 1..16 gives OUTPUT0 = OUTPUT1 = 2,4,...,32."""
    request_id = examples.infer("tfsimples", {"INPUT0": ROW, "INPUT1": ROW})
    answer = examples.output("tfsimples", request_id)
    doubled = [list(range(2, 33, 2))]
    assert {name: a.tolist() for name, a in answer.arrays().items()} == {
        "OUTPUT0": doubled,
        "OUTPUT1": doubled,
    }
    assert answer.header(h.REQUEST_ID) == request_id
    # Every step's request and answer is on its topic, as on Kafka.
    step_inputs = examples.records(examples.topics.step_inputs("tfsimples", "tfsimple2"))
    assert [r.key for r in step_inputs][-1] == request_id
    assert step_inputs[-1].arrays()["INPUT0"].tolist() == doubled


def test_the_output_is_fused_into_the_last_step_as_the_worker_runs_it(
    examples: TopologyTestDriver,
) -> None:
    request_id = examples.infer("tfsimples", {"INPUT0": ROW, "INPUT1": ROW})
    step_answer = examples.records(examples.topics.step_outputs("tfsimples", "tfsimple2"))[-1]
    output = examples.output("tfsimples", request_id)
    # Written by the step itself: its answer, named after the pipeline (as over HTTP), with
    # the output node's headers.
    assert output.offset == step_answer.offset
    assert output.message().model_name == "tfsimples"
    assert step_answer.message().model_name == "tfsimple2"
    assert output.message().tensors == step_answer.message().tensors
    assert output.header(h.STEP) != step_answer.header(h.STEP)


def test_json_requests_are_answered_like_avro_ones(examples: TopologyTestDriver) -> None:
    avro = examples.infer("tfsimples", {"INPUT0": ROW, "INPUT1": ROW})
    as_json = examples.infer("tfsimples", {"INPUT0": ROW, "INPUT1": ROW}, as_json=True)
    document = {
        "inputs": [
            {"name": name, "datatype": "INT32", "shape": [1, 16], "data": ROW.ravel().tolist()}
            for name in ("INPUT0", "INPUT1")
        ]
    }
    examples.send(examples.topics.pipeline_inputs("tfsimples"), "doc", document)
    answers = [examples.output("tfsimples", rid).value for rid in (avro, as_json, "doc")]
    decoded = [
        examples.output("tfsimples", rid).arrays()["OUTPUT0"].tolist()
        for rid in (avro, as_json, "doc")
    ]
    assert decoded[0] == decoded[1] == decoded[2] and len(answers) == 3


def test_conditional_routing_fires_one_branch(examples: TopologyTestDriver) -> None:
    choice = np.array([1], dtype=np.int32)
    request_id = examples.infer("conditional-routing", {"INPUT": FOUR, "CHOICE": choice})
    assert examples.output("conditional-routing", request_id).arrays()["OUTPUT"].tolist() == [
        11,
        12,
        13,
        14,
    ]
    mul10 = examples.records(examples.topics.step_inputs("conditional-routing", "mul10"))
    assert request_id not in {r.key for r in mul10}


def test_a_model_is_called_directly_through_its_topics(examples: TopologyTestDriver) -> None:
    message = InferenceMessage("direct", (Tensor.from_array("INPUT", FOUR),), "request")
    examples.send(examples.topics.model_inputs("mul10"), "direct", message)
    [answer] = [
        r for r in examples.records(examples.topics.model_outputs("mul10")) if r.key == "direct"
    ]
    assert answer.arrays()["OUTPUT"].tolist() == [10, 20, 30, 40]


def test_a_join_window_expires_when_the_clock_moves(driver: TopologyTestDriver) -> None:
    """tfsimples-join: tfsimple3 joins tfsimple1's and tfsimple2's answers within 5000 ms."""
    topics = driver.topics
    one_side = InferenceMessage(
        "half",
        (Tensor.from_array("OUTPUT0", ROW), Tensor.from_array("OUTPUT1", ROW)),
        "response",
    )
    driver.send(topics.step_outputs("tfsimples-join", "tfsimple1"), "half", one_side)
    assert driver.tracker.held_count() == 1  # half-joined: not committable
    driver.advance(4999)
    assert driver.tracker.held_count() == 1
    driver.advance(1)
    assert driver.tracker.held_count() == 0  # the window closed and let it go
    # The answer needs tfsimple3's join, so its caller hears of the timeout.
    (timed_out,) = driver.records(topics.pipeline_outputs("tfsimples-join"))
    assert timed_out.key == "half" and timed_out.error().kind == "timeout"
    # The other side arriving now starts a new window; nothing is answered.
    driver.send(topics.step_outputs("tfsimples-join", "tfsimple2"), "half", one_side)
    assert len(driver.records(topics.pipeline_outputs("tfsimples-join"))) == 1
    # A whole request meets both sides at once and is answered without the clock moving.
    request_id = driver.infer("tfsimples-join", {"INPUT0": ROW, "INPUT1": ROW})
    assert not driver.output("tfsimples-join", request_id).is_error


def test_a_batch_waits_for_its_size_or_its_window(driver: TopologyTestDriver) -> None:
    """add10-batch: up to 4 requests, or what arrived within 50 ms, in one model call."""
    first = driver.infer("add10-batch", {"INPUT": FOUR})
    second = driver.infer("add10-batch", {"INPUT": FOUR * 2})
    assert driver.outputs("add10-batch") == {}
    driver.advance(49)
    assert driver.outputs("add10-batch") == {}
    driver.advance(1)
    assert driver.output("add10-batch", first).arrays()["OUTPUT"].tolist() == [11, 12, 13, 14]
    assert driver.output("add10-batch", second).arrays()["OUTPUT"].tolist() == [12, 14, 16, 18]
    # Four at once fill the batch: answered with the clock standing still.
    ids = [f"b{i}" for i in range(4)]
    driver.send_all(
        [
            (
                driver.topics.pipeline_inputs("add10-batch"),
                rid,
                InferenceMessage(rid, (Tensor.from_array("INPUT", FOUR),), "request"),
                None,
            )
            for rid in ids
        ]
    )
    assert set(ids) <= set(driver.outputs("add10-batch"))


def test_a_bad_record_is_an_error_record_and_the_stream_goes_on(driver: TopologyTestDriver) -> None:
    driver.send(driver.topics.pipeline_inputs("tfsimples"), "bad", b"\x01\x02garbage")
    failed = driver.output("tfsimples", "bad")
    assert failed.is_error and failed.error().stage == "decode"
    [error] = driver.errors()
    assert (error.pipeline, error.step, error.request_id) == ("tfsimples", "tfsimple1", "bad")
    good = driver.infer("tfsimples", {"INPUT0": ROW, "INPUT1": ROW})
    assert not driver.output("tfsimples", good).is_error


def test_mistakes_are_named(examples: TopologyTestDriver) -> None:
    with pytest.raises(
        UnknownTopic, match="no step reads 'nowhere'; the topics read are: .*tfsimples"
    ):
        examples.send("nowhere", "k", b"")
    with pytest.raises(UnknownResource, match="no pipeline 'tfsimplez'.*tfsimples"):
        examples.infer("tfsimplez", {"INPUT0": ROW})
    with pytest.raises(NoRecord, match="no record for request 'never'"):
        examples.output("tfsimples", "never")
    with pytest.raises(ValueError, match="only moves forward"):
        examples.advance(-1)


def test_a_model_that_does_not_load_stops_the_driver(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "model.py").write_text(
        "class Model:\n    def load(self):\n        raise RuntimeError('no weights here')\n"
    )
    (tmp_path / "broken.yaml").write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: broken\n"
        "spec:\n  storageUri: ./broken\n  requirements:\n  - python\n"
    )
    with pytest.raises(ResourcesFailed, match="model 'broken': .*no weights here"):
        TopologyTestDriver.from_files([tmp_path / "broken.yaml"])


def test_keyless_requests_never_share_an_answer() -> None:
    # Two JSON requests without a key nor an id into a join: each gets an id of its own
    # (topic:partition:offset), carried in x-request-id, and its own answer.
    with TopologyTestDriver.from_files([EXAMPLES]) as driver:
        inputs = driver.topics.pipeline_inputs("tfsimples-join")
        rows = ([1] * 16, [2] * 16)
        for row in rows:
            document = {
                "inputs": [
                    {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": row},
                    {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": row},
                ]
            }
            driver.send(inputs, "", document)
        outputs = driver.outputs("tfsimples-join")
        assert sorted(outputs) == [f"{inputs}:0:0", f"{inputs}:0:1"]
        for offset, row in enumerate(rows):
            answer = outputs[f"{inputs}:0:{offset}"]
            assert answer.header("x-request-id") == f"{inputs}:0:{offset}"
            assert answer.arrays()["OUTPUT0"].tolist() == [[2 * v for v in row]]


def test_a_request_id_reused_after_its_answer_is_answered_again() -> None:
    with TopologyTestDriver.from_files([EXAMPLES]) as driver:
        first = driver.infer("tfsimples-join", _row_inputs(1), request_id="same")
        assert driver.output("tfsimples-join", first).arrays()["OUTPUT0"].tolist() == [[2] * 16]
        driver.infer("tfsimples-join", _row_inputs(3), request_id="same")
        answers = [
            r.arrays()["OUTPUT0"].tolist()
            for r in driver.records(driver.topics.pipeline_outputs("tfsimples-join"))
        ]
        assert answers == [[[2] * 16], [[6] * 16]]


def _row_inputs(value: int) -> dict:
    row = np.full((1, 16), value, dtype=np.int32)
    return {"INPUT0": row, "INPUT1": row}


def test_an_upstream_failure_reaches_the_outputs_of_pipelines_chained_on_it() -> None:
    with TopologyTestDriver.from_files([EXAMPLES]) as driver:
        wrong = np.zeros((1, 16), dtype=np.float32)  # tfsimple1 takes INT32
        rid = driver.infer("chain-base", {"INPUT0": wrong, "INPUT1": wrong})
        upstream = driver.output("chain-base", rid)
        assert upstream.is_error
        # Both read chain-base's outputs (externalInputs).
        for chained in ("chain-extended", "chain-extended-again"):
            answer = driver.output(chained, rid)
            assert answer.is_error, chained
            error = answer.error()
            assert (error.pipeline, error.step) == (upstream.error().pipeline, "tfsimple1")
            assert error.pipeline == "chain-base" and error.kind == "bad-input"
        # Passed on, not raised again: the errors topic holds the one failure.
        assert [e.request_id for e in driver.errors()] == [rid]


BOTH_BRANCHES = """
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: both-branches
spec:
  steps:
  - name: conditional
  - name: mul10
    inputs: [conditional.outputs.OUTPUT0]
    tensorMap: {conditional.outputs.OUTPUT0: INPUT}
  - name: add10
    inputs: [conditional.outputs.OUTPUT1]
    tensorMap: {conditional.outputs.OUTPUT1: INPUT}
  output:
    steps: [mul10, add10]
    stepsJoin: inner
"""


def _route(driver: TopologyTestDriver, pipeline: str, choice: int) -> str:
    return driver.infer(
        pipeline,
        {"INPUT": np.array([1, 2, 3, 4], np.float32), "CHOICE": np.array([choice], np.int32)},
    )


def test_an_inner_join_the_answer_needs_tells_the_caller_when_it_times_out(tmp_path: Path) -> None:
    (tmp_path / "both.yaml").write_text(BOTH_BRANCHES)
    models = [EXAMPLES / "models" / f"{m}.yaml" for m in ("conditional", "mul10", "add10")]
    with TopologyTestDriver.from_files([*models, tmp_path / "both.yaml"]) as driver:
        rid = _route(driver, "both-branches", 0)  # only mul10 fires: add10 never comes
        assert rid not in driver.outputs("both-branches")
        driver.advance(60_000)  # the default joinWindowMs
        answer = driver.output("both-branches", rid)
        assert answer.is_error
        error = answer.error()
        assert (error.kind, error.stage, error.pipeline) == ("timeout", "join", "both-branches")
        assert (
            "'add10.outputs' did not arrive" in error.reason and "'mul10.outputs'" in error.reason
        )


def test_untaken_branches_of_conditional_routing_give_no_timeout() -> None:
    with TopologyTestDriver.from_files([EXAMPLES]) as driver:
        rid = _route(driver, "conditional-routing", 1)
        assert driver.output("conditional-routing", rid).arrays()["OUTPUT"].tolist() == [11, 12, 13, 14]  # fmt: skip
        driver.advance(120_000)
        assert driver.errors() == []
        outputs = driver.records(driver.topics.pipeline_outputs("conditional-routing"))
        assert [r.key for r in outputs] == [rid]
