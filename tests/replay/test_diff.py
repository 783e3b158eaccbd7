"""--diff: unchanged pipelines, a v2 with one model changed, originally failed requests, steps."""

from __future__ import annotations

import json
import time
from pathlib import Path

from engine.codec import decode_avro
from engine.replay.diff import Tolerance

from .conftest import (
    FAILING,
    FAILING_FROM_MS,
    GOOD,
    STEP_MS,
    Engine,
    failing_id,
    good_id,
    of_run,
    read_topic,
    request,
)

REPORT_KEYS = {
    "run",
    "source",
    "target",
    "selected",
    "sent",
    "answered",
    "errors",
    "timed_out",
    "diff",
}
DIFF_KEYS = {"same", "changed", "no_original", "changed_ids", "tensors", "first_divergent_step"}


def _good(engine: Engine) -> tuple[str, ...]:
    return ("--to-time", str(engine.t0 + GOOD * STEP_MS))


def test_replay_into_the_unchanged_pipeline_changes_nothing(engine: Engine):
    report = engine.replay_json("scoring", *_good(engine), "--diff", expect=0)
    assert set(report) == REPORT_KEYS and set(report["diff"]) == DIFF_KEYS
    assert report["source"] == report["target"] == "scoring"
    assert report["selected"] == report["sent"] == report["answered"] == GOOD
    assert report["errors"] == report["timed_out"] == 0
    diff = report["diff"]
    assert (diff["same"], diff["changed"], diff["no_original"]) == (GOOD, 0, 0)
    assert diff["changed_ids"] == [] and diff["first_divergent_step"] == {}
    assert diff["tensors"] == {"S": {"changed": 0, "max_abs_diff": 0.0}}


def test_a_v2_with_one_model_changed(engine: Engine, tmp_path: Path):
    path = tmp_path / "report.json"
    result = engine.cli(
        "pipeline", "replay", "scoring", "--into", "scoring-v2", *_good(engine), "--diff",
        "-o", "json", "--report", str(path),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    report = json.loads(result.stdout)
    affected = [good_id(i) for i in range(GOOD) if i / 4 * 2 > 200]  # score-v2 adds 0.5 there
    diff = report["diff"]
    assert report["answered"] == GOOD
    assert sorted(diff["changed_ids"]) == affected
    assert (diff["same"], diff["changed"]) == (GOOD - len(affected), len(affected))
    assert diff["tensors"] == {"S": {"changed": len(affected), "max_abs_diff": 0.5}}
    assert diff["first_divergent_step"] == {"score-v2": len(affected)}
    assert json.loads(path.read_text()) == report
    markdown = path.with_suffix(".md").read_text()
    assert "| score-v2 | 599 |" in markdown and f"`{affected[0]}`" in markdown


def test_a_looser_tolerance_accepts_the_change(engine: Engine):
    report = engine.replay(
        "scoring", into="scoring-v2", from_offset=995, to_offset=GOOD, diff=Tolerance(atol=0.6)
    )
    assert report["exit_code"] == 0 and report["diff"]["changed"] == 0
    assert report["diff"]["tensors"]["S"]["max_abs_diff"] == 0.5


def test_requests_that_originally_failed(engine: Engine):
    failing = (
        "--from-time", str(engine.t0 + FAILING_FROM_MS),
        "--to-time", str(engine.t0 + FAILING_FROM_MS + FAILING * STEP_MS),
    )  # fmt: skip
    # score-v2 accepts them: answered, with no original answer to compare with.
    fixed = engine.replay_json("scoring", "--into", "scoring-v2", *failing, "--diff", expect=0)
    assert fixed["selected"] == fixed["answered"] == FAILING
    assert fixed["diff"]["no_original"] == FAILING and fixed["diff"]["changed"] == 0
    # The unchanged pipeline refuses them again: error records, exit 1.
    again = engine.replay_json("scoring", *failing, "--diff", expect=1)
    assert again["errors"] == FAILING and again["answered"] == 0
    assert again["diff"]["same"] == again["diff"]["no_original"] == 0
    # Those error records carry the lineage headers, on the errors topic too.
    errors = of_run(engine.settings, engine.settings.topics().errors(), again["run"])
    assert sorted(s.headers["tensorflux-replay-of"] for s in errors) == [
        failing_id(j) for j in range(FAILING)
    ]
    assert all(s.headers["tensorflux-error"] == "model-failure" for s in errors)


def test_a_step_replayed_into_a_model(engine: Engine):
    picked = [good_id(i) for i in (3, 250, 400, 401, 402, 999)]
    args = [arg for i in picked for arg in ("--request-id", i)]
    report = engine.replay_json(
        "scoring.step.score", "--into-model", "score-v2", *args, "--diff", expect=1
    )
    assert report["target"] == "model/score-v2"
    assert report["selected"] == report["answered"] == len(picked)
    assert sorted(report["diff"]["changed_ids"]) == [good_id(i) for i in (401, 402, 999)]
    assert report["diff"]["first_divergent_step"] == {}
    # What the model got is what the step had sent, tensors byte for byte.
    topics = engine.settings.topics()
    sent = {s.headers["tensorflux-replay-of"]: s for s in of_run(
        engine.settings, topics.model_inputs("score-v2"), report["run"])}  # fmt: skip
    recorded = {
        s.key: s for s in read_topic(engine.settings, topics.step_inputs("scoring", "score"))
    }
    for original in picked:
        ours, theirs = (
            decode_avro(sent[original].value, "request"),
            decode_avro(recorded[original].value, "request"),
        )
        assert ours.id == sent[original].key != original
        assert [t.data.tobytes() for t in ours.tensors] == [
            t.data.tobytes() for t in theirs.tensors
        ]


def test_a_step_replayed_into_its_own_model_by_default(engine: Engine):
    report = engine.replay("scoring.step.score", request_ids=(good_id(500),), diff=Tolerance())
    assert report["target"] == "model/score" and report["diff"]["same"] == 1
    assert report["exit_code"] == 0


def test_an_id_used_twice_is_compared_with_its_own_answer(engine: Engine):
    # good-0005 again, later, with another X: its replay compares with the second answer.
    asked = time.time_ns() // 1_000_000
    topic = engine.settings.topics().pipeline_inputs("scoring")
    engine.kafka.send(topic, good_id(5), request(good_id(5), 7.0))
    outputs = engine.settings.topics().pipeline_outputs("scoring")
    deadline = time.monotonic() + 30
    while sum(s.key == good_id(5) for s in read_topic(engine.settings, outputs)) < 2:
        assert time.monotonic() < deadline, "the second good-0005 was never answered"
        time.sleep(0.1)
    report = engine.replay("scoring", from_ms=asked, request_ids=(good_id(5),), diff=Tolerance())
    assert report["selected"] == 1 and report["exit_code"] == 0
    assert report["diff"]["same"] == 1
