"""Tiny models trained here and saved the way MLServer's docs save them.

Each factory writes into a directory and returns it (and, where it helps, the
fitted model so a test can compare answers). Imports are inside the factories:
a runtime's library is an optional extra.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

IRIS_ROWS = np.array(
    [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]], dtype=np.float32
)
"""One iris flower of each class (setosa, versicolor, virginica)."""


def iris() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_iris

    features, labels = load_iris(return_X_y=True)
    return features.astype(np.float32), labels


def settings(directory: Path, **document: Any) -> None:
    (directory / "model-settings.json").write_text(json.dumps(document))


def sklearn_classifier(directory: Path, filename: str = "model.joblib") -> Any:
    """A LogisticRegression on iris, dumped with joblib (MLServer's sklearn docs)."""
    import joblib
    from sklearn.linear_model import LogisticRegression

    directory.mkdir(parents=True, exist_ok=True)
    model = LogisticRegression(max_iter=1000).fit(*iris())
    joblib.dump(model, directory / filename)
    return model


def sklearn_regressor(directory: Path) -> Any:
    import joblib
    from sklearn.linear_model import LinearRegression

    directory.mkdir(parents=True, exist_ok=True)
    features, labels = iris()
    model = LinearRegression().fit(features, labels.astype(np.float64))
    joblib.dump(model, directory / "model.joblib")
    return model


def xgboost_classifier(directory: Path, filename: str = "model.json") -> Any:
    """An XGBClassifier on iris, saved with save_model (.json or .ubj)."""
    import xgboost

    directory.mkdir(parents=True, exist_ok=True)
    model = xgboost.XGBClassifier(n_estimators=4, max_depth=2).fit(*iris())
    model.save_model(directory / filename)
    return model


def xgboost_booster(directory: Path) -> Any:
    """A plain Booster (xgboost.train), as older tutorials save it."""
    import xgboost

    directory.mkdir(parents=True, exist_ok=True)
    features, labels = iris()
    booster = xgboost.train(
        {"objective": "reg:squarederror", "max_depth": 2},
        xgboost.DMatrix(features, label=labels),
        num_boost_round=4,
    )
    booster.save_model(directory / "model.json")
    return booster


def lightgbm_booster(directory: Path, filename: str = "model.txt") -> Any:
    """A multiclass LightGBM booster on iris, saved as text."""
    import lightgbm

    directory.mkdir(parents=True, exist_ok=True)
    features, labels = iris()
    booster = lightgbm.train(
        {"objective": "multiclass", "num_class": 3, "verbose": -1, "min_data_in_leaf": 5},
        lightgbm.Dataset(features, labels),
        num_boost_round=4,
    )
    booster.save_model(str(directory / filename))
    return booster


def mlflow_columns(directory: Path) -> Any:
    """An sklearn model logged as an MLflow pyfunc with a column signature (a DataFrame)."""
    import mlflow.sklearn
    import pandas
    from mlflow.models import infer_signature
    from sklearn.linear_model import LogisticRegression

    features, labels = iris()
    frame = pandas.DataFrame(features.astype(np.float64), columns=["sl", "sw", "pl", "pw"])
    model = LogisticRegression(max_iter=1000).fit(frame, labels)
    mlflow.sklearn.save_model(
        model,
        str(directory),
        signature=infer_signature(frame, model.predict(frame)),
        serialization_format="cloudpickle",
    )
    return model


MLFLOW_TENSORS = """
import mlflow.pyfunc


class Doubler(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return {"doubled": model_input["x"] * 2, "summed": model_input["x"] + model_input["y"]}
"""


def mlflow_tensors(directory: Path) -> None:
    """A custom pyfunc with a named-tensor signature (a dict of arrays in, a dict out)."""
    import sys

    import mlflow.pyfunc
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    code = directory.parent / f"{directory.name}_code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "doubler_model.py").write_text(MLFLOW_TENSORS)
    sys.path.insert(0, str(code))
    try:
        import doubler_model

        spec = lambda name: TensorSpec(np.dtype(np.float32), (-1, 2), name)  # noqa: E731
        mlflow.pyfunc.save_model(
            str(directory),
            python_model=doubler_model.Doubler(),
            code_paths=[str(code / "doubler_model.py")],
            signature=ModelSignature(inputs=Schema([spec("x"), spec("y")])),
        )
    finally:
        sys.path.remove(str(code))
        sys.modules.pop("doubler_model", None)
