"""The inference hot path takes exactly the requests the route table sends to `infer`."""

from __future__ import annotations

import re

import pytest

from engine.gateway.app import ROUTES
from engine.gateway.hot_path import INFER_PATH


def _example(path: str) -> str:
    return path.replace("{name}", "tfsimple1").replace("{version}", "3")


def test_every_infer_route_is_taken_with_its_kind_and_name() -> None:
    infer_routes = [r for r in ROUTES if r.handler == "infer"]
    assert len(infer_routes) == 4
    for route in infer_routes:
        matched = INFER_PATH.fullmatch(_example(route.path))
        assert matched is not None, route.path
        assert (matched[1], matched[2]) == (route.prefer, "tfsimple1")


def test_no_other_route_is_taken() -> None:
    for route in ROUTES:
        if route.handler != "infer":
            assert INFER_PATH.fullmatch(_example(route.path)) is None, route.path


@pytest.mark.parametrize(
    "path",
    [
        "/v2/pipelines/a/b/infer",  # a name is one path segment, as FastAPI matches it
        "/v2/pipelines//infer",
        "/v2/pipelines/a/infer/",
        "/v2/experiments/a/infer",
        "/v2/pipelines/a/versions//infer",
    ],
)
def test_paths_fastapi_would_not_route_to_infer_are_left_to_it(path: str) -> None:
    fastapi_pattern = [re.sub(r"\{\w+\}", "[^/]+", r.path) for r in ROUTES if r.handler == "infer"]
    assert not any(re.fullmatch(p, path) for p in fastapi_pattern)
    assert INFER_PATH.fullmatch(path) is None
