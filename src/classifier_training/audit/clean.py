"""``--write-clean DIR``: a copy of the dataset root without (or relabelling) the
flagged rows. The original files are only read.

Everything under the root is copied except its image cache folder (``.cache``).
In the JSONL layout a flagged row's line is left out of its annotation file's
copy (``--relabel``: its ``suffix`` is the suggested label; every other line is
copied byte for byte). In the class-folder layout a flagged image is not copied
(``--relabel``: it is copied into the suggested class's folder). The copy is a
new dataset root: train on it, or ``diff -r`` it against the original to review.
"""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

from classifier_training.audit.issues import Flag
from classifier_training.core.errors import UsageError
from classifier_training.core.io import atomic_write_text

#: Left out of the copy: the default folder of the disk image cache.
CACHE_FOLDER = ".cache"


def check_clean_target(data_root: Path, dest: Path) -> None:
    """Refuse a target that exists with files in it, or overlaps the dataset root.

    Raises:
        UsageError: Naming the folder and why.
    """
    root, target = data_root.resolve(), dest.resolve()
    if target == root or target.is_relative_to(root) or root.is_relative_to(target):
        raise UsageError(
            f"--write-clean {dest}: must be outside the dataset root {data_root} "
            "(the originals are never modified)"
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(
            f"--write-clean {dest}: exists and is not an empty folder; choose a "
            "new folder"
        )


def write_clean(
    data_root: Path, dest: Path, flags: Sequence[Flag], relabel: bool = False
) -> Counter[str]:
    """Copy ``data_root`` to ``dest`` without the flagged rows (or relabelled).

    Args:
        data_root: The audited dataset root.
        dest: The new root (absent or empty; see :func:`check_clean_target`).
        flags: The flagged rows.
        relabel: Give flagged rows the suggested label instead of leaving them out.

    Returns:
        Rows changed per split.
    """
    check_clean_target(data_root, dest)
    lines_of: dict[Path, dict[int, Flag]] = defaultdict(dict)
    images: dict[Path, Flag] = {}
    for flag in flags:
        if flag.sample.line is not None:
            lines_of[flag.sample.source.resolve()][flag.sample.line] = flag
        else:
            images[flag.sample.image.resolve()] = flag
    root = data_root.resolve()

    def ignore(folder: str, names: list[str]) -> set[str]:
        here = Path(folder).resolve()
        skipped = {n for n in names if (here / n) in images}
        if here == root and CACHE_FOLDER in names:
            skipped.add(CACHE_FOLDER)
        return skipped

    shutil.copytree(data_root, dest, ignore=ignore, dirs_exist_ok=True)
    for source, flagged in lines_of.items():
        target = dest / source.relative_to(root)
        atomic_write_text(target, _clean_lines(source, flagged, relabel))
    if relabel:
        for image, flag in images.items():
            split_dir = flag.sample.source.resolve().parent  # above the class folder
            folder = dest / split_dir.relative_to(root) / flag.suggested
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / image.name
            if target.exists():  # a namesake in the new class: keep both
                target = folder / f"{flag.given}_{image.name}"
            shutil.copy2(image, target)
    return Counter(flag.split for flag in flags)


def _clean_lines(source: Path, flagged: dict[int, Flag], relabel: bool) -> str:
    out = []
    with source.open(encoding="utf-8", newline="") as handle:
        for number, text in enumerate(handle, start=1):
            flag = flagged.get(number)
            if flag is None:
                out.append(text)
            elif relabel:
                row = json.loads(text)
                row["suffix"] = flag.suggested
                out.append(json.dumps(row, ensure_ascii=False) + "\n")
    return "".join(out)
