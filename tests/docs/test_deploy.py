"""deploy/Dockerfile and docker-compose.yml cannot run here (no Docker engine), so what
they say is checked piece by piece: every tensorflux command in them parses, the image
copies what the engine needs, and the shell and Python the Dockerfile runs work."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from engine.cli import build_parser
from engine.runtimes.roots import ROOTS_VARIABLE

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "deploy" / "Dockerfile").read_text()
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def instructions(keyword: str) -> list[str]:
    """The arguments of each `keyword` instruction, continuation lines joined."""
    text = DOCKERFILE.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in text.splitlines() if line.startswith(keyword + " ")]


def stages() -> list[str]:
    """The Dockerfile's stages, each as its text from its FROM."""
    return re.split(r"^(?=FROM )", DOCKERFILE, flags=re.M)[1:]


def test_compose_commands_are_valid_tensorflux_commands():
    commands = [s["command"] for s in COMPOSE["services"].values() if "build" in s]
    assert len(commands) == 3
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(command)
        assert callable(args.handler)


def test_the_image_copies_what_the_engine_needs():
    # From the build context; `COPY --from=STAGE` copies between stages.
    copied = {
        word
        for arguments in instructions("COPY")
        if not arguments.startswith("--from=")
        for word in arguments.split()[:-1]
    }
    assert {"engine", "schemas", "examples", "pyproject.toml"} <= copied
    assert all((ROOT / path).exists() for path in copied)


def test_the_image_is_built_in_stages_and_runs_as_a_non_root_user():
    build, run = stages()
    assert " AS build" in build.splitlines()[0]
    assert "pip install" in build and "pip install" not in run
    (user,) = re.findall(r"^USER (\S+)$", run, flags=re.M)
    assert user.isdigit() and int(user) != 0, "numeric, so runAsNonRoot can check it"
    worker = yaml.safe_load((ROOT / "deploy/k8s/base/worker.yaml").read_text().split("---")[0])
    assert worker["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == int(user)


@pytest.mark.parametrize(
    ("extras", "requirement"), [("", "tensorflux"), ("a,b", "tensorflux[a,b]")]
)
def test_extras_are_a_build_argument(extras: str, requirement: str):
    assert 'ARG EXTRAS=""' in stages()[0]
    (install,) = [i for i in instructions("RUN") if i.startswith("pip install")]
    target = install.split()[-1]
    # The shell (POSIX sh, as `RUN` uses) expands it as pip will see it.
    expanded = subprocess.run(
        ["sh", "-c", f"echo {target}"],
        env={"EXTRAS": extras, "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert expanded.startswith(".")
    assert "tensorflux" + expanded[1:] == requirement  # `pip install -e .[a,b]`


def test_the_broker_binary_the_image_links_is_where_the_dockerfile_looks():
    (link,) = [i for i in instructions("RUN") if i.startswith("ln -s")]
    script = re.search(r"python -c '([^']+)'", link).group(1)
    found = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert os.access(found, os.X_OK), f"{found} is not an executable broker binary"
    env = " ".join(instructions("ENV"))
    assert "CALF_TANSU_BIN=/opt/venv/bin/tansu" in env
    assert "/opt/venv/bin/tansu" in link


def test_the_compose_worker_may_load_the_models_the_loader_publishes():
    loader, worker = COMPOSE["services"]["loader"], COMPOSE["services"]["worker"]
    specs = loader["command"][loader["command"].index("-f") + 1]
    roots = worker["environment"][ROOTS_VARIABLE].split(":")
    # WORKDIR /app: the loader's relative path is /app/<specs>, where the image has examples/.
    assert any(f"/app/{specs.rstrip('/')}".startswith(root.rstrip("/")) for root in roots)
    assert (ROOT / specs).is_dir()


@pytest.mark.skipif(shutil.which("docker") is None, reason="no docker command here")
def test_docker_compose_config_accepts_the_file():
    probe = subprocess.run(["docker", "info"], capture_output=True, timeout=30)
    if probe.returncode != 0:
        pytest.skip("no Docker engine answers")
    result = subprocess.run(
        ["docker", "compose", "config", "--quiet"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def deploy_section() -> str:
    readme = (ROOT / "README.md").read_text()
    return readme.split("\n## Deploy\n", 1)[1].split("\n## ", 1)[0]


def test_the_readme_deploy_section_names_files_that_exist():
    named = set(
        re.findall(r"`((?:deploy/k8s/)?(?:base|overlays|components)/[^`\s]*)`", deploy_section())
    )
    assert len(named) >= 8
    for path in named:
        assert (ROOT / "deploy" / "k8s" / path.removeprefix("deploy/k8s/")).exists(), path


def test_the_readme_deploy_section_states_the_manifests_numbers():
    k8s = ROOT / "deploy" / "k8s"
    scaled = yaml.safe_load((k8s / "overlays/prod/worker-autoscaling.yaml").read_text())["spec"]
    lag = scaled["triggers"][0]["metadata"]["lagThreshold"]
    worker = yaml.safe_load((k8s / "base/worker.yaml").read_text().split("---")[0])
    gateway = yaml.safe_load((k8s / "base/gateway.yaml").read_text().split("---")[0])
    grace = {
        name: d["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        for name, d in (("worker", worker), ("gateway", gateway))
    }
    text = " ".join(deploy_section().split())
    assert f"a worker for every {lag} records" in text
    assert f"{scaled['minReplicaCount']} to {scaled['maxReplicaCount']} workers" in text
    assert f"{grace['worker']} s for a worker" in text
    assert f"{grace['gateway']} s for a gateway" in text
