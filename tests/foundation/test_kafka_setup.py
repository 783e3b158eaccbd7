"""`tensorflux broker --kafka` without Java or Maven: one line that names what to install."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


def _fake_java(folder, version: str) -> None:
    java = folder / "java"
    java.write_text(f"#!/bin/sh\necho 'openjdk version \"{version}\" 2025-04-15' >&2\n")
    java.chmod(0o755)


def _broker(tmp_path, *args: str):
    environ = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    environ.update(PATH=str(tmp_path / "bin"), TENSORFLUX_CACHE_DIR=str(tmp_path / "cache"))
    return subprocess.run(
        [sys.executable, "-m", "engine", "broker", "--kafka", "--port", "0", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=environ,
    )


@pytest.fixture
def bin_dir(tmp_path):
    (tmp_path / "bin").mkdir()
    return tmp_path / "bin"


@pytest.mark.parametrize("args", [(), ("--fetch-only",)])
def test_missing_java_is_one_line_naming_it(tmp_path, bin_dir, args):
    result = _broker(tmp_path, *args)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Java 17+" in result.stderr
    assert "install" in result.stderr


def test_old_java_is_refused_naming_its_version(tmp_path, bin_dir):
    _fake_java(bin_dir, "11.0.2")
    result = _broker(tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "is Java 11" in result.stderr


def test_missing_maven_is_one_line_naming_it(tmp_path, bin_dir):
    _fake_java(bin_dir, "17.0.15")
    result = _broker(tmp_path)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "needs Maven" in result.stderr
    assert str(tmp_path / "cache") in result.stderr
