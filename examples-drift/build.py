"""Build the drift example's detector and request files (run it in the alibi-detect venv).

    make .venv-alibi/.installed
    .venv-alibi/bin/python examples-drift/build.py

models/iris-drift/ is a Kolmogorov-Smirnov drift detector (alibi-detect's
KSDrift, p-value 0.05) whose reference data is scikit-learn's iris data,
saved with `save_detector` as MLServer's alibi-detect runtime loads it.
requests/normal.jsonl holds 20 OIP requests of one iris flower each (every
7th flower: all three species); requests/drifted.jsonl the same flowers
measured 1.5 times larger.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def reference() -> np.ndarray:
    from sklearn.datasets import load_iris

    return load_iris().data.astype(np.float32)


def build_detector(out: Path) -> Path:
    from alibi_detect.cd import KSDrift
    from alibi_detect.saving import save_detector

    directory = out / "iris-drift"
    shutil.rmtree(directory, ignore_errors=True)
    save_detector(KSDrift(reference(), p_val=0.05), str(directory))
    return directory


def requests(rows: np.ndarray) -> str:
    lines = []
    for row in rows:
        tensor = {"name": "INPUT", "datatype": "FP32", "shape": [1, 4]}
        tensor["data"] = [round(float(v), 2) for v in row]
        lines.append(json.dumps({"inputs": [tensor]}, separators=(",", ":")))
    return "\n".join(lines) + "\n"


def build_all(out: Path = HERE) -> list[Path]:
    flowers = reference()[::7][:20]
    (out / "requests").mkdir(parents=True, exist_ok=True)
    (out / "requests" / "normal.jsonl").write_text(requests(flowers))
    (out / "requests" / "drifted.jsonl").write_text(requests(flowers * 1.5))
    return [build_detector(out / "models"), out / "requests"]


if __name__ == "__main__":
    for path in build_all():
        print(path)
