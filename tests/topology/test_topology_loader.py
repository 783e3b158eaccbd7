"""Loading specs from directories as users lay them out (a checkout, a Kubernetes ConfigMap)."""

from __future__ import annotations

import os
from pathlib import Path

from engine.topology import load_files

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
