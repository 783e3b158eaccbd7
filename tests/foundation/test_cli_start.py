"""The CLI starts without the engine's heavy imports (issue 13: `status`, `list`, `load`
and `unload` answer within a second on an idle engine; ~1 s of it was imports).

Each check runs in a fresh interpreter, so what an earlier test imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = ("numpy", "onnxruntime", "fastavro", "fastapi", "uvicorn", "grpc", "rich", "sklearn")


def _imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def test_building_the_parser_imports_no_runtime_codec_or_gateway() -> None:
    modules = _imported_after("import engine.cli as cli; cli.build_parser()")
    assert not [name for name in HEAVY if name in modules]
    assert not [m for m in modules if m.startswith(("engine.runtime", "engine.replay"))]
    assert "engine.topology.specs" not in modules  # the spec models load with the handlers


@pytest.mark.parametrize(
    "handler_modules",
    [
        "import engine.runtime.control, engine.cli.waiting",  # status, list, load, unload
        "import engine.runtime.control; from engine.cli import resources",
    ],
)
def test_the_control_commands_never_load_numpy_or_a_model_runtime(handler_modules: str) -> None:
    modules = _imported_after(handler_modules)
    assert not [name for name in ("numpy", "onnxruntime", "fastavro", "grpc") if name in modules]


def test_the_lazy_topology_package_still_exports_its_names() -> None:
    import engine.topology as topology

    for name in topology.__all__:
        assert getattr(topology, name) is not None
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        topology.nope  # noqa: B018
