"""The gateway's inference metrics, scraped from /metrics as Prometheus would: Seldon's
names per pipeline and model, and a per-code request counter for autoscaling."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import ONES_TO_16, Stack, tensors


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(f"{url}/metrics/", timeout=10).text
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def delta(before: dict, after: dict, name: str, **labels: str) -> float:
    key = (name, frozenset(labels.items()))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_inferences_are_counted_by_pipeline_model_and_code(stack: Stack) -> None:
    before = scrape(stack.url)
    good = tensors(ONES_TO_16, ONES_TO_16)
    for _ in range(2):
        assert httpx.post(f"{stack.url}/v2/pipelines/tfsimples/infer", json=good, timeout=30).status_code == 200  # fmt: skip
    bad = {"inputs": [{"name": "INPUT0", "datatype": "INT32", "shape": [2], "data": [1]}]}
    assert httpx.post(f"{stack.url}/v2/pipelines/tfsimples/infer", json=bad, timeout=30).status_code == 400  # fmt: skip
    assert httpx.post(f"{stack.url}/v2/models/tfsimple1/infer", json=good, timeout=30).status_code == 200  # fmt: skip
    assert httpx.post(f"{stack.url}/v2/pipelines/nope/infer", json=good, timeout=30).status_code == 404  # fmt: skip
    after = scrape(stack.url)

    rest = {"method_type": "rest"}
    assert delta(before, after, "seldon_pipeline_infer_total", pipeline="tfsimples", code="200", **rest) == 2  # fmt: skip
    assert delta(before, after, "seldon_pipeline_infer_total", pipeline="tfsimples", code="400", **rest) == 1  # fmt: skip
    assert delta(before, after, "seldon_model_infer_total", model="tfsimple1", code="200", **rest) == 1  # fmt: skip
    seconds = delta(before, after, "seldon_pipeline_infer_seconds_total", pipeline="tfsimples", code="200", **rest)  # fmt: skip
    assert seconds > 0
    # Every answer counts once per code; an unknown name only there (no label per typo).
    assert delta(before, after, "tensorflux_gateway_requests_total", code="200") == 3
    assert delta(before, after, "tensorflux_gateway_requests_total", code="400") == 1
    assert delta(before, after, "tensorflux_gateway_requests_total", code="404") == 1
    assert not any(name.startswith("seldon_") and ("pipeline", "nope") in labels for name, labels in after)  # fmt: skip
