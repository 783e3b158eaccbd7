"""Every pipeline semantic end to end through Kafka, with the expected tensors.

One worker serves all of examples/ plus two small pipelines written here (an
outer join with a short window, a python model that raises), so the suite pays
for one consumer-group join. Each test uses its own request ids and reads the
output topics by assignment.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import headers as h
from engine.config import KafkaSettings
from engine.messages import InferenceMessage

from .helpers import (
    MODELS,
    PIPELINES,
    Answer,
    Kafka,
    RunningWorker,
    compile_specs,
    fp32,
    int32,
    new_id,
    tensors,
)

ONE_TO_16 = list(range(1, 17))
OUTER_WINDOW_MS = 1000

RAISING_MODEL = """
import numpy as np


class Model:
    def predict(self, inputs):
        x = inputs["X"]
        if (x < 0).any():
            raise ValueError("negative input")
        return {"Y": x * 2}
"""

EXTRA_SPECS = f"""
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: doubler
spec:
  storageUri: {{doubler}}
  requirements:
  - python
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: fragile
spec:
  steps:
  - name: doubler
  output:
    steps:
    - doubler
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: outer-join
spec:
  steps:
  - name: mul10
    inputs:
    - outer-join.inputs.INPUT0
    tensorMap:
      outer-join.inputs.INPUT0: INPUT
  - name: add10
    inputs:
    - outer-join.inputs.INPUT1
    tensorMap:
      outer-join.inputs.INPUT1: INPUT
  output:
    steps:
    - mul10
    - add10
    stepsJoin: outer
    joinWindowMs: {OUTER_WINDOW_MS}
    tensorMap:
      mul10.outputs.OUTPUT: MUL
      add10.outputs.OUTPUT: ADD
---
# Seldon's own pipeline-inputs sample, without the output tensorMap of examples/.
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: seldon-inputs
spec:
  steps:
  - name: mul10
    inputs:
    - seldon-inputs.inputs.INPUT0
    tensorMap:
      seldon-inputs.inputs.INPUT0: INPUT
  - name: add10
    inputs:
    - seldon-inputs.inputs.INPUT1
    tensorMap:
      seldon-inputs.inputs.INPUT1: INPUT
  output:
    steps:
    - mul10
    - add10
---
apiVersion: mlops.seldon.io/v1alpha1
kind: Pipeline
metadata:
  name: seldon-inputs-chained
spec:
  input:
    externalInputs:
    - seldon-inputs.outputs
  steps:
  - name: add10
  output:
    steps:
    - add10
