"""The Kubernetes manifests as `kubectl kustomize` renders them, and what a pod would see.

No cluster here: `render` runs kustomize offline, and `environment` works out a
container's environment the way the kubelet would (ConfigMaps of `envFrom`, then
`env`), so tests can start processes exactly as a Deployment would.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "prod", "prod-scale-to-zero")
COMPONENTS = ("scale-to-zero", "gateway-hpa")
DATA = Path(__file__).resolve().parent / "data"
IMAGE_ROOT = "/app"
"""Where the Dockerfile puts the repository's engine, schemas and examples."""

Object = dict[str, Any]


def kubectl() -> str:
    found = shutil.which("kubectl")
    if found is None:
        pytest.skip("kubectl (with kustomize) is not on PATH: the manifests cannot be rendered")
    return found


@cache
def _render(directory: str) -> tuple[str, ...]:
    result = subprocess.run(
        [kubectl(), "kustomize", directory], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"kubectl kustomize {directory} failed: {result.stderr}"
    # Frozen as JSON text so that a test changing what it got cannot change another's.
    return tuple(json.dumps(doc) for doc in yaml.safe_load_all(result.stdout) if doc)


def render(directory: Path | str) -> list[Object]:
    """Every object kustomize renders from `directory` (a kustomization)."""
    return [json.loads(doc) for doc in _render(str(directory))]


def render_overlay(name: str) -> list[Object]:
    return render(K8S / "overlays" / name)


def render_with_component(tmp: Path, overlay: str, component: str) -> list[Object]:
    """`overlay` with `component` on top, the way README "Deploy" tells users to add one."""
    # kustomize refuses absolute paths in a kustomization: point at the tree relatively.
    here = tmp / f"{overlay}-{component}"
    here.mkdir()
    (here / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": [os.path.relpath(K8S / "overlays" / overlay, here)],
                "components": [os.path.relpath(K8S / "components" / component, here)],
            }
        )
    )
    return render(here)


def find(objects: list[Object], kind: str, name_prefix: str) -> Object:
    """The one object of `kind` whose name is `name_prefix` (plus kustomize's hash suffix)."""
    pattern = re.compile(rf"{re.escape(name_prefix)}(-[a-z0-9]{{10}})?")
    found = [o for o in objects if o["kind"] == kind and pattern.fullmatch(o["metadata"]["name"])]
    names = sorted(f"{o['kind']}/{o['metadata']['name']}" for o in objects)
    assert len(found) == 1, f"expected one {kind} {name_prefix}, found {len(found)} among {names}"
    return found[0]


def kinds(objects: list[Object], kind: str) -> list[Object]:
    return [o for o in objects if o["kind"] == kind]


def pod_spec(workload: Object) -> Object:
    return workload["spec"]["template"]["spec"]


def containers(workload: Object) -> Iterator[Object]:
    """Every container of a workload's pods, init and sidecar containers included."""
    spec = pod_spec(workload)
    yield from spec.get("initContainers", [])
    yield from spec["containers"]


def container(workload: Object, name: str) -> Object:
    for candidate in containers(workload):
        if candidate["name"] == name:
            return candidate
    raise AssertionError(f"{workload['metadata']['name']} has no container {name!r}")


def workloads(objects: list[Object]) -> list[Object]:
    return [o for o in objects if o["kind"] in ("Deployment", "Job")]


def environment(objects: list[Object], entry: Object) -> dict[str, str]:
    """A container's environment from its ConfigMaps and `env` (Secrets are not rendered:
    they hold credentials the cluster's operator creates)."""
    env: dict[str, str] = {}
    for source in entry.get("envFrom", []):
        if "configMapRef" in source:
            env.update(find(objects, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in entry.get("env", []):
        if "value" in variable:
            env[variable["name"]] = variable["value"]
    return env


def expand(args: list[str], values: dict[str, str]) -> list[str]:
    """`$(VAR)` in args replaced as the kubelet does."""
    return [
        re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: values[m.group(1)], a) for a in args
    ]


@dataclass(frozen=True)
class KedaSchemas:
    """KEDA's ScaledObject and TriggerAuthentication schemas (tests/deploy/data)."""

    scaled_object: Object
    trigger_authentication: Object

    @classmethod
    def load(cls) -> KedaSchemas:
        def strict(name: str) -> Object:
            schema = json.loads((DATA / name).read_text())
            _forbid_unknown_fields(schema)
            return schema

        return cls(
            strict("keda-2.16.1-scaledobject.schema.json"),
            strict("keda-2.16.1-triggerauthentication.schema.json"),
        )

    def for_kind(self, kind: str) -> Object:
        return {
            "ScaledObject": self.scaled_object,
            "TriggerAuthentication": self.trigger_authentication,
        }[kind]


def _forbid_unknown_fields(schema: Any) -> None:
    """Objects with declared properties take no others: what `kubectl apply` does with
    its default strict field validation (a CRD's schema alone would let the API server
    prune a misspelt field without a word)."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            _forbid_unknown_fields(value)
    elif isinstance(schema, list):
        for value in schema:
            _forbid_unknown_fields(value)
