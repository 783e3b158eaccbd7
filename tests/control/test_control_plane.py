"""Loading, unloading and status through the control topic, as a user drives them with the CLI."""

from __future__ import annotations

import shutil

from .conftest import EXAMPLES, wait_for_status


def test_load_status_describe_unload(cli, worker_service):
    code, out, err = cli(
        "model",
        "load",
        "-f",
        str(EXAMPLES / "models" / "tfsimple1.yaml"),
        "-f",
        str(EXAMPLES / "models" / "tfsimple2.yaml"),
    )
    assert code == 0, err
    assert "loaded model/tfsimple1" in out
    code, out, err = cli("pipeline", "load", "-f", str(EXAMPLES / "pipelines" / "tfsimples.yaml"))
    assert code == 0, err
    wait_for_status(cli, "pipeline", "tfsimples", "Ready")

    code, out, _ = cli("pipeline", "list")
    assert out.split() == ["tfsimples"]
    code, out, _ = cli("describe", "tfsimples")
    assert code == 0 and "tfsimple1" in out and "tfsimple2" in out

    code, out, _ = cli("pipeline", "unload", "tfsimples")
    assert code == 0
    code, out, _ = cli("pipeline", "list")
    assert out.split() == []
    code, _, err = cli("pipeline", "unload", "tfsimples")
    assert code == 1 and "no pipeline 'tfsimples' is loaded" in err


def test_a_bad_file_loads_nothing(cli, worker_service, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        (EXAMPLES / "models" / "tfsimple1.yaml").read_text()
        + "---\n"
        + "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: broken\n"
        "spec:\n  steps:\n  - name: tfsimple1\n    inputs:\n    - nosuchstep.outputs\n"
        "  output:\n    steps:\n    - tfsimple1\n"
    )
    code, _, err = cli("pipeline", "load", "-f", str(bad))
    assert code == 1
    assert "nosuchstep" in err and "nothing loaded" in err
    code, out, _ = cli("model", "list")
    assert out.split() == []  # the valid model beside the mistake was not loaded either


def test_a_model_that_fails_to_load_fails_its_pipeline_only(cli, worker_service, tmp_path):
    broken = tmp_path / "models"
    shutil.copytree(EXAMPLES / "models" / "tfsimple1", broken / "tfsimple1")
    (broken / "tfsimple1" / "model.onnx").write_bytes(b"this is not onnx")
    (broken / "tfsimple1.yaml").write_text((EXAMPLES / "models" / "tfsimple1.yaml").read_text())
    assert cli("model", "load", "-f", str(broken / "tfsimple1.yaml"))[0] == 0
    assert cli("model", "load", "-f", str(EXAMPLES / "models" / "tfsimple2.yaml"))[0] == 0
    pipelines = tmp_path / "pipelines.yaml"
    pipelines.write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: uses-broken\n"
        "spec:\n  steps:\n  - name: tfsimple1\n  output:\n    steps:\n    - tfsimple1\n"
        "---\n"
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: uses-good\n"
        "spec:\n  steps:\n  - name: tfsimple2\n  output:\n    steps:\n    - tfsimple2\n"
    )
    assert cli("pipeline", "load", "-f", str(pipelines))[0] == 0
    failed = wait_for_status(cli, "pipeline", "uses-broken", "Failed")
    assert "tfsimple1" in failed and "failed to load" in failed
    wait_for_status(cli, "pipeline", "uses-good", "Ready")
    code, out, _ = cli("model", "status", "tfsimple1", "-o", "json")
    assert code == 1 and '"state": "Failed"' in out