"""


@pytest.fixture(scope="module")
def settings(module_kafka_settings: KafkaSettings) -> KafkaSettings:
    return module_kafka_settings


@pytest.fixture(scope="module")
def worker(
    settings: KafkaSettings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningWorker]:
    extra: Path = tmp_path_factory.mktemp("specs")
    (extra / "doubler").mkdir()
    (extra / "doubler" / "model.py").write_text(RAISING_MODEL)
    (extra / "extra.yaml").write_text(EXTRA_SPECS.replace("{doubler}", str(extra / "doubler")))
    running = RunningWorker(settings, compile_specs(settings, [MODELS, PIPELINES, extra]))
    yield running
    running.stop()


@pytest.fixture
def kafka(settings: KafkaSettings, worker: RunningWorker) -> Iterator[Kafka]:
    client = Kafka(settings)
    yield client
    client.close()
    worker.check_alive()


def tfsimple_inputs() -> dict[str, object]:
    row = int32(*ONE_TO_16, shape=(1, 16))
    return {"INPUT0": row, "INPUT1": row}


def test_chain_tfsimples(kafka: Kafka) -> None:
    rid = new_id()
    kafka.infer("tfsimples", rid, **tfsimple_inputs())
    answer = kafka.outputs("tfsimples", [rid])[rid]
    doubled = [[2 * v for v in ONE_TO_16]]
    assert answer.arrays() == {"OUTPUT0": doubled, "OUTPUT1": doubled}
    assert h.header_value(answer.headers, h.PIPELINE) == "tfsimples"
    assert answer.response().model_name == "tfsimples"  # as HTTP says, not the last model
    # The intermediate tensors are on the step topics: tfsimple1 saw the request as sent.
    sent = kafka.collect(kafka.topics.step_inputs("tfsimples", "tfsimple1"), [rid])[rid]
    assert {t.name: t.data.tolist() for t in sent.request().tensors} == {
        "INPUT0": [ONE_TO_16],
        "INPUT1": [ONE_TO_16],
    }
    first = kafka.collect(kafka.topics.step_outputs("tfsimples", "tfsimple1"), [rid])[rid]
    assert first.arrays() == {"OUTPUT0": doubled, "OUTPUT1": [[0] * 16]}


def test_join_tfsimples_join(kafka: Kafka) -> None:
    ids = [new_id() for _ in range(3)]
    for rid in ids:
        kafka.infer("tfsimples-join", rid, **tfsimple_inputs())
    answers = kafka.outputs("tfsimples-join", ids)
    # tfsimple3(INPUT0 = tfsimple1.OUTPUT0 = 2x, INPUT1 = tfsimple2.OUTPUT1 = 0)
    doubled = [[2 * v for v in ONE_TO_16]]
    for rid in ids:
        assert answers[rid].arrays() == {"OUTPUT0": doubled, "OUTPUT1": doubled}


def test_conditional_routing(kafka: Kafka) -> None:
    first, second = new_id("choice0"), new_id("choice1")
    kafka.infer("conditional-routing", first, INPUT=fp32(1, 2, 3, 4), CHOICE=int32(0))
    kafka.infer("conditional-routing", second, INPUT=fp32(1, 2, 3, 4), CHOICE=int32(1))
    answers = kafka.outputs("conditional-routing", [first, second])
    assert answers[first].arrays() == {"OUTPUT": [10, 20, 30, 40]}
    assert answers[second].arrays() == {"OUTPUT": [11, 12, 13, 14]}
    # Only the chosen branch ran: mul10 never saw CHOICE=1, add10 never saw CHOICE=0.
    mul10 = kafka.collect(kafka.topics.step_inputs("conditional-routing", "mul10"), [first])
    add10 = kafka.collect(kafka.topics.step_inputs("conditional-routing", "add10"), [second])
    assert mul10[first].request().names() == ("INPUT",)
    assert add10[second].request().names() == ("INPUT",)
    with pytest.raises(AssertionError, match="no record"):
        kafka.collect(
            kafka.topics.step_inputs("conditional-routing", "mul10"), [second], deadline_s=0.5
        )


def test_trigger_joins(kafka: Kafka) -> None:
    untriggered, by_ok1, by_ok2, by_ok3 = (new_id(label) for label in ("none", "ok1", "ok2", "ok3"))
    flag = int32(1)
    # Produced first: when the later requests are answered, this one has been seen.
    kafka.infer("trigger-joins", untriggered, INPUT=fp32(1, 2, 3, 4))
    kafka.infer("trigger-joins", by_ok1, INPUT=fp32(1, 2, 3, 4), ok1=flag)
    kafka.infer("trigger-joins", by_ok2, INPUT=fp32(1, 2, 3, 4), ok2=flag)
    kafka.infer("trigger-joins", by_ok3, INPUT=fp32(1, 2, 3, 4), ok3=flag)
    answers = kafka.outputs("trigger-joins", [by_ok1, by_ok2, by_ok3])
    assert answers[by_ok1].arrays() == {"OUTPUT": [10, 20, 30, 40]}  # mul10: ok1 or ok2
    assert answers[by_ok2].arrays() == {"OUTPUT": [10, 20, 30, 40]}
    assert answers[by_ok3].arrays() == {"OUTPUT": [11, 12, 13, 14]}  # add10: ok3
    mul10 = kafka.collect(kafka.topics.step_inputs("trigger-joins", "mul10"), [by_ok1, by_ok2])
    # Trigger tensors gate the step but are not passed to the model.
    assert mul10[by_ok1].request().names() == ("INPUT",)
    for step in ("mul10", "add10"):
        with pytest.raises(AssertionError, match="no record"):
            kafka.collect(
                kafka.topics.step_inputs("trigger-joins", step), [untriggered], deadline_s=0.3
            )


def test_pipeline_inputs_steps_read_named_input_tensors(kafka: Kafka) -> None:
    rid = new_id()
    kafka.infer("pipeline-inputs", rid, INPUT0=fp32(1, 2, 3, 4), INPUT1=fp32(1, 2, 3, 4))
    mul10 = kafka.collect(kafka.topics.step_outputs("pipeline-inputs", "mul10"), [rid])[rid]
    add10 = kafka.collect(kafka.topics.step_outputs("pipeline-inputs", "add10"), [rid])[rid]
    assert mul10.arrays() == {"OUTPUT": [10, 20, 30, 40]}
    assert add10.arrays() == {"OUTPUT": [11, 12, 13, 14]}
    # Both steps answer a tensor called OUTPUT; the output's tensorMap tells them apart.
    answer = kafka.outputs("pipeline-inputs", [rid])[rid]
    assert answer.arrays() == {"MUL10": [10, 20, 30, 40], "ADD10": [11, 12, 13, 14]}


def test_duplicate_output_names_are_answered_in_order_as_seldon_does(kafka: Kafka) -> None:
    rid = new_id()
    kafka.infer("seldon-inputs", rid, INPUT0=fp32(1, 2, 3, 4), INPUT1=fp32(1, 2, 3, 4))
    answer = kafka.outputs("seldon-inputs", [rid])[rid].response()
    # Seldon's documented answer: two tensors both named OUTPUT, the output steps' order.
    assert [(t.name, t.data.tolist()) for t in answer.tensors] == [
        ("OUTPUT", [10, 20, 30, 40]),
        ("OUTPUT", [11, 12, 13, 14]),
    ]
    # Into a model they stay an error: a pipeline chained on that answer hears which.
    failed = kafka.outputs("seldon-inputs-chained", [rid])[rid]
    assert failed.is_error, failed
    reason = failed.error().reason
    assert "'OUTPUT' appears twice in 'seldon-inputs.outputs'" in reason, reason


def test_outer_join_answers_at_once_when_complete_and_at_window_end_otherwise(
    kafka: Kafka,
) -> None:
    both, only_mul = new_id("both"), new_id("mul")
    kafka.infer("outer-join", both, INPUT0=fp32(1, 2, 3, 4), INPUT1=fp32(1, 2, 3, 4))
    kafka.infer("outer-join", only_mul, INPUT0=fp32(1, 2, 3, 4))
    sent_at = kafka.collect(kafka.topics.pipeline_inputs("outer-join"), [only_mul])[only_mul]
    answers = kafka.outputs("outer-join", [both, only_mul])
    assert answers[both].arrays() == {"MUL": [10, 20, 30, 40], "ADD": [11, 12, 13, 14]}
    assert answers[only_mul].arrays() == {"MUL": [10, 20, 30, 40]}
    # Nothing more will come for `only_mul`: the wall clock closed its window.
    assert answers[only_mul].timestamp_ms - sent_at.timestamp_ms >= OUTER_WINDOW_MS


def test_pipeline_to_pipeline_chaining(kafka: Kafka) -> None:
    rid = new_id()
    kafka.infer("chain-base", rid, **tfsimple_inputs())
    doubled = [[2 * v for v in ONE_TO_16]]
    quadrupled = [[4 * v for v in ONE_TO_16]]
    zeros = [[0] * 16]
    assert kafka.outputs("chain-base", [rid])[rid].arrays() == {
        "OUTPUT0": doubled,
        "OUTPUT1": zeros,
    }
    for pipeline in ("chain-extended", "chain-extended-again", "chain-from-step"):
        assert kafka.outputs(pipeline, [rid])[rid].arrays() == {
            "OUTPUT0": doubled,
            "OUTPUT1": doubled,
        }, pipeline
    # chain-combined: OUTPUT0 of one extension + OUTPUT1 of the other = 4,8,...,64.
    for pipeline in ("chain-combined", "chain-triggered"):
        assert kafka.outputs(pipeline, [rid])[rid].arrays() == {
            "OUTPUT0": quadrupled,
            "OUTPUT1": zeros,
        }, pipeline


def test_batching_gives_every_request_its_own_answer(kafka: Kafka) -> None:
    ids = [new_id(f"b{i}") for i in range(9)]
    for i, rid in enumerate(ids):
        kafka.producer.produce(
            kafka.topics.pipeline_inputs("add10-batch"),
            kafka_encode(rid, INPUT=fp32(i, i + 1, i + 2, i + 3)),
            rid,
        )
    kafka.producer.flush(10)
    answers = kafka.outputs("add10-batch", ids)
    for i, rid in enumerate(ids):
        assert answers[rid].arrays() == {"OUTPUT": [i + 10, i + 11, i + 12, i + 13]}
        assert answers[rid].response().id == rid


def test_cyclic_counter_ends_normally_and_errors_past_max_step_revisits(kafka: Kafka) -> None:
    done, runaway = new_id("done"), new_id("runaway")
    kafka.infer("counter", done, COUNT=int32(0))
    # From -12, increment must run 22 times to reach 10; maxStepRevisits is 20.
    kafka.infer("counter", runaway, COUNT=int32(-12))
    answers = kafka.outputs("counter", [done, runaway])
    assert answers[done].arrays() == {"COUNT": [10]}
    error = answers[runaway].error()
    assert (error.pipeline, error.step, error.request_id) == ("counter", "increment", runaway)
    assert "maxStepRevisits is 20" in error.reason
    assert kafka.collect(kafka.topics.errors(), [runaway])[runaway].error().stage == "revisits"


def test_errors_are_data_and_the_stream_goes_on(kafka: Kafka) -> None:
    garbage, wrong_shape, raises, good, good_fragile = (
        new_id(label) for label in ("garbage", "shape", "raises", "good", "fine")
    )
    kafka.send(kafka.topics.pipeline_inputs("tfsimples"), garbage, b"\xff\x00not avro at all")
    kafka.infer(
        "tfsimples",
        wrong_shape,
        INPUT0=int32(*range(8), shape=(1, 8)),
        INPUT1=int32(*range(8), shape=(1, 8)),
    )
    kafka.infer("fragile", raises, X=fp32(1, -1))
    kafka.infer("tfsimples", good, **tfsimple_inputs())
    kafka.infer("fragile", good_fragile, X=fp32(1, 2))

    outputs = kafka.outputs("tfsimples", [garbage, wrong_shape, good])
    fragile = kafka.outputs("fragile", [raises, good_fragile])
    errors = kafka.collect(kafka.topics.errors(), [garbage, wrong_shape, raises])

    assert outputs[good].arrays()["OUTPUT0"] == [[2 * v for v in ONE_TO_16]]
    assert fragile[good_fragile].arrays() == {"Y": [2, 4]}
    expected = {
        garbage: ("tfsimples", "tfsimple1", "decode", "bad-input"),
        wrong_shape: ("tfsimples", "tfsimple1", "model", "bad-input"),
        raises: ("fragile", "doubler", "model", "model-failure"),
    }
    for rid, (pipeline, step, stage, kind) in expected.items():
        on_outputs = (fragile if pipeline == "fragile" else outputs)[rid]
        for record in (on_outputs, errors[rid]):
            assert record.is_error
            assert h.header_value(record.headers, h.ERROR) == kind
            error = record.error()
            assert (error.pipeline, error.step, error.request_id, error.stage, error.kind) == (
                pipeline,
                step,
                rid,
                stage,
                kind,
            )
            assert error.reason
    assert "negative input" in errors[raises].error().reason
    assert "16" in errors[wrong_shape].error().reason  # names the shape the model wants
    assert errors[garbage].error().payload == b"\xff\x00not avro at all"


def test_oip_json_input(kafka: Kafka) -> None:
    rid = new_id("json")
    kafka.infer_json("tfsimples", rid, **tfsimple_inputs())
    answer = kafka.outputs("tfsimples", [rid])[rid]
    assert answer.arrays()["OUTPUT0"] == [[2 * v for v in ONE_TO_16]]
    assert answer.response().id == rid


def _json_document(answer: Answer) -> dict:
    """The answer as a kcat user reads it: JSON, said so by its content-type header."""
    assert h.header_value(answer.headers, h.CONTENT_TYPE) == "application/json"
    return json.loads(answer.value)


def test_json_requests_on_kafka_are_answered_as_json(kafka: Kafka) -> None:
    doubled = [2 * v for v in ONE_TO_16]
    chained, joined, direct, avro = (new_id(label) for label in ("chain", "join", "model", "avro"))
    kafka.infer_json("tfsimples", chained, **tfsimple_inputs())  # two steps, fused output
    kafka.infer_json("tfsimples-join", joined, **tfsimple_inputs())  # a join, an output node
    kafka.infer("tfsimples", avro, **tfsimple_inputs())
    for pipeline, rid in (("tfsimples", chained), ("tfsimples-join", joined)):
        document = _json_document(kafka.outputs(pipeline, [rid])[rid])
        assert (document["id"], document["model_name"]) == (rid, pipeline)
        outputs = {o["name"]: o for o in document["outputs"]}
        assert outputs["OUTPUT0"]["data"] == doubled
        assert outputs["OUTPUT0"]["datatype"] == "INT32"
    # Between steps the records stay Avro; Avro requests keep Avro answers.
    step_record = kafka.collect(kafka.topics.step_outputs("tfsimples", "tfsimple1"), [chained])
    assert h.header_value(step_record[chained].headers, h.CONTENT_TYPE) is None
    assert step_record[chained].response().id == chained
    plain = kafka.outputs("tfsimples", [avro])[avro]
    assert h.header_value(plain.headers, h.CONTENT_TYPE) is None
    assert plain.arrays()["OUTPUT0"] == [doubled]
    kafka.infer_json("", direct, topic=kafka.topics.model_inputs("mul10"), INPUT=fp32(1, 2, 3, 4))
    answer = kafka.collect(kafka.topics.model_outputs("mul10"), [direct])[direct]
    document = _json_document(answer)
    assert document["model_name"] == "mul10"
    assert document["outputs"][0]["data"] == [10, 20, 30, 40]


def test_direct_model_inference(kafka: Kafka) -> None:
    good, bad = new_id("model"), new_id("bad")
    message = InferenceMessage(good, tensors(INPUT=fp32(1, 2, 3, 4)), "request")
    kafka.send(kafka.topics.model_inputs("mul10"), good, message)
    kafka.send(kafka.topics.model_inputs("mul10"), bad, b"garbage")
    answers = kafka.collect(kafka.topics.model_outputs("mul10"), [good, bad])
    assert answers[good].arrays() == {"OUTPUT": [10, 20, 30, 40]}
    assert answers[good].response().model_name == "mul10"
    error = answers[bad].error()
    assert (error.pipeline, error.step, error.request_id) == ("", "mul10", bad)


def kafka_encode(rid: str, **arrays: object) -> bytes:
    from engine.codec import encode_avro

    return encode_avro(InferenceMessage(rid, tensors(**arrays), "request"))


def test_keyless_requests_and_reused_request_ids_are_each_answered(kafka: Kafka) -> None:
    import time

    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from engine.codec import decode_payload, encode_json

    pipeline = "tfsimples-join"
    inputs = kafka.topics.pipeline_inputs(pipeline)
    rid = new_id("reused")
    kafka.infer(pipeline, rid, **tfsimple_inputs())
    kafka.outputs(pipeline, [rid])  # answered: the id is free to be used again
    row = int32(*[3] * 16, shape=(1, 16))
    kafka.infer(pipeline, rid, INPUT0=row, INPUT1=row)
    for value in (5, 7):  # two keyless JSON requests, no id anywhere
        keyless = int32(*[value] * 16, shape=(1, 16))
        message = InferenceMessage("", tensors(INPUT0=keyless, INPUT1=keyless), "request")
        kafka.producer.produce(
            inputs, encode_json(message).replace(b'"id":"",', b""), None,
            headers=[(h.CONTENT_TYPE, b"application/json")],
        )  # fmt: skip
    kafka.producer.flush(10)

    consumer = Consumer(kafka.settings.consumer_config(new_id("reader")))
    consumer.assign([TopicPartition(kafka.topics.pipeline_outputs(pipeline), 0, OFFSET_BEGINNING)])
    answers: dict[str, list[list[int]]] = {}
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            for record in consumer.consume(100, timeout=0.1):
                if record.error() is not None:
                    continue
                key = (record.key() or b"").decode()
                if key == rid or key.startswith(f"{inputs}:"):
                    # The id it was given travels in x-request-id, as the key does.
                    assert h.header_value(record.headers(), h.REQUEST_ID) == key, key
                    reply = decode_payload(record.value(), record.headers() or [], "response")
                    first = reply.as_arrays()["OUTPUT0"].tolist()[0]
                    answers.setdefault(key, []).append(first[0])
            if len(answers.get(rid, ())) >= 2 and len(answers) >= 3:
                break
    finally:
        consumer.close()
    assert answers.get(rid) == [2, 6], answers  # the reused id, answered twice
    keyless = {k: v for k, v in answers.items() if k != rid}
    assert sorted(v[0] for v in keyless.values()) == [10, 14], answers  # one answer each


def test_an_upstream_failure_reaches_a_chained_pipelines_caller(kafka: Kafka) -> None:
    rid = new_id("chain-fail")
    wrong = fp32(*[0.0] * 16)  # tfsimple1 takes INT32 [1,16]
    kafka.infer("chain-base", rid, INPUT0=wrong, INPUT1=wrong)
    answer = kafka.outputs("chain-extended", [rid])[rid]
    assert answer.is_error
    error = answer.error()
    assert (error.pipeline, error.step, error.kind) == ("chain-base", "tfsimple1", "bad-input")


def test_an_inner_join_that_expires_answers_its_caller_with_a_timeout(kafka: Kafka) -> None:
    # tfsimple3 joins tfsimple1's and tfsimple2's answers within 5000 ms; here only
    # tfsimple1's comes (as when the other branch's step lost the request).
    rid = new_id("half")
    row = int32(*[1] * 16, shape=(1, 16))
    half = InferenceMessage(rid, tensors(OUTPUT0=row, OUTPUT1=row), "response")
    kafka.send(kafka.topics.step_outputs("tfsimples-join", "tfsimple1"), rid, half)
    answer = kafka.outputs("tfsimples-join", [rid])[rid]
    assert answer.is_error, answer
    error = answer.error()
    assert (error.kind, error.pipeline, error.request_id) == ("timeout", "tfsimples-join", rid)
    assert "tfsimple2.outputs" in error.reason, error.reason
