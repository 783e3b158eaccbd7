"""Where an exactly-once worker resumes a partition: the committed offset's metadata says
which records past it each agent still held, so nothing used is replayed."""

from __future__ import annotations

import pytest

from engine.config import ConfigError
from engine.runtime import resume
from engine.runtime.offsets import OffsetTracker
from engine.runtime.settings import WorkerSettings


def test_metadata_names_what_each_agent_held_past_the_committed_offset():
    tracker = OffsetTracker()
    tracker.consumed("t", 0, 99)
    for holder, offsets in (("p/join", [10, 11, 12, 40]), ("p/batch", [11, 70])):
        tracker.holder = holder
        for offset in offsets:
            tracker.hold(("t", 0, offset))
    tracker.holder = "p/join"
    tracker.release(("t", 0, 11))  # p/batch still holds 11
    mark = resume.marks(tracker, [("t", 0)])[("t", 0)]
    assert mark.offset == 10
    plan = resume.decode(mark.offset, mark.metadata)
    assert plan is not None and plan.end == 100
    assert plan.held == {"p/join": {10, 12, 40}, "p/batch": {11, 70}}
    # Used records are skipped, held ones go back to their holder only, new ones to all.
    assert [o for o in range(10, 102) if plan.wanted("p/join", o)] == [10, 12, 40, 100, 101]
    assert not plan.wanted("p/other", 40)


def test_metadata_too_large_for_kafka_is_left_out():
    scattered = {"p/join": list(range(0, 4000, 2))}
    assert resume.encode(0, 4000, scattered) == ""
    assert resume.decode(0, "") is None
    assert resume.decode(5, "not ours") is None


def test_the_guarantee_comes_from_the_environment_or_the_command_line():
    assert WorkerSettings.load(environ={}).processing_guarantee == "at-least-once"
    environ = {"TENSORFLUX_PROCESSING_GUARANTEE": "exactly-once"}
    assert WorkerSettings.load(environ=environ).processing_guarantee == "exactly-once"
    overridden = WorkerSettings.load(environ=environ, processing_guarantee="at-least-once")
    assert overridden.processing_guarantee == "at-least-once"


def test_a_misspelt_guarantee_names_the_variable():
    with pytest.raises(ConfigError, match="TENSORFLUX_PROCESSING_GUARANTEE='twice'"):
        WorkerSettings.load(environ={"TENSORFLUX_PROCESSING_GUARANTEE": "twice"})
