"""A model answer too large for Kafka becomes an error record; the stream goes on."""

from __future__ import annotations

import textwrap

from .helpers import Kafka, fp32, new_id

MODEL = textwrap.dedent(
    """
    import numpy as np

    class Model:
        def predict(self, inputs):
            x = inputs["INPUT"]
            if float(x.reshape(-1)[0]) < 0:
                return {"OUTPUT": np.zeros(2_000_000, dtype=np.float32)}  # 8 MB: over message.max.bytes
            return {"OUTPUT": x * 2}
    """
)


def test_oversize_output_is_an_error_record_and_later_requests_flow(
    tmp_path, running_worker, kafka: Kafka
):
    (tmp_path / "bloat").mkdir()
    (tmp_path / "bloat" / "model.py").write_text(MODEL)
    (tmp_path / "specs.yaml").write_text(
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Model\nmetadata:\n  name: bloat\n"
        "spec:\n  storageUri: ./bloat\n  requirements: [python]\n"
        "---\n"
        "apiVersion: mlops.seldon.io/v1alpha1\nkind: Pipeline\nmetadata:\n  name: bloater\n"
        "spec:\n  steps:\n  - name: bloat\n  output:\n    steps:\n    - bloat\n"
    )
    worker = running_worker([tmp_path / "specs.yaml"])
    worker.wait_ready("pipeline", "bloater")
    big, small = new_id("big"), new_id("small")
    kafka.infer("bloater", big, INPUT=fp32(-1.0))
    kafka.infer("bloater", small, INPUT=fp32(3.0))
    answers = kafka.outputs("bloater", [big, small])
    assert answers[big].is_error
    error = answers[big].error()
    assert (error.pipeline, error.step, error.request_id) == ("bloater", "bloat", big)
    assert "too large" in error.reason.lower() or "size" in error.reason.lower()
    assert answers[small].arrays() == {"OUTPUT": [6.0]}
    errors = kafka.collect(kafka.topics.errors(), [big])
    assert errors[big].error().stage == "produce"
