"""The diff's rules and the replayed request's payload, without Kafka."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from engine import headers as h
from engine.codec import decode_avro, decode_json, encode_avro, encode_json
from engine.messages import InferenceMessage, Tensor
from engine.replay.diff import Diff, Tolerance, compare_tensors
from engine.replay.driving import without_cyclic_gc
from engine.replay.errors import BadInvocation
from engine.replay.reading import Recorded
from engine.replay.report import Report
from engine.replay.requests import new_request_id, replay_headers, with_request_id
from engine.replay.selection import Selection
from engine.replay.sending import Pace


def _t(values: object, datatype: str | None = None, name: str = "T") -> Tensor:
    return Tensor.from_array(name, np.array(values), datatype)


def _answer(request_id: str, *tensors: Tensor) -> tuple[bytes, list]:
    return encode_avro(InferenceMessage(request_id, tensors, "response")), []


@pytest.mark.parametrize(
    ("ours", "theirs", "changed", "worst"),
    [
        (_t([1, 2, 3], "INT64"), _t([1, 2, 3], "INT64"), False, 0.0),
        (_t([1, 2, 3], "INT32"), _t([1, 2, 7], "INT32"), True, 4.0),
        (_t([True, False]), _t([True, True]), True, 1.0),
        (_t([b"a", b"b"], "BYTES"), _t([b"a", b"b"], "BYTES"), False, None),
        (_t([b"a", b"b"], "BYTES"), _t([b"a", b"c"], "BYTES"), True, None),
        (_t([1.0, 2.0], "FP32"), _t([1.0, 2.0 + 1e-6], "FP32"), False, pytest.approx(1e-6, 0.2)),
        (_t([1.0, 2.0], "FP64"), _t([1.0, 2.1], "FP64"), True, pytest.approx(0.1)),
        (_t([np.nan, 1.0], "FP32"), _t([np.nan, 1.0], "FP32"), False, 0.0),
        (_t([np.nan, 1.0], "FP32"), _t([0.0, 1.0], "FP32"), True, None),
        (_t([[1, 2]], "INT32"), _t([1, 2], "INT32"), True, None),
        (_t([1, 2], "INT64"), _t([1, 2], "INT32"), True, None),
    ],
)
def test_integers_booleans_bytes_exactly_floats_within_tolerance(ours, theirs, changed, worst):
    diff = compare_tensors(ours, theirs, Tolerance())
    assert diff.changed is changed
    assert diff.max_abs_diff == worst


def test_tolerances_are_numpys_allclose():
    ours, theirs = _t([100.0, 0.0], "FP64"), _t([100.5, 0.0], "FP64")
    assert compare_tensors(ours, theirs, Tolerance(atol=0.5, rtol=0)).changed is False
    assert compare_tensors(ours, theirs, Tolerance(atol=0, rtol=0.005)).changed is False
    assert compare_tensors(ours, theirs, Tolerance(atol=0.1, rtol=0.001)).changed is True


def test_a_diff_counts_same_changed_and_no_original_per_tensor():
    diff = Diff(Tolerance())
    same = _t([1.0, 2.0], "FP32", "A")
    assert not diff.add("r1", _answer("new-1", same), _answer("r1", same))
    assert diff.add("r2", _answer("new-2", _t([1.0, 3.0], "FP32", "A")), _answer("r2", same))
    assert diff.add("r3", _answer("new-3", same), _answer("r3", same, _t([1], "INT32", "B")))
    assert not diff.add("r4", _answer("new-4", same), None)
    report = diff.to_json()
    assert (report["same"], report["changed"], report["no_original"]) == (1, 2, 1)
    assert report["changed_ids"] == ["r2", "r3"]
    assert report["tensors"] == {
        "A": {"changed": 1, "max_abs_diff": 1.0},
        "B": {"changed": 1, "max_abs_diff": None},
    }


def test_answers_laid_out_alike_are_compared_by_their_bytes_after_the_id():
    diff = Diff(Tolerance())
    a, b = _t([1, 2], "INT32", "A"), _t([0.5], "FP32", "B")
    for i in range(3):  # unchanged answers of one layout: counted per tensor, 0 apart
        assert not diff.add(f"r{i}", _answer(f"run-0-{i}", a, b), _answer(f"r{i}", a, b))
    # the same layout, other bytes: decoded and compared (a change, then one in tolerance)
    assert diff.add("r3", _answer("run-0-3", _t([1, 5], "INT32", "A"), b), _answer("r3", a, b))
    close = _t([0.5 + 1e-7], "FP32", "B")
    assert not diff.add("r4", _answer("run-0-4", a, close), _answer("r4", a, b))
    json_answer = encode_json(InferenceMessage("run-0-5", (a, b), "response"))
    json_headers = [(h.CONTENT_TYPE, b"application/json")]
    assert not diff.add("r5", (json_answer, json_headers), _answer("r5", a, b))
    report = diff.to_json()
    assert (report["same"], report["changed"], report["changed_ids"]) == (5, 1, ["r3"])
    assert report["tensors"]["A"] == {"changed": 1, "max_abs_diff": 3.0}
    assert report["tensors"]["B"]["changed"] == 0
    assert report["tensors"]["B"]["max_abs_diff"] == pytest.approx(1e-7, rel=0.5)


def test_unchanged_answers_after_a_change_keep_its_tally_and_long_ids_compare_alike():
    diff = Diff(Tolerance())
    a = _t([1, 2], "INT32", "A")
    assert diff.add("r0", _answer("run-0-0", _t([1, 9], "INT32", "A")), _answer("r0", a))
    long_id = "x" * 100  # its Avro length takes two bytes
    for i in range(1, 4):  # unchanged, laid out alike: only the first touches the tally
        assert not diff.add(long_id, _answer(f"run-0-{i}", a), _answer(long_id, a))
    assert diff.add("r4", _answer("run-0-4", _t([1, 3], "INT32", "A")), _answer("r4", a))
    report = diff.to_json()
    assert (report["same"], report["changed"], report["changed_ids"]) == (3, 2, ["r0", "r4"])
    assert report["tensors"] == {"A": {"changed": 2, "max_abs_diff": 7.0}}


def test_a_replayed_request_has_a_new_id_and_the_same_tensor_bytes():
    tensors = (_t(np.arange(6, dtype=np.float32).reshape(2, 3), name="X"), _t([b"x"], "BYTES"))
    message = InferenceMessage("original-id", tensors, "request", model_name="m")
    record = Recorded("tensorflux.d.pipeline.p.inputs", 2, 41, 1234, "original-id", b"", [])
    new_id = new_request_id("r1", record)
    assert new_id == "r1-2-41"
    value = encode_avro(message)
    replayed = with_request_id(value, [], new_id)
    assert replayed.endswith(value[len(b"\x16original-id") :])
    assert decode_avro(replayed, "request") == message.replace(id=new_id)
    as_json = with_request_id(encode_json(message), [(h.CONTENT_TYPE, b"application/json")], new_id)
    assert decode_json(as_json, "request") == message.replace(id=new_id)
    assert with_request_id(b"\xff\xff", [], new_id) == b"\xff\xff"  # unreadable: as it was


def test_lineage_headers_replace_the_originals_identity():
    record = Recorded(
        "tensorflux.d.pipeline.p.inputs", 0, 7, 1234, "orig", b"",
        [(h.REQUEST_ID, b"orig"), (h.TRACEPARENT, b"00-abc"), (h.CONTENT_TYPE, b"application/json")],
    )  # fmt: skip
    headers = dict(replay_headers("r1", record, "r1-0-7", "p2"))
    assert headers == {
        h.CONTENT_TYPE: b"application/json",
        h.REQUEST_ID: b"r1-0-7",
        h.REPLAY_RUN: b"r1",
        h.REPLAY_OF: b"orig",
        h.REPLAY_SOURCE: b"tensorflux.d.pipeline.p.inputs:0:7",
        h.ORIGINAL_TIMESTAMP: b"1234",
        h.PIPELINE: b"p2",
    }


def test_pacing_by_rate_or_by_the_original_times():
    assert Pace().due_s(10, 5000, 1000) is None
    assert Pace(rate=4).due_s(10, 5000, 1000) == 2.5
    assert Pace(speed=2).due_s(10, 5000, 1000) == 2.0


@pytest.mark.parametrize(
    ("selection", "reason"),
    [
        (Selection(from_ms=10, to_ms=10), "is not before"),
        (Selection(from_offset=5, to_offset=2), "is not below"),
        (Selection(limit=0), "--limit"),
        (Selection(request_ids=()), "names no request id"),
    ],
)
def test_impossible_selections_are_bad_invocations(selection, reason):
    with pytest.raises(BadInvocation, match=reason):
        selection.check()


def test_exit_code_zero_only_when_all_answered_and_nothing_changed():
    assert Report("r", "p", "p", 3, sent=3, answered=3).exit_code() == 0
    assert Report("r", "p", "p", 3, sent=3, answered=2, errors=1).exit_code() == 1
    assert Report("r", "p", "p", 3, sent=3, answered=2, timed_out=1).exit_code() == 1
    changed = Diff(Tolerance(), changed=1)
    assert Report("r", "p", "p", 3, sent=3, answered=3, diff=changed).exit_code() == 1


def test_the_progress_bar_draws_on_stderr_and_is_silent_off_a_terminal(capsys):
    from engine.replay.progress import ReplayProgress

    with ReplayProgress(10, enabled=True) as bar:
        bar.update(sent=5, answered=3)
    with ReplayProgress(10) as bar:  # pytest's stderr is no terminal
        bar.update(sent=10, answered=10)
    captured = capsys.readouterr()
    assert captured.out == ""


def test_the_cyclic_collector_is_off_during_a_run_and_as_it_was_after():
    assert gc.isenabled()
    with pytest.raises(RuntimeError), without_cyclic_gc():
        assert not gc.isenabled()
        raise RuntimeError("the run failed")
    assert gc.isenabled()
    gc.disable()
    try:
        with without_cyclic_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()  # it was off before: it stays off
    finally:
        gc.enable()
