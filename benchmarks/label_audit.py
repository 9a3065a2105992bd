"""Label audit: planted wrong labels found by ``classifier-audit-labels``, and what
training without the flagged rows gives back.

Two datasets:

* ``synthetic``: the built-in synthetic jersey crops (the ``classifier-synth``
  renderer), ``--classes`` (default: the empty label and ten numbers, some of
  them easy to confuse: 1/7/11, 13/18, 21/23), ``--per-class`` train rows per
  class, valid and test half that each;
* ``digits``: real handwriting that ships with scikit-learn (``load_digits``:
  1,797 digits scanned by the UCI optical-recognition project, 8 x 8 grey
  levels; not made by this project's generator), enlarged to ``--image-size``
  px (bilinear) and split 60/20/20 (stratified) into train/valid/test.

For each flip rate, that share of the train rows (picked at random) gets another
label (uniform over the other classes); valid and test keep their true labels.
Then, with one recipe for every run of a dataset (``train_demo``: ResNet18 from
scratch on the CPU; ``digits`` at 16 px for 10 epochs, ``synthetic`` at 32 px for
30 epochs; only the checkpoint and EMA callbacks, no artifacts; uncompiled
augmentation, no loader workers; every process on one thread, as on a shared
2-core machine torch's default two threads per process ran ten times slower):

1. ``classifier-audit-labels`` on the noisy dataset (``--folds`` folds):
   *precision* = flipped rows among the flagged train rows, *recall* = flagged
   rows among the flipped ones;
2. test top-1 of ``classifier-train`` on the clean labels (once per dataset), on
   the noisy labels, and on the noisy labels without the flagged train rows
   (``data.exclude_rows=AUDIT/flagged_train_rows.txt``); *recovered* = (without
   flagged - noisy) / (clean - noisy), the share of the accuracy lost to the
   noise that removing the flagged rows gives back.

Targets at 6 % flipped: precision >= 0.8, recall >= 0.8, recovered >= 0.5.

Every run folder stays under ``--work``; running the same command again reuses
the finished runs and audit folds, so an interrupted benchmark resumes.

Run::

    PYTHONPATH=src python benchmarks/label_audit.py [--datasets synthetic digits]
        [--rates 0.03 0.06 0.10] [--folds 4] [--work /tmp/label_audit]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from rich.table import Table

from classifier_training.core.readers import read_split
from classifier_training.core.row_refs import read_row_list, row_ref
from classifier_training.synthetic import SynthConfig, generate_dataset

REPO = Path(__file__).resolve().parents[1]
SYNTH_CLASSES = ("", "1", "4", "7", "11", "13", "18", "21", "23", "44", "77")
#: Per dataset: image size (px) and epochs of the recipe.
RECIPES = {"synthetic": (32, 30), "digits": (16, 10)}
TARGET_RATE = 0.06
TARGET_PRECISION = 0.8
TARGET_RECALL = 0.8
TARGET_RECOVERED = 0.5


@dataclass
class Row:
    """One dataset at one flip rate."""

    dataset: str
    rate: float
    train_rows: int
    flipped: int
    flagged: int
    hits: int
    clean: float
    noisy: float
    cleaned: float
    audit_s: float

    @property
    def precision(self) -> float:
        """Flipped rows among the flagged ones."""
        return self.hits / self.flagged if self.flagged else float("nan")

    @property
    def recall(self) -> float:
        """Flagged rows among the flipped ones."""
        return self.hits / self.flipped if self.flipped else float("nan")

    @property
    def recovered(self) -> float:
        """Share of the accuracy lost to the noise that removing flagged rows
        gives back (NaN when the noise cost nothing)."""
        lost = self.clean - self.noisy
        return (self.cleaned - self.noisy) / lost if lost > 0 else float("nan")


def make_synthetic(
    root: Path, classes: Sequence[str], per_class: int, size: int
) -> None:
    """The synthetic jersey crops (valid/test: half of ``per_class`` each)."""
    config = SynthConfig(
        out_dir=root,
        per_class=per_class,
        image_size=max(16, size),
        classes=tuple(classes),
        eval_fraction=0.5,
        seed=0,
    )
    generate_dataset(config, log=lambda _: None)


def make_digits(root: Path, size: int) -> None:
    """scikit-learn's handwritten digits as a JSONL dataset of ``size`` px PNGs."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if (root / "train" / "annotations.jsonl").is_file():
        return
    digits = load_digits()
    index = np.arange(len(digits.target))
    train, rest = train_test_split(
        index, test_size=0.4, stratify=digits.target, random_state=0
    )
    valid, test = train_test_split(
        rest, test_size=0.5, stratify=digits.target[rest], random_state=0
    )
    for split, rows in (("train", train), ("valid", valid), ("test", test)):
        folder = root / split / "images"
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for i in rows:
            grey = (digits.images[i] * (255 / 16)).astype(np.uint8)
            image = Image.fromarray(grey).resize(
                (size, size), Image.Resampling.BILINEAR
            )
            image.convert("RGB").save(folder / f"{i:04d}.png")
            row = {"image": f"images/{i:04d}.png", "suffix": str(digits.target[i])}
            lines.append(json.dumps(row) + "\n")
        (root / split / "annotations.jsonl").write_text("".join(lines))


