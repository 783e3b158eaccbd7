"""The sklearn, xgboost, lightgbm and mlflow runtimes answer as MLServer's runtimes do:
the same output names, datatypes and shapes, and the library's own numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.runtimes import ModelFailure, ModelInputError, ModelLoadError, load_model
from tests.runtimes import mlserver_artifacts as art
from tests.runtimes.conftest import spec

ROWS = art.IRIS_ROWS


def test_sklearn_predict_by_default(tmp_path: Path) -> None:
    fitted = art.sklearn_classifier(tmp_path)
    model = load_model(spec(tmp_path, "sklearn", name="iris"))
    out = model.predict({"input-0": ROWS})
    assert list(out) == ["predict"]
    # MLServer's NumpyCodec: int64 labels, a 1-D answer shaped [N, 1].
    assert out["predict"].dtype == np.int64 and out["predict"].shape == (3, 1)
    assert out["predict"].ravel().tolist() == fitted.predict(ROWS).tolist() == [0, 1, 2]
    assert model.batchable and model.takes_requested_outputs


def test_sklearn_requested_outputs(tmp_path: Path) -> None:
    fitted = art.sklearn_classifier(tmp_path)
    model = load_model(spec(tmp_path, "sklearn"))
    out = model.predict_outputs({"x": ROWS}, ("predict_proba",))
    assert list(out) == ["predict_proba"]
    expected = fitted.predict_proba(ROWS)  # float32 here: the model was fitted on float32
    assert out["predict_proba"].dtype == expected.dtype and out["predict_proba"].shape == (3, 3)
    np.testing.assert_array_equal(out["predict_proba"], expected)
    both = model.predict_outputs({"x": ROWS}, ("predict", "predict_proba"))
    assert list(both) == ["predict", "predict_proba"]
    with pytest.raises(ModelInputError, match="'decision_function'.*'predict', 'predict_proba'"):
        model.predict_outputs({"x": ROWS}, ("decision_function",))


def test_sklearn_predict_fn_from_model_settings(tmp_path: Path) -> None:
    fitted = art.sklearn_classifier(tmp_path, "classifier.pkl")
    art.settings(
        tmp_path,
        name="iris",
        implementation="mlserver_sklearn.SKLearnModel",
        parameters={"uri": "./classifier.pkl", "extra": {"predict_fn": "predict_proba"}},
    )
    model = load_model(spec(tmp_path, name="iris"))  # no requirements: the settings say it
    np.testing.assert_allclose(
        model.predict({"x": ROWS})["predict_proba"], fitted.predict_proba(ROWS)
    )


def test_sklearn_regressor_has_no_predict_proba(tmp_path: Path) -> None:
    fitted = art.sklearn_regressor(tmp_path)
    model = load_model(spec(tmp_path, "sklearn"))
    out = model.predict({"x": ROWS})["predict"]
    expected = fitted.predict(ROWS)
    assert out.dtype == expected.dtype and out.shape == (3, 1)
    np.testing.assert_array_equal(out.ravel(), expected)
    with pytest.raises(ModelInputError, match="LinearRegression models do not support"):
        model.predict_outputs({"x": ROWS}, ("predict_proba",))


def test_sklearn_bad_requests_name_the_problem(tmp_path: Path) -> None:
    art.sklearn_classifier(tmp_path)
    model = load_model(spec(tmp_path, "sklearn", name="iris"))
    with pytest.raises(ModelInputError, match="exactly one input tensor.*'a', 'b'"):
        model.predict({"a": ROWS, "b": ROWS})
    with pytest.raises(ModelFailure, match="predict raised ValueError.*features") as caught:
        model.predict({"x": ROWS[:, :3]})
    assert caught.value.model == "iris"


def test_sklearn_dataframe_content_type(tmp_path: Path) -> None:
    import joblib
    import pandas
    from sklearn.linear_model import LogisticRegression

    features, labels = art.iris()
    frame = pandas.DataFrame(features, columns=["sl", "sw", "pl", "pw"])
    fitted = LogisticRegression(max_iter=1000).fit(frame, labels)
    joblib.dump(fitted, tmp_path / "model.joblib")
    art.settings(tmp_path, parameters={"content_type": "pd"})
    model = load_model(spec(tmp_path, "sklearn"))
    columns = {name: ROWS[:, i] for i, name in enumerate(["sl", "sw", "pl", "pw"])}
    assert model.predict(columns)["predict"].ravel().tolist() == [0, 1, 2]


@pytest.mark.parametrize("filename", ["model.json", "model.ubj"])
def test_xgboost_classifier(tmp_path: Path, filename: str) -> None:
    fitted = art.xgboost_classifier(tmp_path, filename)
    model = load_model(spec(tmp_path, "xgboost", name="iris-xgb"))
    out = model.predict({"x": ROWS})
    assert list(out) == ["predict"] and out["predict"].shape == (3, 1)
    assert out["predict"].ravel().tolist() == fitted.predict(ROWS).tolist()
    proba = model.predict_outputs({"x": ROWS}, ("predict_proba",))["predict_proba"]
    assert proba.dtype == np.float32 and proba.shape == (3, 3)
    np.testing.assert_allclose(proba, fitted.predict_proba(ROWS))


def test_xgboost_plain_booster_loads_as_a_regressor(tmp_path: Path) -> None:
    import xgboost

    booster = art.xgboost_booster(tmp_path)
    model = load_model(spec(tmp_path))  # inferred from model.json
    out = model.predict({"x": ROWS})["predict"]
    assert out.dtype == np.float32 and out.shape == (3, 1)
    np.testing.assert_allclose(out.ravel(), booster.predict(xgboost.DMatrix(ROWS)), rtol=1e-6)
    with pytest.raises(ModelInputError, match="XGBRegressor models do not support"):
        model.predict_outputs({"x": ROWS}, ("predict_proba",))


def test_lightgbm_booster(tmp_path: Path) -> None:
    booster = art.lightgbm_booster(tmp_path)
    model = load_model(spec(tmp_path, name="iris-lgb"))  # inferred from model.txt
    out = model.predict({"x": ROWS})
    assert list(out) == ["predict"]
    assert out["predict"].dtype == np.float64 and out["predict"].shape == (3, 3)
    np.testing.assert_allclose(out["predict"], booster.predict(ROWS))
    assert out["predict"].argmax(axis=1).tolist() == [0, 1, 2]
    assert model.batchable and not model.takes_requested_outputs


def test_lightgbm_bst_needs_requirements(tmp_path: Path) -> None:
    art.lightgbm_booster(tmp_path, "model.bst")  # MLServer's well-known name, xgboost's too
    with pytest.raises(ModelLoadError, match=r"requirements: \[xgboost\] or \[lightgbm\]"):
        load_model(spec(tmp_path))
    model = load_model(spec(tmp_path, "lightgbm"))
    assert model.predict({"x": ROWS})["predict"].shape == (3, 3)


def test_mlflow_column_signature(tmp_path: Path) -> None:
    fitted = art.mlflow_columns(tmp_path / "iris")
    model = load_model(spec(tmp_path / "iris", "mlflow", name="iris-mlflow"))
    assert [(s.name, s.datatype, s.shape) for s in model.inputs] == [
        (name, "FP64", (-1, 1)) for name in ("sl", "sw", "pl", "pw")
    ]
    columns = {
        name: ROWS[:, i].astype(np.float64) for i, name in enumerate(["sl", "sw", "pl", "pw"])
    }
    out = model.predict(columns)
    assert list(out) == ["output-1"] and out["output-1"].shape == (3, 1)
    assert out["output-1"].ravel().tolist() == fitted.predict(ROWS.astype(np.float64)).tolist()
    del columns["pw"]
    with pytest.raises(ModelInputError, match="missing input tensor.*'pw'"):
        model.predict(columns)


def test_mlflow_tensor_signature(tmp_path: Path) -> None:
    art.mlflow_tensors(tmp_path / "doubler")
    model = load_model(spec(tmp_path / "doubler"))  # inferred from MLmodel
    assert [(s.name, s.datatype, s.shape) for s in model.inputs] == [
        ("x", "FP32", (-1, 2)),
        ("y", "FP32", (-1, 2)),
    ]
    x = np.array([[1, 2], [3, 4]], np.float32)
    out = model.predict({"x": x, "y": x})
    assert sorted(out) == ["doubled", "summed"]
    np.testing.assert_array_equal(out["doubled"], x * 2)
    assert out["summed"].dtype == np.float32


def test_closed_models_refuse(tmp_path: Path) -> None:
    art.sklearn_classifier(tmp_path / "sk")
    art.lightgbm_booster(tmp_path / "lgb")
    for path in (tmp_path / "sk", tmp_path / "lgb"):
        model = load_model(spec(path))
        model.close()
        with pytest.raises(ModelFailure, match="closed"):
            model.predict({"x": ROWS})


def test_max_batch_size_caps_merged_calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.operators.model_call import call_model

    art.sklearn_classifier(tmp_path)
    art.settings(tmp_path, max_batch_size=2)
    model = load_model(spec(tmp_path, "sklearn"))
    rows_per_call: list[int] = []
    predict = model.predict

    def counting(inputs):
        rows_per_call.append(len(next(iter(inputs.values()))))
        return predict(inputs)

    monkeypatch.setattr(model, "predict", counting)
    requests = [{"x": ROWS[i % 3 : i % 3 + 1]} for i in range(5)]
    results = call_model(model, requests)
    assert rows_per_call == [2, 2, 1]  # five requests, at most two in one call
    assert [r["predict"].tolist() for r in results] == [[[0]], [[1]], [[2]], [[0]], [[1]]]
