"""``classifier-train --help``: the recipes, the config groups and the keys users
override most, printed before anything heavy is imported.

Everything listed is read from the package's files, never imported: the recipes
and group options from ``conf/`` (a recipe's line is the first sentence of its
leading comment), the options stored from code (``@register``,
``register_settings``) by reading their modules' source with :mod:`ast`, since
importing them would import torch. Hydra's own help stays at ``--hydra-help``.
"""

from __future__ import annotations

import ast
import shutil
import textwrap
from importlib import resources
from pathlib import Path

#: The recipe ``classifier-train`` composes without ``--config-name``.
DEFAULT_RECIPE = "train_jersey_ocr_resnet18"

#: The keys users override most, with what each changes.
COMMON_OVERRIDES = (
    ("data.data_root=DIR", "the dataset (JSONL or class-per-folder layout)"),
    ("trainer.max_epochs=N", "how long to train"),
    ("data.image_size=PX", "input side in pixels (the model's input)"),
    ("data.batch_size=N", "images per device and step"),
    ("optimizer.lr=X", "peak learning rate"),
    ("model=resnet50", "another architecture (the model group above)"),
    ("model.pretrained=false", "train from scratch (no ImageNet weights)"),
    ("trainer.accelerator=cpu", "cpu, gpu, mps or auto"),
    ("data.num_workers=N", "data-loading processes"),
    ("ckpt_path=CKPT", "resume from RUN/checkpoints/last.ckpt"),
)

#: Source files (relative to the package) that store config options from code.
_CODE_OPTION_SOURCES = ("models", "training/builders.py")


def _package_dir() -> Path:
    return Path(str(resources.files("classifier_training")))


def _first_sentence(yaml_file: Path) -> str:
    """The first sentence of a YAML file's leading comment block."""
    lines = []
    for line in yaml_file.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line.lstrip("#").strip())
    text = " ".join(lines)
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def recipes() -> dict[str, str]:
    """Recipe name -> its one-line description (``conf/<name>.yaml``)."""
    conf = _package_dir() / "conf"
    return {path.stem: _first_sentence(path) for path in sorted(conf.glob("*.yaml"))}


def _code_options() -> list[tuple[str, str]]:
    """``(group, option)`` pairs stored from code, read from the source."""
    root = _package_dir()
    files: list[Path] = []
    for name in _CODE_OPTION_SOURCES:
        path = root / name
        files += sorted(path.glob("*.py")) if path.is_dir() else [path]
    found = []
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                continue
            if node.func.id not in ("register", "register_settings"):
                continue
            values = [a.value for a in node.args if isinstance(a, ast.Constant)]
            keywords = {
                k.arg: k.value.value
                for k in node.keywords
                if isinstance(k.value, ast.Constant)
            }
            group = keywords.get("group", values[0] if values else None)
            option = keywords.get("name", values[1] if len(values) > 1 else None)
            if isinstance(group, str) and isinstance(option, str):
                found.append((group, option))
    return found


def config_groups() -> dict[str, list[str]]:
    """Config group -> its options (YAML files and options stored from code)."""
    conf = _package_dir() / "conf"
    groups: dict[str, set[str]] = {
        folder.name: {path.stem for path in folder.glob("*.yaml")}
        for folder in conf.iterdir()
        if folder.is_dir() and any(folder.glob("*.yaml"))
    }
    for group, option in _code_options():
        groups.setdefault(group, set()).add(option)
    return {group: sorted(groups[group]) for group in sorted(groups)}


def help_text(width: int | None = None) -> str:
    """The text of ``classifier-train --help``.

    Args:
        width: Line width (default: the terminal's, at most 100).
    """
    width = width or min(shutil.get_terminal_size((80, 24)).columns, 100)
    out = [
        "usage: classifier-train [--config-name RECIPE] [KEY=VALUE ...]",
        "       classifier-train -m KEY=A,B ...   (a sweep: one run per value)",
        "",
        "Trains an image classifier; the run folder (outputs/<date>/<time>, also",
        "outputs/latest) gets checkpoints, model.onnx, metrics.json, report.html.",
        "",
        "Recipes (--config-name):",
    ]
    for name, line in recipes().items():
        default = " [default]" if name == DEFAULT_RECIPE else ""
        out.append(f"  {name}{default}")
        out.append("    " + textwrap.shorten(line, width - 4, placeholder=" ..."))
    out += ["", "Config groups (GROUP=OPTION):"]
    for group, options in config_groups().items():
        out += textwrap.wrap(
            ", ".join(options),
            width,
            initial_indent=f"  {group}: ",
            subsequent_indent=" " * (len(group) + 4),
            break_on_hyphens=False,
        )
    out += ["", "Keys users override most (KEY=VALUE):"]
    column = max(len(key) for key, _ in COMMON_OVERRIDES) + 4
    for key, what in COMMON_OVERRIDES:
        if column + len(what) <= width:
            out.append(f"  {key.ljust(column - 2)}{what}")
        else:
            out += [f"  {key}", f"{' ' * column}{what}"]
    out += [
        "",
        "Every key and its value (the full config):",
        "  classifier-train [--config-name RECIPE] [KEY=VALUE ...] --cfg job",
        "Hydra's own help (sweeps, launchers, flags): classifier-train --hydra-help",
    ]
    return "\n".join(out) + "\n"
