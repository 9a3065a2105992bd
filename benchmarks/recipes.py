"""Augmentation presets compared at a fixed budget, on clean and degraded test data.

Generates a small synthetic jersey dataset with ``--degrade`` (its extra split
``test_degraded/`` is rendered like broadcast crops: low resolution, blur, noise,
low JPEG quality, fonts and colours train never uses), then trains the demo recipe
(``train_demo``: ResNet18 from scratch, CPU) once per preset and seed with the
same budget (every preset on the ``workers`` augmentation path; a name such as
``digits+mixcut`` adds MixUp/CutMix), and prints per preset:

- clean-test and degraded-test top-1 of the final weights (mean ± std over seeds);
- the loader cost: images/s one worker core produces for the train split
  (decode + resize + that preset's augmentation + normalise), one thread.

Then it applies the rule for the jersey recipes' default: ``broadcast`` replaces
``digits`` only if it beats it on the degraded test by more than the seed-to-seed
spread (the larger of the two standard deviations) and loses at most 0.5 pt on
the clean test.

Usage::

    python benchmarks/recipes.py [--epochs 10] [--seeds 3] [--presets digits,none]
    python benchmarks/recipes.py --presets digits,digits+mixcut   # with MixUp/CutMix
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig

from classifier_training.config import load_data_config
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.synthetic import SynthConfig, generate_dataset
from classifier_training.train import (
    build_datamodule,
    build_model,
    register_configs,
    resolve_data_values,
    silence_known_noise,
)
from classifier_training.training.builders import build_trainer

PRESETS = ("digits", "broadcast", "digits+mixcut", "none", "natural")
#: Batch-level options a preset name can carry: ``digits+mixcut``.
VARIANTS = {
    # MixUp or CutMix (equal odds) on every batch, clean last two epochs.
    "mixcut": [
        "model.mixup_alpha=0.2",
        "model.cutmix_alpha=1.0",
        "model.mixup_off_last_epochs=2",
    ],
}
MAX_CLEAN_LOSS_PT = 0.5


def make_dataset(root: Path, num_classes: int, per_class: int, image_size: int) -> Path:
    """The synthetic jersey set with its degraded test split (cached on disk).

    Classes are the numbers ``0`` .. ``num_classes - 2`` and the empty label.
    """
    config = SynthConfig(
        out_dir=root,
        per_class=per_class,
        image_size=image_size,
        classes=(*(str(n) for n in range(num_classes - 1)), ""),
        # Test splits as large as train: the accuracy differences measured are a
        # few points, so the test sets must be big enough to resolve them.
        eval_fraction=1.0,
        degrade=True,
    )
    generate_dataset(config, log=None)
    return root


def degraded_view(root: Path) -> Path:
    """A folder whose ``test/`` is ``root/test_degraded`` (train/valid: root's).

    The data module then evaluates the degraded split with the train classes,
    exactly as it evaluates ``test/``.
    """
    view = root.parent / f"{root.name}-degraded-view"
    view.mkdir(exist_ok=True)
    for split, source in (
        ("train", "train"),
        ("valid", "valid"),
        ("test", "test_degraded"),
    ):
        link = view / split
        if not link.exists():
            link.symlink_to((root / source).resolve(), target_is_directory=True)
    return view


def compose_config(
    root: Path, preset: str, seed: int, args: argparse.Namespace
) -> DictConfig:
    """The demo recipe with this benchmark's budget."""
    name, *variants = preset.split("+")
    overrides = [
        f"data.data_root={root}",
        f"transforms={name}",
        *(o for variant in variants for o in VARIANTS[variant]),
        f"seed={seed}",
        f"data.image_size={args.image_size}",
        f"data.batch_size={args.batch_size}",
        f"data.num_workers={args.workers}",
        # One path for every preset (`auto` would batch `digits` on a CPU).
        "data.augment_on=workers",
        f"trainer.max_epochs={args.epochs}",
        "logging=none",
        f"paths.output_dir={root.parent / 'runs'}",
        "trainer.num_sanity_val_steps=0",
        # The final weights are scored; validation would only cost time.
        "+trainer.limit_val_batches=0",
    ]
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        return compose(config_name="train_demo", overrides=overrides)


def train_once(
    root: Path, view: Path, preset: str, seed: int, args: argparse.Namespace
) -> tuple[float, float, float]:
    """Train one preset/seed; return clean and degraded test top-1 (%) and seconds."""
    started = time.perf_counter()
    cfg = compose_config(root, preset, seed, args)
    L.seed_everything(seed, workers=True)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    trainer = build_trainer(
        cfg,
        [],
        [],
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    (clean,) = trainer.test(model, datamodule=datamodule, verbose=False)
    degraded_dm = ImageFolderDataModule(
        load_data_config({**resolve_data_values(cfg), "data_root": str(view)}),
        arch=str(cfg.model.arch),
    )
    (degraded,) = trainer.test(model, datamodule=degraded_dm, verbose=False)
    return (
        100 * float(clean["test/acc_top1"]),
        100 * float(degraded["test/acc_top1"]),
        time.perf_counter() - started,
    )


def loader_rate(root: Path, preset: str, args: argparse.Namespace) -> float:
    """Images/s of one worker core: train rows through the dataset, one thread."""
    cfg = compose_config(root, preset, 0, args)
    datamodule = build_datamodule(cfg)
    dataset = datamodule.datasets["train"]
    count = min(args.loader_images, len(dataset))
    for i in range(min(50, count)):  # warm-up: file cache, lazy imports
        dataset[i]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        started = time.perf_counter()
        for i in range(count):
            dataset[i]
        return count / (time.perf_counter() - started)
    finally:
        torch.set_num_threads(threads)


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value; NaN for none)."""
    if not values:
        return math.nan, math.nan
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def decide(results: dict[str, dict[str, Any]]) -> str:
    """The rule for the jersey default, applied to ``digits`` vs ``broadcast``."""
    if "digits" not in results or "broadcast" not in results:
        return "decision: needs both digits and broadcast"
    d, b = results["digits"], results["broadcast"]
    gain = b["degraded"][0] - d["degraded"][0]
    spread = max(b["degraded"][1], d["degraded"][1])
    clean_loss = d["clean"][0] - b["clean"][0]
    verdict = (
        "broadcast"
        if gain > spread and clean_loss <= MAX_CLEAN_LOSS_PT
        else "digits (keep)"
    )
    return (
        f"broadcast vs digits: degraded {gain:+.1f} pt (spread {spread:.1f} pt), "
        f"clean {-clean_loss:+.1f} pt (max loss {MAX_CLEAN_LOSS_PT} pt) "
        f"-> jersey default: {verdict}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(PRESETS))
    parser.add_argument(
        "--seeds", type=int, default=3, help="0: measure the loader cost only"
    )
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--classes", type=int, default=11)
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument(
        "--threads", type=int, default=2, help="torch threads (1: fastest when shared)"
    )
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=1, help="data.num_workers")
    parser.add_argument("--loader-images", type=int, default=600)
    parser.add_argument(
        "--root", type=Path, default=Path("/tmp/classifier-recipes-bench")
    )
    args = parser.parse_args(argv)
    silence_known_noise()
    register_configs()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    torch.set_num_threads(args.threads)
    root = make_dataset(
        args.root / f"c{args.classes}-n{args.per_class}-px{args.image_size}-e1",
        args.classes,
        args.per_class,
        args.image_size,
    )
    view = degraded_view(root)
    presets = [p for p in args.presets.split(",") if p]
    results: dict[str, dict[str, Any]] = {}
    for preset in presets:
        rate = loader_rate(root, preset, args)
        clean, degraded, seconds = [], [], []
        for seed in range(args.seeds):
            c, d, s = train_once(root, view, preset, seed, args)
            clean.append(c)
            degraded.append(d)
            seconds.append(s)
            print(
                f"{preset} seed {seed}: clean {c:.1f}%  degraded {d:.1f}%  ({s:.0f} s)",
                flush=True,
            )
        results[preset] = {
            "clean": mean_std(clean),
            "degraded": mean_std(degraded),
            "rate": rate,
            "seconds": statistics.fmean(seconds) if seconds else math.nan,
        }
    print(
        f"\n{args.classes} classes (0-{args.classes - 2} and empty), "
        f"{args.per_class} train images/class, {args.image_size} px, "
        f"{args.epochs} epochs, {args.seeds} seeds\n"
    )
    print(
        "| preset | clean test top-1 % | degraded test top-1 % "
        "| loader img/s per core | s/run |"
    )
    print("| --- | ---: | ---: | ---: | ---: |")
    for preset, r in results.items():
        print(
            f"| `{preset}` | {r['clean'][0]:.1f} ± {r['clean'][1]:.1f} "
            f"| {r['degraded'][0]:.1f} ± {r['degraded'][1]:.1f} "
            f"| {r['rate']:.0f} | {r['seconds']:.0f} |"
        )
    print("\n" + decide(results))


if __name__ == "__main__":
    main()
