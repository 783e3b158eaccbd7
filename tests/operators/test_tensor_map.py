"""Tensor selection and renaming (conditional routing by absent tensors), and joined-name clashes."""

from __future__ import annotations

import numpy as np
import pytest

from engine.messages import Tensor
from engine.operators.tensor_map import TensorNameClash, merge, select
from engine.topology import Source, TensorRef

A = Tensor.from_array("OUTPUT0", np.array([1, 2], dtype=np.int32))
B = Tensor.from_array("OUTPUT1", np.array([3, 4], dtype=np.int32))


def source(tensor: str | None = None, *renames: tuple[str, str]) -> Source:
    return Source(TensorRef("p", "s", "outputs", tensor), "topic", tuple(renames))


def test_whole_message_without_renames_is_taken_as_is() -> None:
    assert select(source(), (A, B)) == (A, B)


def test_whole_message_renamed_by_the_tensor_map() -> None:
    taken = select(source(None, ("OUTPUT0", "INPUT0"), ("OUTPUT1", "INPUT1")), (A, B))
    assert taken is not None
    assert [t.name for t in taken] == ["INPUT0", "INPUT1"]
    assert [t.data.tolist() for t in taken] == [[1, 2], [3, 4]]
    assert taken[0].datatype == "INT32" and taken[0].shape == (2,)


def test_partial_tensor_map_keeps_unmapped_names() -> None:
    taken = select(source(None, ("OUTPUT0", "X")), (A, B))
    assert taken is not None and [t.name for t in taken] == ["X", "OUTPUT1"]


def test_named_tensor_is_selected_alone_and_renamed() -> None:
    taken = select(source("OUTPUT1", ("OUTPUT1", "INPUT")), (A, B))
    assert taken is not None and [(t.name, t.data.tolist()) for t in taken] == [("INPUT", [3, 4])]


def test_named_tensor_without_rename_keeps_its_name() -> None:
    taken = select(source("OUTPUT0"), (A, B))
    assert taken == (A,)


def test_absent_named_tensor_drops_the_message_for_this_edge() -> None:
    # Conditional routing: a model that answered only OUTPUT0 does not fire OUTPUT1 readers.
    assert select(source("OUTPUT1"), (A,)) is None


def test_merge_concatenates_joined_sources_in_order() -> None:
    assert merge([("'a'", (A,)), ("'b'", (B,))]) == (A, B)


def test_merge_clash_names_both_sources_and_the_fix() -> None:
    with pytest.raises(TensorNameClash) as caught:
        merge([("'mul10.outputs'", (A,)), ("'add10.outputs'", (A,))])
    message = str(caught.value)
    assert "'OUTPUT0'" in message
    assert "'mul10.outputs'" in message and "'add10.outputs'" in message
    assert "tensorMap" in message
