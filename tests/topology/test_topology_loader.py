"""Loading specs from directories as users lay them out (a checkout, a Kubernetes ConfigMap)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.topology import load_files, read_text

MODEL = """\
apiVersion: mlops.seldon.io/v1alpha1
kind: Model
metadata:
  name: {name}
spec:
  storageUri: ./models/{name}
  requirements: [onnx]
"""


def test_a_configmap_mount_loads_each_spec_once(tmp_path: Path) -> None:
    # The kubelet mounts a ConfigMap as KEY -> ..data/KEY, ..data -> ..<timestamp>/, so every
    # file is also reachable inside a hidden timestamped directory.
    stamp = tmp_path / "..2026_12_01_10_00_00.123"
    stamp.mkdir()
    for name in ("alpha", "beta"):
        (stamp / f"{name}.yaml").write_text(MODEL.format(name=name))
    os.symlink(stamp.name, tmp_path / "..data")
    for name in ("alpha", "beta"):
        os.symlink(f"..data/{name}.yaml", tmp_path / f"{name}.yaml")

    specs = load_files([tmp_path])

    assert sorted(specs.models) == ["alpha", "beta"]


def test_hidden_directories_and_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "alpha.yaml").write_text(MODEL.format(name="alpha"))
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "stale.yaml").write_text(MODEL.format(name="alpha"))
    (tmp_path / ".alpha.yaml.swp.yaml").write_text(MODEL.format(name="alpha"))

    assert sorted(load_files([tmp_path]).models) == ["alpha"]


def test_a_misspelt_kind_is_an_error_naming_the_kind_it_resembles() -> None:
    specs = read_text("apiVersion: mlops.seldon.io/v1alpha1\nkind: Modle\nmetadata: {name: m}\n")
    assert [str(p) for p in specs.problems] == [
        "<string>:2: unknown kind 'Modle'; did you mean 'Model'? "
        "(use Model, Pipeline or Experiment)"
    ]


def test_other_kinds_are_skipped_with_a_warning() -> None:
    text = (
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Server\nmetadata: {name: mlserver}\n---\n"
        "apiVersion: v1\nkind: Secret\nmetadata: {name: kafka}\n"
    )
    specs = read_text(text)
    assert specs.problems == []
    assert [p.message for p in specs.warnings] == [
        "kind 'Server' ignored; tensorflux reads Model, Pipeline and Experiment",
        "kind 'Secret' ignored; tensorflux reads Model, Pipeline and Experiment",
    ]


def test_an_unknown_seldon_kind_is_an_error() -> None:
    specs = read_text("apiVersion: mlops.seldon.io/v1alpha1\nkind: Graph\nmetadata: {name: g}\n")
    assert "unknown kind 'Graph' for mlops.seldon.io/v1alpha1" in str(specs.problems[0])
