"""Lineage and `pipeline trace`: a request's records through its pipeline, a chained one
and its replays, every record of a replay marked as one."""

from __future__ import annotations

import json

from .conftest import Engine, good_id, of_run

LINEAGE = ("tensorflux-replay-run", "tensorflux-replay-of", "tensorflux-replay-source",
           "tensorflux-original-timestamp")  # fmt: skip


def _trace(engine: Engine, request_id: str) -> dict:
    result = engine.cli("pipeline", "trace", request_id, "-o", "json")
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_a_replay_is_marked_everywhere_and_traced_both_ways(engine: Engine):
    original = good_id(123)
    report = engine.replay("scoring", request_ids=(original,))
    assert report["exit_code"] == 0
    topics = engine.settings.topics()
    trail_topics = [
        (topics.pipeline_inputs("scoring"), "request"),
        (topics.step_inputs("scoring", "scale"), "request"),
        (topics.step_outputs("scoring", "scale"), "response"),
        (topics.step_inputs("scoring", "score"), "request"),
        (topics.step_outputs("scoring", "score"), "response"),
        (topics.pipeline_outputs("scoring"), "response"),
        (topics.step_inputs("scoring-audit", "scale"), "request"),
        (topics.pipeline_outputs("scoring-audit"), "response"),
    ]
    # Every record written for the replay, the chained pipeline's too, carries its lineage.
    written = [
        r for topic, _ in trail_topics for r in of_run(engine.settings, topic, report["run"])
    ]
    assert len(written) == len(trail_topics)
    replay_id = written[0].key
    for record in written:
        assert record.key == replay_id != original
        assert all(name in record.headers for name in LINEAGE)
        assert record.headers["tensorflux-replay-of"] == original
        assert (
            record.headers["tensorflux-replay-source"]
            == f"{topics.pipeline_inputs('scoring')}:0:123"
        )

    trail = _trace(engine, original)
    assert trail["request_id"] == original
    records = trail["records"]
    stamps = [r["timestamp_ms"] for r in records]
    assert stamps == sorted(stamps)
    hops = {(r["topic"], r["kind"], r["request_id"]) for r in records}
    for topic, kind in trail_topics:
        assert (topic, kind, original) in hops, (topic, kind)  # the original and its chain
        assert (topic, kind, replay_id) in hops, (topic, kind)  # its replay
    first = records[0]
    assert first["topic"] == topics.pipeline_inputs("scoring") and first["kind"] == "request"
    assert first["tensors"] == [{"name": "X", "datatype": "FP32", "shape": [4]}]
    assert (first["pipeline"], first["step"]) == ("scoring", None)
    assert set(first) >= {"topic", "partition", "offset", "timestamp_ms", "kind", "pipeline",
                          "step", "tensors"}  # fmt: skip
    score = next(r for r in records if r["topic"] == topics.step_outputs("scoring", "score"))
    assert (score["pipeline"], score["step"]) == ("scoring", "score")
    assert score["tensors"] == [{"name": "S", "datatype": "FP32", "shape": [4]}]

    # From the replay back to the original it replays.
    back = _trace(engine, replay_id)
    mine = {hop for hop in hops if hop[2] in (original, replay_id)}
    assert {(r["topic"], r["kind"], r["request_id"]) for r in back["records"]} == mine


def test_trace_of_an_unknown_request_says_so(engine: Engine):
    result = engine.cli("pipeline", "trace", "no-such-request")
    assert result.returncode == 1 and "no record of request 'no-such-request'" in result.stderr
