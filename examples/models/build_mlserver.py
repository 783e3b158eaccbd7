"""Build the example models of the MLServer runtimes committed next to their YAML files.

    .venv/bin/python examples/models/build_mlserver.py            # rewrites them here
    .venv/bin/python examples/models/build_mlserver.py --out DIR  # writes DIR/<name>/...

Both are iris classifiers trained on scikit-learn's copy of the iris data and
saved the way MLServer's docs save them: iris-sklearn as `model.joblib` with a
`model-settings.json`, iris-xgboost as an XGBClassifier's `model.json`. The
training is deterministic, so tests/runtimes/test_build_mlserver.py can check
that a rebuild answers as the committed files do.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def _iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    return features.astype(np.float32), labels


def build_sklearn(out: Path) -> Path:
    import joblib
    from sklearn.linear_model import LogisticRegression

    directory = out / "iris-sklearn"
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(*_iris()), directory / "model.joblib")
    settings = {
        "name": "iris-sklearn",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v0.1.0"},
    }
    (directory / "model-settings.json").write_text(json.dumps(settings, indent=2) + "\n")
    return directory


def build_xgboost(out: Path) -> Path:
    import xgboost

    directory = out / "iris-xgboost"
    directory.mkdir(parents=True, exist_ok=True)
    model = xgboost.XGBClassifier(n_estimators=10, max_depth=2, random_state=0, n_jobs=1)
    model.fit(*_iris())
    model.save_model(directory / "model.json")
    return directory


def build_all(out: Path = HERE) -> list[Path]:
    return [build_sklearn(out), build_xgboost(out)]


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=HERE)
    for path in build_all(parser.parse_args().out):
        print(path)
