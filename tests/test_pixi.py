"""pixi.toml mirrors the Makefile (tasks) and pyproject.toml (dependencies).

Pixi cannot resolve on this project's machines, so this is the check that keeps the
manifest true: a task that runs other commands than its make target, or a bound
that drifts from pyproject, fails here.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
REQUIRED_TASKS = {"train", "train-local", "test", "lint", "format", "typecheck"}
# Make prerequisites pixi covers by other means: `pixi run` installs the
# environment itself, and a task argument without default is required.
MAKE_ONLY_PREREQUISITES = {
    "$(VENV)/.installed",
    "$(VENV)/.installed-dev",
    "require-data-root",
}
# Make variables the user sets on the command line <-> pixi task arguments.
MAKE_VARIABLE_TO_PIXI_ARG = {"ARGS": "overrides", "DATA_ROOT": "data_root"}
SELF = "classifier-training"
_VARIABLE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")


@dataclass
class MakeRule:
    """One Makefile rule: prerequisites (order-only ones included) and recipe."""

    prerequisites: list[str] = field(default_factory=list)
    recipe: list[str] = field(default_factory=list)


@dataclass
class Makefile:
    """The parts of a Makefile this check needs: variables and rules."""

    variables: dict[str, str]
    rules: dict[str, MakeRule]

    def expand(self, text: str) -> str:
        """Expands ``$(VAR)`` from the Makefile's defaults; user variables -> args."""

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in MAKE_VARIABLE_TO_PIXI_ARG:
                return "{{ " + MAKE_VARIABLE_TO_PIXI_ARG[name] + " }}"
            if name == "BIN":  # pixi puts the environment's bin/ on PATH
                return "\0BIN"
            if name not in self.variables:
                raise KeyError(f"Makefile: variable {name} is not defined")
            return self.expand(self.variables[name])

        return _VARIABLE.sub(substitute, text).replace("\0BIN/", "")

    def commands(self, target: str) -> list[str]:
        """The commands ``make target`` runs, prerequisites first."""
        rule = self.rules[target]
        out: list[str] = []
        for prerequisite in rule.prerequisites:
            if prerequisite in MAKE_ONLY_PREREQUISITES:
                continue
            out.extend(self.commands(prerequisite))
        for line in rule.recipe:
            out.extend(_split_commands(self.expand(line.lstrip("@"))))
        return out


def parse_makefile(path: Path) -> Makefile:
    """Reads variable defaults and rules (continuation lines joined)."""
    text = path.read_text().replace("\\\n", " ")
    variables: dict[str, str] = {}
    rules: dict[str, MakeRule] = {}
    current: MakeRule | None = None
    for line in text.splitlines():
        if line.startswith("\t"):
            if current is not None and line.strip():
                current.recipe.append(line.strip())
            continue
        current = None
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        assignment = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*(\?=|:=|=)\s*(.*)$", line)
        if assignment:
            variables[assignment.group(1)] = assignment.group(3).strip()
            continue
        rule = re.match(r"^([^:=]+):(?!=)(.*)$", line)
        if rule:
            current = MakeRule(prerequisites=rule.group(2).replace("|", " ").split())
            for target in rule.group(1).split():
                rules[target] = current
    return Makefile(variables, rules)


def _split_commands(line: str) -> list[str]:
    return [" ".join(part.split()) for part in line.split("&&") if part.strip()]


def pixi_commands(tasks: dict[str, Any], name: str) -> list[str]:
    """The commands ``pixi run name`` runs, ``depends-on`` first."""
    task = tasks[name]
    if isinstance(task, str):
        task = {"cmd": task}
    out: list[str] = []
    for dependency in task.get("depends-on", []):
        dependency_name = (
            dependency if isinstance(dependency, str) else dependency["task"]
        )
        out.extend(pixi_commands(tasks, dependency_name))
    cmd = task.get("cmd", "")
    if isinstance(cmd, list):
        cmd = " ".join(cmd)
    # "{{overrides}}" and "{{ overrides }}" render the same
    cmd = re.sub(r"\{\{\s*(\w+)\s*\}\}", r"{{ \1 }}", cmd)
    out.extend(_split_commands(cmd))
    return out


@pytest.fixture(scope="module")
def pixi() -> dict[str, Any]:
    with (ROOT / "pixi.toml").open("rb") as handle:
        return tomllib.load(handle)


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


@pytest.fixture(scope="module")
def makefile() -> Makefile:
    return parse_makefile(ROOT / "Makefile")


def test_required_tasks_exist(pixi: dict[str, Any]) -> None:
    assert set(pixi["tasks"]) >= REQUIRED_TASKS


def test_every_pixi_task_runs_its_make_targets_commands(
    pixi: dict[str, Any], makefile: Makefile
) -> None:
    for name in pixi["tasks"]:
        assert name in makefile.rules, f"pixi task {name!r} has no make target"
        assert pixi_commands(pixi["tasks"], name) == makefile.commands(name), name


def test_makefile_parsing_sees_the_real_commands(makefile: Makefile) -> None:
    # The comparison above is only as good as this parse of the Makefile.
    assert makefile.commands("train") == [
        "classifier-synth --out data/synthetic-jersey --per-class 60 --seed 0 "
        "--image-size 48",
        "classifier-train --config-name train_demo {{ overrides }}",
    ]
    assert makefile.commands("test")[:2] == [
        "hadolint Dockerfile",
        "shellcheck scripts/*.sh benchmarks/*.sh",
    ]
    assert makefile.commands("test")[-1] == "pytest"


def test_dependencies_match_pyproject(
    pixi: dict[str, Any], pyproject: dict[str, Any]
) -> None:
    expected: dict[str, tuple[SpecifierSet, frozenset[str]]] = {}
    for line in pyproject["project"]["dependencies"]:
        requirement = Requirement(line)
        assert requirement.marker is None, f"pyproject: marker in {line!r}"
        expected[canonicalize_name(requirement.name)] = (
            requirement.specifier,
            frozenset(requirement.extras),
        )
    actual: dict[str, tuple[SpecifierSet, frozenset[str]]] = {}
    for name, spec in pixi["pypi-dependencies"].items():
        if name == SELF:
            continue
        if isinstance(spec, str):
            spec = {"version": spec}
        actual[canonicalize_name(name)] = (
            SpecifierSet(spec.get("version", "")),
            frozenset(spec.get("extras", [])),
        )
    assert actual == expected


def test_the_package_itself_and_python(
    pixi: dict[str, Any], pyproject: dict[str, Any]
) -> None:
    assert pixi["pypi-dependencies"][SELF] == {
        "path": ".",
        "editable": True,
        "extras": ["dev"],
    }
    assert "dev" in pyproject["project"]["optional-dependencies"]
    # conda-forge supplies the interpreter only, within requires-python
    assert set(pixi["dependencies"]) == {"python"}
    assert SpecifierSet(pixi["dependencies"]["python"]) == SpecifierSet(
        pyproject["project"]["requires-python"]
    )
    assert pixi["workspace"]["name"] == pyproject["project"]["name"]
    assert pixi["workspace"]["version"] == pyproject["project"]["version"]
