"""Ctrl-C stops a replay cleanly with its run id; --resume RUN finishes it, nothing twice, no gaps."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

from tests.runtime.helpers import ROOT

from .conftest import STEP_MS, Engine, good_id, of_run

COUNT = 400


def test_interrupted_then_resumed_replays_every_request_once(engine: Engine):
    argv = [
        sys.executable, "-m", "engine", "pipeline", "replay", "scoring", "--into", "scoring-v2",
        "--to-time", str(engine.t0 + COUNT * STEP_MS), "--rate", "200", "-o", "json",
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=ROOT, env=engine.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    started = process.stderr.readline()
    assert "replay run" in started, started
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, out + err
    found = re.search(r"sent (\d+) of (\d+); continue with: .* --resume (\S+)", err)
    assert found, err
    first_part, run = int(found.group(1)), found.group(3)
    assert found.group(2) == str(COUNT) and first_part < COUNT
    assert run in started

    resumed = engine.cli("pipeline", "replay", "--resume", run, "-o", "json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    report = json.loads(resumed.stdout)
    assert report["run"] == run
    assert report["selected"] == report["sent"] == report["answered"] == COUNT
    topic = engine.settings.topics().pipeline_inputs("scoring-v2")
    replayed = sorted(
        s.headers["tensorflux-replay-of"] for s in of_run(engine.settings, topic, run)
    )
    assert replayed == [good_id(i) for i in range(COUNT)]  # no duplicates, no gaps


def test_killed_then_resumed_replays_every_request_once(engine: Engine):
    # kill -9: nothing is flushed or printed at the end; the run is still resumable.
    argv = [
        sys.executable, "-m", "engine", "pipeline", "replay", "scoring", "--into", "scoring-v2",
        "--from-offset", "500", "--to-offset", str(500 + COUNT), "--rate", "200", "-o", "json",
    ]  # fmt: skip
    process = subprocess.Popen(
        argv, cwd=ROOT, env=engine.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    started = process.stderr.readline()
    found = re.search(r"replay run (\S+)", started)
    assert found, started
    time.sleep(1.0)
    process.kill()
    process.communicate(timeout=30)
    run = found.group(1)
    resumed = engine.cli("pipeline", "replay", "--resume", run, "-o", "json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert json.loads(resumed.stdout)["answered"] == COUNT
    topic = engine.settings.topics().pipeline_inputs("scoring-v2")
    replayed = sorted(
        s.headers["tensorflux-replay-of"] for s in of_run(engine.settings, topic, run)
    )
    assert replayed == [good_id(i) for i in range(500, 500 + COUNT)]
