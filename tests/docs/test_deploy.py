"""docker-compose.yml cannot run here (no Docker engine), but every tensorflux command in it must parse."""

from __future__ import annotations

from pathlib import Path

import yaml

from engine.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]


def test_compose_commands_are_valid_tensorflux_commands():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = [s["command"] for s in compose["services"].values() if "build" in s]
    assert len(commands) == 3
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(command)
        assert callable(args.handler)


def test_the_image_copies_what_the_engine_needs():
    copied = {
        word
        for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines()
        if line.startswith("COPY ")
        for word in line.split()[1:-1]
    }
    assert {"engine", "schemas", "examples", "pyproject.toml"} <= copied
    assert all((ROOT / path).exists() for path in copied)
