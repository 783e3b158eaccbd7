"""Golden tests of `describe` for every example pipeline (text and Mermaid).

A YAML or renderer change shows up as a diff of tests/topology/golden/. After
checking the diff is intended, regenerate with:

    TENSORFLUX_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/topology/test_topology_golden.py
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.topology import compile_topology, describe_mermaid, describe_text, load_files

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("TENSORFLUX_UPDATE_GOLDEN") == "1"

TOPOLOGY = compile_topology(
    load_files(
        [
            *sorted((EXAMPLES / "models").glob("*.yaml")),
            *sorted((EXAMPLES / "pipelines").glob("*.yaml")),
        ]
    )
)
RENDERERS = {"txt": describe_text, "mmd": describe_mermaid}


@pytest.mark.parametrize("suffix", sorted(RENDERERS))
@pytest.mark.parametrize("name", sorted(TOPOLOGY.pipelines))
def test_describe_matches_golden(name: str, suffix: str) -> None:
    rendered = RENDERERS[suffix](TOPOLOGY.pipelines[name])
    path = GOLDEN / f"{name}.{suffix}"
    if UPDATE:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(rendered)
    assert path.exists(), f"no golden file {path}; run with TENSORFLUX_UPDATE_GOLDEN=1"
    assert rendered == path.read_text()


def test_every_golden_file_belongs_to_an_example() -> None:
    expected = {f"{name}.{suffix}" for name in TOPOLOGY.pipelines for suffix in RENDERERS}
    assert {path.name for path in GOLDEN.iterdir()} == expected
