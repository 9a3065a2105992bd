"""What a new user waits for: ``classifier-train --help``, a misspelt key's error,
and the checkpoint files a run writes.

Start-up: wall time of ``python -m classifier_training.train --help`` (prints
before torch is imported) and of a command with a misspelt key (torch imported,
the recipe composed, the key refused), best of ``--repeats``.

Checkpoints: one training step of ``model=resnet18`` and ``model=resnet50``
(``pretrained=false``: no download) on a tiny generated dataset with 101
classes, as the demo has; prints the sizes of ``best.ckpt`` (slim) and
``last.ckpt`` (everything to resume).

Usage::

    python benchmarks/first_hour.py [--repeats 3] [--skip-checkpoints]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

SRC = Path(__file__).resolve().parents[1] / "src"
ENV = {**os.environ, "PYTHONPATH": str(SRC)}
TRAIN = [sys.executable, "-m", "classifier_training.train"]


def _wall(command: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, check=False)
    return time.perf_counter() - started


def startup(repeats: int) -> None:
    """Print the best wall time of ``--help`` and of a refused misspelt key."""
    with tempfile.TemporaryDirectory() as folder:
        cwd = Path(folder)
        helps = [_wall([*TRAIN, "--help"], cwd) for _ in range(repeats)]
        typos = [
            _wall([*TRAIN, "--config-name", "train_demo", "data.batch_sise=8"], cwd)
            for _ in range(repeats)
        ]
    print(
        f"classifier-train --help:             {min(helps):.2f} s (best of {repeats})"
    )
    print(f"classifier-train data.batch_sise=8:  {min(typos):.2f} s (exit 2)")


def _dataset(root: Path, classes: int) -> None:
    rng = np.random.default_rng(0)
    for split in ("train", "val", "test"):
        for label in range(classes):
            folder = root / split / str(label)
            folder.mkdir(parents=True)
            for i in range(2):
                pixels = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")


def checkpoints() -> None:
    """Print the sizes of ``best.ckpt`` and ``last.ckpt`` for ResNet-18 and -50."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        _dataset(root / "data", classes=101)
        for arch in ("resnet18", "resnet50"):
            run = root / arch
            data = f"data.data_root={root / 'data'}"
            subprocess.run(
                [*TRAIN, "--config-name", "train_demo", data, f"model={arch}",
                 "model.pretrained=false", "data.image_size=32",
                 "data.num_workers=0", "trainer.max_epochs=1",
                 "+trainer.limit_train_batches=1", f"hydra.run.dir={run}",
                 "~callbacks.rich_progress_bar"],
                cwd=root, env=ENV, capture_output=True, check=True,
            )  # fmt: skip
            best = (run / "checkpoints" / "best.ckpt").stat().st_size / 1e6
            last = (run / "checkpoints" / "last.ckpt").stat().st_size / 1e6
            print(f"{arch}: best.ckpt {best:.1f} MB, last.ckpt {last:.1f} MB")


def main() -> None:
    """Run the measurements."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-checkpoints", action="store_true")
    args = parser.parse_args()
    startup(args.repeats)
    if not args.skip_checkpoints:
        checkpoints()


if __name__ == "__main__":
    main()
