"""The layers run one way: import-linter's contracts (pyproject.toml) hold."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def _lint(cwd: Path, src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_projects_layers_are_kept() -> None:
    result = _lint(REPO, REPO / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "layers run one way KEPT" in result.stdout
    assert "import no torch KEPT" in result.stdout


def test_a_lower_layer_importing_a_higher_one_fails(tmp_path: Path) -> None:
    """The same kind of contract on a package where core imports a callback."""
    package = tmp_path / "src" / "pkg"
    for name, body in {
        "__init__.py": "",
        "core.py": "import pkg.callbacks\n",  # the violation
        "callbacks.py": "import pkg.core\n",
    }.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(body)
    (tmp_path / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [tool.importlinter]
            root_package = "pkg"

            [[tool.importlinter.contracts]]
            name = "layers"
            type = "layers"
            layers = ["pkg.callbacks", "pkg.core"]
            """
        )
    )
    result = _lint(tmp_path, tmp_path / "src")
    assert result.returncode != 0
    assert "pkg.core -> pkg.callbacks" in result.stdout
