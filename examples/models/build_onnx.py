"""Build the example ONNX models committed next to their YAML files.

    .venv/bin/python examples/models/build_onnx.py            # rewrites examples/models/*/model.onnx
    .venv/bin/python examples/models/build_onnx.py --out DIR  # writes DIR/<name>/model.onnx
    .venv/bin/python examples/models/build_onnx.py --bench    # bench/models/{mlp256,cnn}/model.onnx

Deterministic: no timestamps or random names, so a rerun gives the same bytes
and tests/runtimes/test_build_onnx.py can compare against the committed files.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

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


def mlp(name: str, width: int = 256, layers: int = 8) -> onnx.ModelProto:
    """OUTPUT = an MLP of `layers` dense `width`-wide FP32 layers with ReLU, on INPUT [batch, width].

    The bench's model whose compute is real (milliseconds a chunk, not microseconds). One
    weight matrix and bias serve every layer, so the file stays small; values are fixed
    (a seeded generator), so a rebuild gives the same bytes.
    """
    rng = np.random.default_rng(256)
    scale = np.sqrt(2.0 / width)  # He initialisation: activations neither vanish nor explode
    weight = (rng.standard_normal((width, width)) * scale).astype(np.float32)
    bias = (rng.standard_normal(width) * 0.01).astype(np.float32)
    nodes, current = [], "INPUT"
    for layer in range(layers):
        last = layer == layers - 1
        dense, out = f"dense{layer}", "OUTPUT" if last else f"h{layer}"
        nodes.append(
            helper.make_node("MatMul", [current, "W"], [f"{dense}_mm"], name=f"{dense}_mm")
        )
        nodes.append(
            helper.make_node(
                "Add", [f"{dense}_mm", "B"], [out if last else f"{dense}_add"], name=f"{dense}_add"
            )
        )
        if not last:
            nodes.append(helper.make_node("Relu", [f"{dense}_add"], [out], name=f"{dense}_relu"))
        current = out
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("INPUT", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("OUTPUT", TensorProto.FLOAT, ["batch", width])],
        initializer=[numpy_helper.from_array(weight, "W"), numpy_helper.from_array(bias, "B")],
    )
    return _model(graph)


def cnn(
    name: str, channels: tuple[int, int, int] = (128, 256, 256), classes: int = 10
) -> onnx.ModelProto:
    """OUTPUT = a small CNN's class scores on INPUT FP32 [batch, 1, 28, 28] (an MNIST-sized image).

    Three 3x3 convolutions with ReLU (the first two followed by 2x2 max pooling), a global
    average pool and a dense layer to `classes` scores: ~1 ms an image on one thread (of
    the 2-core bench machine), the bench's model whose compute dwarfs the record work. Values are fixed (a seeded
    generator), so a rebuild gives the same bytes.
    """
    rng = np.random.default_rng(28)
    initializers, nodes, current, before = [], [], "INPUT", 1
    for index, width in enumerate(channels):
        weight = rng.standard_normal((width, before, 3, 3)) * np.sqrt(2.0 / (before * 9))
        initializers += [
            numpy_helper.from_array(weight.astype(np.float32), f"W{index}"),
            numpy_helper.from_array(
                (rng.standard_normal(width) * 0.01).astype(np.float32), f"B{index}"
            ),
        ]
        conv = f"conv{index}"
        nodes.append(
            helper.make_node(
                "Conv",
                [current, f"W{index}", f"B{index}"],
                [f"{conv}_out"],
                name=conv,
                kernel_shape=[3, 3],
                pads=[1, 1, 1, 1],
            )
        )
        nodes.append(
            helper.make_node("Relu", [f"{conv}_out"], [f"{conv}_relu"], name=f"{conv}_relu")
        )
        current = f"{conv}_relu"
        if index < len(channels) - 1:
            nodes.append(
                helper.make_node(
                    "MaxPool",
                    [current],
                    [f"pool{index}"],
                    name=f"pool{index}",
                    kernel_shape=[2, 2],
                    strides=[2, 2],
                )
            )
            current = f"pool{index}"
        before = width
    dense = rng.standard_normal((before, classes)) * np.sqrt(1.0 / before)
    initializers += [
        numpy_helper.from_array(dense.astype(np.float32), "WD"),
        numpy_helper.from_array(np.zeros(classes, np.float32), "BD"),
    ]
    nodes += [
        helper.make_node("GlobalAveragePool", [current], ["gap"], name="gap"),
        helper.make_node("Flatten", ["gap"], ["flat"], name="flatten", axis=1),
        helper.make_node("Gemm", ["flat", "WD", "BD"], ["OUTPUT"], name="dense"),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("INPUT", TensorProto.FLOAT, ["batch", 1, 28, 28])],
        [helper.make_tensor_value_info("OUTPUT", TensorProto.FLOAT, ["batch", classes])],
        initializer=initializers,
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


BENCH_MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "mlp256": lambda: mlp("mlp256"),
    "cnn": lambda: cnn("cnn"),
}
"""Built for `make bench` into bench/models/ (not committed: the bench builds them)."""
BENCH_DIR = HERE.parents[1] / "bench" / "models"


def build_bench(out_dir: Path = BENCH_DIR) -> list[Path]:
    """Write every bench model to `out_dir/<name>/model.onnx`; returns the paths."""
    written = []
    for name, build in BENCH_MODELS.items():
        path = out_dir / name / "model.onnx"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(build().SerializeToString(deterministic=True))
        written.append(path)
    return written


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
    parser.add_argument(
        "--bench", action="store_true", help="the bench's models instead (into bench/models/)"
    )
    args = parser.parse_args()
    if args.bench:
        paths = build_bench(args.out if args.out != HERE else BENCH_DIR)
    else:
        paths = build_all(args.out)
    for path in paths:
        print(path)


if __name__ == "__main__":
    main()