def flip_labels(clean: Path, noisy: Path, rate: float, seed: int) -> set[str]:
    """Copy ``clean`` to ``noisy`` with ``rate`` of the train labels changed.

    Returns:
        The row references of the changed rows.
    """
    samples = read_split(clean / "train")
    if noisy.exists():
        shutil.rmtree(noisy)
    shutil.copytree(clean, noisy, ignore=shutil.ignore_patterns(".cache"))
    rng = np.random.default_rng(seed)
    classes = sorted({s.label for s in samples})
    picked = rng.choice(len(samples), size=round(rate * len(samples)), replace=False)
    jsonl = noisy / "train" / "annotations.jsonl"
    lines = jsonl.read_text().splitlines()
    flipped = set()
    for i in sorted(int(p) for p in picked):
        sample = samples[i]
        assert sample.line is not None
        row = json.loads(lines[sample.line - 1])
        others = [c for c in classes if c != row["suffix"]]
        row["suffix"] = str(rng.choice(others))
        lines[sample.line - 1] = json.dumps(row)
        flipped.add(row_ref(sample, clean))
    jsonl.write_text("\n".join(lines) + "\n")
    return flipped


def _run(command: list[str], log: Path) -> None:
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "OMP_NUM_THREADS": "1"}
    with log.open("w") as handle:
        code = subprocess.run(
            command, stdout=handle, stderr=subprocess.STDOUT, env=env, check=False
        ).returncode
    if code != 0:
        tail = log.read_text().splitlines()[-15:]
        raise SystemExit(f"failed ({code}): {' '.join(command)}\n" + "\n".join(tail))


def train(root: Path, run_dir: Path, recipe: Sequence[str], *extra: str) -> float:
    """Test top-1 of a ``classifier-train`` run (reused when already finished)."""
    metrics = run_dir / "metrics.json"
    if not metrics.is_file():
        shutil.rmtree(run_dir, ignore_errors=True)
        command = [
            sys.executable, "-m", "classifier_training.train",
            "--config-name", "train_demo", f"data.data_root={root}",
            f"hydra.run.dir={run_dir}", *recipe, *extra,
        ]  # fmt: skip
        _run(command, run_dir.parent / f"{run_dir.name}.log")
    return float(json.loads(metrics.read_text())["test"]["acc_top1"])


def audit(root: Path, out: Path, recipe: Sequence[str], folds: int) -> float:
    """Run ``classifier-audit-labels``; returns its wall time (s)."""
    started = time.perf_counter()
    command = [
        sys.executable, "-m", "classifier_training.audit.cli", str(root),
        "--out", str(out), "--folds", str(folds), "--config-name", "train_demo",
        *recipe,
    ]  # fmt: skip
    _run(command, out.parent / f"{out.name}.log")
    return time.perf_counter() - started


