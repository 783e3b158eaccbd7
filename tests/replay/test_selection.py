"""Selection: exactly the requests inside a window, offsets, ids, limits; dry runs send nothing."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine.replay.errors import BadInvocation
from engine.replay.sending import Pace
from tests.runtime.helpers import ROOT

from .conftest import GOOD, STEP_MS, Engine, good_id, of_run, read_topic, request


def _replayed(engine: Engine, report: dict, pipeline: str = "scoring-v2") -> list[str]:
    """The original ids the run sent, as the target's inputs topic has them (with repeats)."""
    topic = engine.settings.topics().pipeline_inputs(pipeline)
    return [
        s.headers["tensorflux-replay-of"] for s in of_run(engine.settings, topic, report["run"])
    ]


def test_a_time_window_in_the_middle_replays_exactly_the_requests_inside_it(engine: Engine):
    start, end = engine.t0 + 300 * STEP_MS, engine.t0 + 600 * STEP_MS
    report = engine.replay("scoring", into="scoring-v2", from_ms=start, to_ms=end)
    assert report["exit_code"] == 0
    assert report["selected"] == report["sent"] == report["answered"] == 300
    replayed = _replayed(engine, report)
    assert sorted(replayed) == [good_id(i) for i in range(300, 600)]  # none twice, none missed


def test_windows_ending_and_starting_inside_record_batches_are_exact(engine: Engine):
    # The recorded burst went out in a few large record batches; one-record windows at odd
    # places still find exactly that record (dry runs: what would be sent).
    for i in (1, 333, GOOD - 1):
        stamp = engine.t0 + i * STEP_MS
        report = engine.replay(
            "scoring", into="scoring-v2", from_ms=stamp, to_ms=stamp + 1, dry_run=True
        )
        assert report["selected"] == 1
        assert report["dry_run"]["partitions"]["0"]["first_offset"] == i


def test_offsets_from_inclusive_to_exclusive(engine: Engine):
    report = engine.replay("scoring", into="scoring-v2", from_offset=100, to_offset=110)
    assert sorted(_replayed(engine, report)) == [good_id(i) for i in range(100, 110)]


def test_limit_takes_the_oldest(engine: Engine):
    report = engine.replay("scoring", into="scoring-v2", limit=5, pace=Pace(speed=10))
    assert report["selected"] == 5 and report["exit_code"] == 0
    assert sorted(_replayed(engine, report)) == [good_id(i) for i in range(5)]


def test_request_ids_repeated_and_from_a_file(engine: Engine, tmp_path: Path):
    ids = tmp_path / "ids.txt"
    ids.write_text(f"# picked by hand\n{good_id(7)}\n\n{good_id(70)}\n")
    report = engine.replay_json(
        "scoring", "--into", "scoring-v2", "--request-id", f"@{ids}",
        "--request-id", good_id(700), "--request-id", "not-recorded", expect=0,
    )  # fmt: skip
    assert sorted(_replayed(engine, report)) == [good_id(7), good_id(70), good_id(700)]


def test_dry_run_sends_nothing_and_says_what_it_would_send(engine: Engine):
    topic = engine.settings.topics().pipeline_inputs("scoring-v2")
    before = len(read_topic(engine.settings, topic))
    report = engine.replay_json(
        "scoring", "--into", "scoring-v2", "--to-time", str(engine.t0 + 50 * STEP_MS),
        "--dry-run", expect=0,
    )  # fmt: skip
    assert report["selected"] == 50 and report["sent"] == 0
    summary = report["dry_run"]
    assert summary["partitions"]["0"]["requests"] == 50
    assert summary["first_timestamp_ms"] == engine.t0
    assert summary["last_timestamp_ms"] == engine.t0 + 49 * STEP_MS
    assert summary["bytes"] == 50 * len(request(good_id(0), 0.0))
    assert len(read_topic(engine.settings, topic)) == before


def test_bad_invocations_exit_2_saying_why(engine: Engine):
    for args, reason in {
        ("nosuch",): "no pipeline 'nosuch'",
        ("scoring", "--from-time", "2h", "--to-time", "3h"): "is not before",
    }.items():
        result = engine.cli("pipeline", "replay", *args)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert reason in result.stderr, (args, result.stderr)
    for source, options, reason in (
        ("scoring", {"into": "nosuch"}, "no pipeline 'nosuch' is loaded"),
        ("scoring.step.nosuch", {}, "no step 'nosuch'"),
        ("scoring", {"to_ms": engine.t0 - 1000}, "nothing to replay"),
        (None, {"resume": "r-nosuch"}, "no replay run 'r-nosuch'"),
    ):
        with pytest.raises(BadInvocation, match=reason):
            engine.replay(source, **options)


def test_only_what_was_on_the_topic_when_the_replay_started(engine: Engine):
    # A pipeline replayed into itself while live traffic keeps coming: neither the live
    # requests that arrive after it started nor its own replays are chased.
    started = time.time_ns() // 1_000_000
    topic = engine.settings.topics().pipeline_inputs("scoring")
    stop = threading.Event()
    sent = [0]

    def live() -> None:
        while not stop.is_set():
            engine.kafka.send(topic, f"live-{sent[0]}", request(f"live-{sent[0]}", 1.0))
            sent[0] += 1
            time.sleep(0.02)

    feeder = threading.Thread(target=live)
    feeder.start()
    try:
        time.sleep(0.5)
        before_start = sent[0]
        process = subprocess.Popen(
            [sys.executable, "-m", "engine", "pipeline", "replay", "scoring", "--from-time",
             str(started), "--rate", "100", "-o", "json"],
            cwd=ROOT, env=engine.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None
        line = process.stderr.readline()  # printed once the selection is made
        assert "replay run" in line, line
        after_start = sent[0]
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, out + err
    finally:
        stop.set()
        feeder.join()
    report = json.loads(out)
    replayed = _replayed(engine, report, "scoring")
    assert len(replayed) == len(set(replayed)) == report["selected"] == report["answered"]
    assert {f"live-{j}" for j in range(before_start)} <= set(replayed)
    assert not {f"live-{j}" for j in range(after_start, sent[0])} & set(replayed)
    assert after_start < sent[0]  # live traffic did come while it ran
