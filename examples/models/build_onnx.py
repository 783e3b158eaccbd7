"""Build the example ONNX models committed next to their YAML files.

    .venv/bin/python examples/models/build_onnx.py            # rewrites examples/models/*/model.onnx
    .venv/bin/python examples/models/build_onnx.py --out DIR  # writes DIR/<name>/model.onnx

Deterministic: no timestamps or random names, so a rerun gives the same bytes
and tests/runtimes/test_build_onnx.py can compare against the committed files.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import onnx
from onnx import TensorProto, helper

# Opset 13 / IR 7: old enough for any onnxruntime of the last years, and it has
# every op used here.
OPSET = 13
IR_VERSION = 7
HERE = Path(__file__).resolve().parent


def tfsimple(name: str) -> onnx.ModelProto:
    """OUTPUT0 = INPUT0 + INPUT1, OUTPUT1 = INPUT0 - INPUT1 on INT32 [batch, 16]."""

    def tensor(n: str) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(n, TensorProto.INT32, ["batch", 16])

    graph = helper.make_graph(
        [
            helper.make_node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"], name="add"),
            helper.make_node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"], name="sub"),
        ],
        name,
        [tensor("INPUT0"), tensor("INPUT1")],
        [tensor("OUTPUT0"), tensor("OUTPUT1")],
    )
    return _model(graph)


def scalar_op(name: str, op: str, value: float) -> onnx.ModelProto:
    """OUTPUT = INPUT <op> value on FP32 [batch] (Seldon's samples send shape [4])."""
    constant = helper.make_tensor("K", TensorProto.FLOAT, [], [value])
    graph = helper.make_graph(
        [helper.make_node(op, ["INPUT", "K"], ["OUTPUT"], name=op.lower())],
        name,
        [helper.make_tensor_value_info("INPUT", TensorProto.FLOAT, ["batch"])],
        [helper.make_tensor_value_info("OUTPUT", TensorProto.FLOAT, ["batch"])],
        initializer=[constant],
    )
    return _model(graph)


def _model(graph: onnx.GraphProto) -> onnx.ModelProto:
    model = helper.make_model(
        graph,
        producer_name="tensorflux examples/models/build_onnx.py",
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
    )
    onnx.checker.check_model(model, full_check=True)
    return model


MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "tfsimple1": lambda: tfsimple("tfsimple1"),
    "tfsimple2": lambda: tfsimple("tfsimple2"),
    "tfsimple3": lambda: tfsimple("tfsimple3"),
    "add10": lambda: scalar_op("add10", "Add", 10.0),
    "mul10": lambda: scalar_op("mul10", "Mul", 10.0),
}


def build_all(out_dir: Path = HERE) -> list[Path]:
    """Write every example model to `out_dir/<name>/model.onnx`; returns the paths."""
    written = []
    for name, build in MODELS.items():
        path = out_dir / name / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(build().SerializeToString(deterministic=True))
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=HERE, help="directory to write into")
    for path in build_all(parser.parse_args().out):
        print(path)


if __name__ == "__main__":
    main()