def bench_dataset(
    name: str, clean: Path, work: Path, args: argparse.Namespace, console: Console
) -> list[Row]:
    """Every flip rate of one dataset."""
    size, epochs = RECIPES[name]
    recipe = [
        f"data.image_size={args.image_size or size}",
        f"trainer.max_epochs={args.epochs or epochs}",
        "data.num_workers=0",
        "data.compile_augmentation=false",
        "callbacks=[model_checkpoint,ema]",
    ]
    console.print(f"{name}: clean run")
    clean_acc = train(clean, work / name / "clean", recipe)
    rows = []
    for rate in args.rates:
        tag = f"{name}/flip{round(100 * rate):02d}"
        noisy = work / tag / "data"
        flipped = flip_labels(clean, noisy, rate, args.seed)
        console.print(f"{tag}: {len(flipped)} labels flipped; audit")
        spent = audit(noisy, work / tag / "audit", recipe, args.folds)
        flagged_list = work / tag / "audit" / "flagged_train_rows.txt"
        flagged = set(read_row_list(flagged_list))
        console.print(f"{tag}: {len(flagged)} flagged; noisy and cleaned runs")
        noisy_acc = train(noisy, work / tag / "noisy", recipe)
        cleaned_acc = train(
            noisy, work / tag / "cleaned", recipe, f"data.exclude_rows={flagged_list}"
        )
        rows.append(
            Row(
                dataset=name,
                rate=rate,
                train_rows=len(read_split(clean / "train")),
                flipped=len(flipped),
                flagged=len(flagged),
                hits=len(flagged & flipped),
                clean=clean_acc,
                noisy=noisy_acc,
                cleaned=cleaned_acc,
                audit_s=spent,
            )
        )
    return rows


def print_table(console: Console, rows: Sequence[Row]) -> None:
    """The results table (the README's)."""
    table = Table(title="Label audit: planted flips")
    for column in (
        "dataset", "flipped", "flagged", "precision", "recall", "top-1 clean",
        "top-1 noisy", "top-1 w/o flagged", "recovered", "audit s",
    ):  # fmt: skip
        table.add_column(column, justify="left" if column == "dataset" else "right")
    for r in rows:
        table.add_row(
            r.dataset,
            f"{r.rate:.0%} ({r.flipped}/{r.train_rows})",
            str(r.flagged),
            f"{r.precision:.2f}",
            f"{r.recall:.2f}",
            f"{r.clean:.2%}",
            f"{r.noisy:.2%}",
            f"{r.cleaned:.2%}",
            "n/a" if np.isnan(r.recovered) else f"{r.recovered:.2f}",
            f"{r.audit_s:.0f}",
        )
    console.print(table)


def target_lines(rows: Sequence[Row]) -> list[str]:
    """The ``target ...: value (MET|MISSED)`` lines, at the target rate."""
    lines = []
    for r in rows:
        if abs(r.rate - TARGET_RATE) > 1e-9:
            continue
        at = f"{r.rate:.0%} flipped, {r.dataset}"
        lines.append(
            f"target precision >= {TARGET_PRECISION} ({at}): {r.precision:.2f} "
            f"({'MET' if r.precision >= TARGET_PRECISION else 'MISSED'})"
        )
        lines.append(
            f"target recall >= {TARGET_RECALL} ({at}): {r.recall:.2f} "
            f"({'MET' if r.recall >= TARGET_RECALL else 'MISSED'})"
        )
        if np.isnan(r.recovered):
            lines.append(
                f"target recovered >= {TARGET_RECOVERED} of the lost accuracy ({at}): "
                "n/a, the noise cost no accuracy (MET)"
            )
        else:
            verdict = "MET" if r.recovered >= TARGET_RECOVERED else "MISSED"
            lines.append(
                f"target recovered >= {TARGET_RECOVERED} of the lost accuracy ({at}): "
                f"{r.recovered:.2f} ({verdict})"
            )
    return lines


def main() -> int:
    """Run the benchmark; prints the table and the target lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--datasets", nargs="+", default=["synthetic", "digits"],
        choices=["synthetic", "digits"],
    )  # fmt: skip
    parser.add_argument("--rates", nargs="+", type=float, default=[0.03, 0.06, 0.10])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=None, help="default: RECIPES")
    parser.add_argument("--image-size", type=int, default=None, help="as --epochs")
    parser.add_argument("--per-class", type=int, default=80, help="synthetic")
    parser.add_argument("--classes", nargs="+", default=list(SYNTH_CLASSES))
    parser.add_argument("--seed", type=int, default=0, help="which rows flip")
    parser.add_argument("--work", type=Path, default=Path("/tmp/label_audit"))
    args = parser.parse_args()
    console = Console()
    started = time.perf_counter()
    rows: list[Row] = []
    for name in args.datasets:
        clean = args.work / name / "clean_data"
        size = args.image_size or RECIPES[name][0]
        if name == "synthetic":
            make_synthetic(clean, args.classes, args.per_class, size)
        else:
            make_digits(clean, size)
        rows += bench_dataset(name, clean, args.work, args, console)
    print_table(console, rows)
    console.print(
        f"{args.folds} folds; recipes (px, epochs) {RECIPES}; "
        f"{time.perf_counter() - started:.0f} s in all"
    )
    for line in target_lines(rows):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
