"""Which runtime a Model gets (model-settings.json, requirements, contents), and a model
whose runtime library is missing failing alone with the extra to install."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.runtime.models import ModelPool
from engine.runtimes import ModelLoadError, ModelRoots, load_model, resolve_artifact
from engine.runtimes.settings import read_settings
from tests.runtimes import mlserver_artifacts as art
from tests.runtimes.conftest import spec


def test_contents_pick_the_runtime(tmp_path: Path) -> None:
    art.sklearn_classifier(tmp_path / "sk")
    art.xgboost_classifier(tmp_path / "xgb", "model.ubj")
    art.lightgbm_booster(tmp_path / "lgb")
    art.mlflow_columns(tmp_path / "ml")
    assert resolve_artifact(spec(tmp_path / "sk")) == ("sklearn", tmp_path / "sk" / "model.joblib")
    assert resolve_artifact(spec(tmp_path / "xgb"))[0] == "xgboost"
    assert resolve_artifact(spec(tmp_path / "lgb" / "model.txt"))[0] == "lightgbm"
    # An MLmodel directory is one artifact, though it holds a model.pkl.
    assert resolve_artifact(spec(tmp_path / "ml")) == ("mlflow", tmp_path / "ml")


def test_seldon_requirements_pick_the_runtime(tmp_path: Path) -> None:
    art.sklearn_classifier(tmp_path, "iris.pkl")
    kind, path = resolve_artifact(spec(tmp_path, "mlserver", "scikit-learn"))
    assert (kind, path.name) == ("sklearn", "iris.pkl")
    with pytest.raises(ModelLoadError, match="requirements name both sklearn and xgboost"):
        resolve_artifact(spec(tmp_path, "sklearn", "xgboost"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelLoadError, match="no model.bst or model.json or model.ubj"):
        resolve_artifact(spec(tmp_path / "empty", "xgboost"))


def test_model_settings_are_read(tmp_path: Path) -> None:
    art.sklearn_classifier(tmp_path / "weights", "iris.joblib")
    art.settings(
        tmp_path,
        name="iris",
        implementation="mlserver_sklearn.SKLearnModel",
        max_batch_size=8,
        parameters={"uri": "./weights/iris.joblib", "content_type": "np", "version": "v1"},
    )
    settings = read_settings("iris", tmp_path)
    assert (settings.name, settings.kind, settings.max_batch_size, settings.content_type) == (
        "iris", "sklearn", 8, "np",
    )  # fmt: skip
    model = load_model(spec(tmp_path, name="iris"))
    assert model.max_batch_size == 8
    assert model.predict({"x": art.IRIS_ROWS})["predict"].ravel().tolist() == [0, 1, 2]


@pytest.mark.parametrize(
    ("document", "complaint"),
    [
        (
            '{"implementation": "mlserver_huggingface.HuggingFaceRuntime"}',
            "is not one tensorflux runs",
        ),
        ('{"max_batch_size": 0}', "max_batch_size must be a positive integer"),
        ('{"parameters": {"content_type": "str"}}', "tensorflux reads 'np' or 'pd'"),
        ('{"parameters": {"uri": "./gone.joblib"}}', "names nothing that exists"),
        ("{not json", "not readable JSON"),
    ],
)
def test_bad_model_settings_name_the_problem(tmp_path: Path, document: str, complaint: str) -> None:
    art.sklearn_classifier(tmp_path)
    (tmp_path / "model-settings.json").write_text(document)
    with pytest.raises(ModelLoadError, match=complaint) as caught:
        load_model(spec(tmp_path, "sklearn", name="iris"))
    assert caught.value.model == "iris"


def test_model_settings_uri_cannot_leave_the_roots(tmp_path: Path) -> None:
    art.sklearn_classifier(tmp_path / "outside")
    (tmp_path / "allowed").mkdir()
    art.settings(tmp_path / "allowed", parameters={"uri": "../outside/model.joblib"})
    roots = ModelRoots.of([tmp_path / "allowed"])
    with pytest.raises(ModelLoadError, match="outside the allowed model roots"):
        load_model(spec(tmp_path / "allowed", "sklearn"), roots)


@pytest.mark.parametrize(
    ("library", "extra", "make"),
    [
        ("sklearn", "sklearn", art.sklearn_classifier),
        ("xgboost", "xgboost", art.xgboost_classifier),
        ("lightgbm", "lightgbm", art.lightgbm_booster),
        ("mlflow", "mlflow", art.mlflow_columns),
    ],
)
def test_a_missing_runtime_fails_alone_naming_its_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, library: str, extra: str, make
) -> None:
    make(tmp_path / "model")
    art.sklearn_classifier(tmp_path / "other")
    for name in [n for n in sys.modules if n == library or n.startswith(f"{library}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, library, None)  # what `import` sees when it is not installed
    if library == "sklearn":
        monkeypatch.setitem(sys.modules, "joblib", None)
    pool = ModelPool()
    loaded = pool.sync({"needs": spec(tmp_path / "model", name="needs"), "py": _python(tmp_path)})
    error = loaded["needs"]
    assert isinstance(error, ModelLoadError)
    assert f"pip install 'tensorflux[{extra}]'" in str(error)
    assert not isinstance(loaded["py"], Exception)  # the other model runs on
    pool.close()


def test_a_missing_alibi_detect_says_how_to_get_it(tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "config.toml").write_text('name = "KSDrift"\n')
    monkeypatch.setitem(sys.modules, "alibi_detect", None)
    monkeypatch.setitem(sys.modules, "alibi_detect.saving", None)
    with pytest.raises(ModelLoadError, match=r"make \.venv-alibi/\.installed"):
        load_model(spec(tmp_path, "mlserver", "alibi-detect"))


def _python(tmp_path: Path):
    directory = tmp_path / "py"
    directory.mkdir()
    (directory / "model.py").write_text(
        "class Model:\n    def predict(self, inputs):\n        return inputs\n"
    )
    return spec(directory, "python", name="py")