def test_unload_keeps_topics_unless_clean_topics_on_delete(
    cli, worker_service, kafka_settings, tmp_path
):
    from engine.admin import TopicAdmin

    assert cli("model", "load", "-f", str(EXAMPLES / "models" / "tfsimple1.yaml"))[0] == 0
    specs = tmp_path / "pipelines.yaml"
    specs.write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: keeps\n"
        "spec:\n  steps:\n  - name: tfsimple1\n  output:\n    steps:\n    - tfsimple1\n"
        "---\n"
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: cleans\n"
        "spec:\n  dataflow:\n    cleanTopicsOnDelete: true\n  steps:\n  - name: tfsimple1\n"
        "  output:\n    steps:\n    - tfsimple1\n"
    )
    assert cli("pipeline", "load", "-f", str(specs))[0] == 0
    wait_for_status(cli, "pipeline", "keeps", "Ready")
    wait_for_status(cli, "pipeline", "cleans", "Ready")
    prefix = f"tensorflux.{kafka_settings.namespace}.pipeline"

    code, out, _ = cli("pipeline", "unload", "keeps")
    assert code == 0 and "deleted topic" not in out
    code, out, _ = cli("pipeline", "unload", "cleans")
    assert code == 0 and f"deleted topic {prefix}.cleans.inputs" in out

    existing = TopicAdmin(kafka_settings).existing()
    assert (
        f"{prefix}.keeps.inputs" in existing
        and f"{prefix}.keeps.step.tfsimple1.outputs" in existing
    )
    assert not [topic for topic in existing if topic.startswith(f"{prefix}.cleans.")]


def test_a_control_topic_model_outside_the_model_roots_fails_unread(cli, worker_service, tmp_path):
    # Whoever writes the control topic names the path; the worker imports nothing from it.
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "model.py").write_text(
        "import pathlib\n"
        "pathlib.Path(__file__).with_name('imported').write_text('yes')\n"
        "class Model:\n"
        "    def predict(self, inputs):\n"
        "        return inputs\n"
    )
    spec = tmp_path / "evil.yaml"
    spec.write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: evil\n"
        f"spec:\n  storageUri: {evil}\n  requirements: [python]\n"
    )
    code, _, err = cli("model", "load", "-f", str(spec))
    assert code == 0, err
    out = wait_for_status(cli, "model", "evil", "Failed")
    assert "outside the allowed model roots" in out and str(EXAMPLES.resolve()) in out
    assert not (evil / "imported").exists()
    # A model inside the roots still loads beside it.
    code, _, err = cli("model", "load", "-f", str(EXAMPLES / "models" / "add10.yaml"))
    assert code == 0, err
    wait_for_status(cli, "model", "add10", "Ready")


def test_load_names_each_problem_with_its_file_and_line(cli, tmp_path):
    assert cli("model", "load", "-f", str(EXAMPLES / "models" / "tfsimple1.yaml"))[0] == 0
    typo = tmp_path / "typo.yaml"
    typo.write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipelin\nmetadata:\n  name: p1\nspec: {}\n"
    )
    dangling = tmp_path / "dangling.yaml"
    dangling.write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: p2\n"
        "spec:\n  steps:\n  - name: tfsimple1\n    inputs:\n    - nosuchstep.outputs\n"
        "  output:\n    steps:\n    - tfsimple1\n"
    )
    code, _, err = cli("pipeline", "load", "-f", str(typo), "-f", str(dangling))
    assert code == 1
    assert "nothing loaded; 2 problems" in err
    assert f"{typo}:2: unknown kind 'Pipelin'; did you mean 'Pipeline'?" in err
    assert f"{dangling}:9: pipeline 'p2' step 'tfsimple1': 'nosuchstep.outputs'" in err
    assert cli("pipeline", "list")[1].split() == []


def test_a_file_with_no_resource_loads_nothing_and_says_so(cli, tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n")
    code, _, err = cli("pipeline", "load", "-f", str(secret))
    assert code == 1 and "no Model, Pipeline or Experiment found" in err


def test_loading_again_says_whether_it_replaced_or_changed_nothing(cli, tmp_path):
    spec = EXAMPLES / "models" / "add10.yaml"
    assert cli("model", "load", "-f", str(spec))[1].strip() == "loaded model/add10"
    code, out, _ = cli("model", "load", "-f", str(spec))
    assert code == 0 and out.startswith("unchanged model/add10")
    changed = tmp_path / "add10.yaml"
    changed.write_text(spec.read_text().replace("name: add10", "name: add10\n  labels: {v: '2'}"))
    code, out, _ = cli("model", "load", "-f", str(changed))
    assert code == 0 and out.startswith("replaced model/add10")
