"""Long-tail methods compared on a long-tailed synthetic jersey set (issue 25).

Generates the synthetic jersey set with a Zipf-like train split
(``classifier-synth --long-tail IF``; valid and test balanced), then trains the
demo recipe (``train_demo``: ResNet18 from scratch, CPU) once per method, seed
and imbalance factor with the same budget, and prints per method and factor:

- overall test top-1 of the final weights;
- test top-1 on the rarest third of the classes by train count (``top1_rare``);
- test ECE after temperature calibration (the temperature fitted on valid,
  after the method's post-hoc adjustment where it has one).

Methods: plain cross-entropy, the balanced sampler (today's default),
class-weighted cross-entropy, the logit-adjusted loss, balanced softmax, LDAM
with deferred re-weighting, deferred re-sampling, and post-hoc logit adjustment
(the plain cross-entropy models, adjusted at inference: no training of its own).

Then it applies the rule for the jersey recipes' default: the best method
replaces the sampler only if it beats it by more than the seed spread (the
larger standard deviation) on every imbalance factor and its top-1 on the
balanced (clean) train split stays within 0.3 point of the sampler's
(``--clean``: both trained on the balanced set too).

Usage::

    python benchmarks/long_tail.py [--factors 10,50] [--seeds 3] [--epochs 8]
    python benchmarks/long_tail.py --classes 10 --per-class 120 --image-size 24
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
import numpy.typing as npt
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import DictConfig

from classifier_training.core.calibration import (
    expected_calibration_error,
    fit_temperature,
    softmax,
)
from classifier_training.core.long_tail import adjust_logits, top1_rare
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.models.base import BaseClassificationModel
from classifier_training.synthetic import SynthConfig, generate_dataset
from classifier_training.train import (
    build_datamodule,
    build_model,
    register_configs,
    silence_known_noise,
)

#: Method -> overrides of the demo recipe. ``posthoc`` reuses ``plain_ce``.
METHODS: dict[str, list[str]] = {
    "plain_ce": ["data.sampler.mode=disabled"],
    "sampler": ["data.sampler.mode=auto"],
    "class_weighted": ["data.sampler.mode=disabled", "model.class_weighted_loss=true"],
    "logit_adjusted": ["data.sampler.mode=disabled", "model.loss=logit_adjusted"],
    "balanced_softmax": ["data.sampler.mode=disabled", "model.loss=balanced_softmax"],
    "ldam_drw": [
        "data.sampler.mode=disabled",
        "model.loss=ldam",
        "model.class_weighted_loss=true",
        "model.class_weighted_last_epochs={defer}",
    ],
    "deferred_sampler": ["data.sampler.mode=auto", "data.sampler.defer_epochs={defer}"],
}
#: ``--easy``: crops a small network learns in a few CPU epochs (one font, no
#: rotation, perspective, logos, stripes, mesh or blur).
EASY: dict[str, Any] = {
    "fonts": ("DejaVuSans-Bold",),
    "max_rotation_deg": 0.0,
    "perspective": 0.0,
    "logo_prob": 0.0,
    "stripe_prob": 0.0,
    "mesh_prob": 0.0,
    "edge_prob": 0.0,
    "blur_radius_range": (0.0, 0.0),
    "noise_std_range": (0.0, 2.0),
}
POSTHOC = "posthoc"
BASELINE = "sampler"
MAX_CLEAN_LOSS_PT = 0.3


def make_dataset(root: Path, args: argparse.Namespace, factor: float | None) -> Path:
    """The synthetic set (``factor``: its train imbalance; ``None``: balanced)."""
    config = SynthConfig(
        out_dir=root,
        per_class=args.per_class,
        image_size=args.image_size,
        classes=tuple(str(n) for n in range(args.classes)),
        long_tail=factor,
        eval_fraction=args.eval_fraction,
        **(EASY if args.easy else {}),
    )
    generate_dataset(config, log=None)
    return root


def compose_config(
    root: Path, method: str, seed: int, args: argparse.Namespace
) -> DictConfig:
    """The demo recipe with this benchmark's budget and the method's overrides."""
    overrides = [
        f"data.data_root={root}",
        *(o.format(defer=args.defer_epochs) for o in METHODS[method]),
        f"seed={seed}",
        f"model.arch={args.arch}",
        f"data.image_size={args.image_size}",
        f"data.batch_size={args.batch_size}",
        f"data.num_workers={args.workers}",
        # Per image, in the loader: the device path compiles its jitter first,
        # which costs more than these small runs.
        "data.augment_on=workers",
        f"trainer.max_epochs={args.epochs}",
        "logging=none",
        f"paths.output_dir={root.parent / 'runs'}",
        "trainer.num_sanity_val_steps=0",
        "+trainer.limit_val_batches=0",
    ]
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        return compose(config_name="train_demo", overrides=overrides)


def split_logits(
    model: BaseClassificationModel, datamodule: ImageFolderDataModule, split: str
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """Raw logits and labels of ``split`` (eval mode, no gradients)."""
    model.eval()
    loader = (
        datamodule.val_dataloader() if split == "val" else datamodule.test_dataloader()
    )
    logits, labels = [], []
    with torch.no_grad():
        for batch in loader:
            logits.append(model(batch["images"]).float())
            labels.append(batch["labels"])
    return torch.cat(logits).numpy(), torch.cat(labels).numpy()


def score(
    val: tuple[npt.NDArray[Any], npt.NDArray[Any]],
    test: tuple[npt.NDArray[Any], npt.NDArray[Any]],
    counts: Sequence[int],
    tau: float = 0.0,
) -> dict[str, float]:
    """Top-1, rare top-1 and calibrated ECE (%), after an optional adjustment."""
    val_logits = adjust_logits(val[0], counts, tau)
    test_logits = adjust_logits(test[0], counts, tau)
    temperature = fit_temperature(val_logits, val[1])
    predicted = test_logits.argmax(axis=1)
    rare = top1_rare(predicted, test[1], counts)
    return {
        "top1": 100 * float((predicted == test[1]).mean()),
        "rare": 100 * (rare if rare is not None else math.nan),
        "ece": 100
        * expected_calibration_error(softmax(test_logits, temperature), test[1]),
    }


def train_once(
    root: Path, method: str, seed: int, args: argparse.Namespace
) -> dict[str, dict[str, float]]:
    """Train one method/seed; its scores (and post-hoc's, for ``plain_ce``)."""
    cfg = compose_config(root, method, seed, args)
    L.seed_everything(seed, workers=True)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    trainer: L.Trainer = instantiate(
        cfg.trainer,
        callbacks=[],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    counts = datamodule.train_class_counts.tolist()
    val = split_logits(model, datamodule, "val")
    test = split_logits(model, datamodule, "test")
    scores = {method: score(val, test, counts)}
    if method == "plain_ce":
        scores[POSTHOC] = score(val, test, counts, tau=args.tau)
    return scores


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value; NaN for none)."""
    if not values:
        return math.nan, math.nan
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def decide(
    table: dict[str, dict[str, dict[str, list[float]]]],
    clean: dict[str, list[float]],
) -> str:
    """The rule for the jersey default: the best method against the sampler."""
    factors = list(table)
    methods = [m for m in table[factors[0]] if m != BASELINE]
    if BASELINE not in table[factors[0]] or not methods:
        return f"decision: needs {BASELINE} and another method"

    def mean_top1(method: str) -> float:
        return statistics.fmean(mean_std(table[f][method]["top1"])[0] for f in factors)

    best = max(methods, key=mean_top1)
    lines = []
    beats_everywhere = True
    for factor in factors:
        gain = (
            mean_std(table[factor][best]["top1"])[0]
            - (mean_std(table[factor][BASELINE]["top1"])[0])
        )
        spread = max(
            mean_std(table[factor][best]["top1"])[1],
            mean_std(table[factor][BASELINE]["top1"])[1],
        )
        beats_everywhere &= gain > spread
        lines.append(f"IF {factor}: {gain:+.1f} pt (spread {spread:.1f} pt)")
    clean_loss = math.nan
    if clean.get(best) and clean.get(BASELINE):
        clean_loss = mean_std(clean[BASELINE])[0] - mean_std(clean[best])[0]
    clean_ok = not math.isnan(clean_loss) and clean_loss <= MAX_CLEAN_LOSS_PT
    verdict = best if beats_everywhere and clean_ok else f"{BASELINE} (keep)"
    return (
        f"best {best} vs {BASELINE}: " + ", ".join(lines) + f"; clean "
        f"{-clean_loss:+.1f} pt (max loss {MAX_CLEAN_LOSS_PT} pt) -> jersey "
        f"default: {verdict}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--factors", default="10,50", help="imbalance factors")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--defer-epochs", type=int, default=2)
    parser.add_argument("--tau", type=float, default=1.0, help="post-hoc tau")
    parser.add_argument("--classes", type=int, default=10, help="numbers 0..N-1")
    parser.add_argument(
        "--per-class", type=int, default=120, help="train rows of the most frequent"
    )
    parser.add_argument("--eval-fraction", type=float, default=0.25)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument(
        "--arch", default="shufflenet_v2_x0_5", help="model.arch (small: CPU)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0, help="data.num_workers")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--easy", action="store_true", help="easier crops (see EASY)")
    parser.add_argument(
        "--clean",
        action="store_true",
        help="also train the best and the sampler on the balanced set",
    )
    parser.add_argument(
        "--root", type=Path, default=Path("/tmp/classifier-long-tail-bench")
    )
    args = parser.parse_args(argv)
    silence_known_noise()
    register_configs()
    os.environ.setdefault("PYTHONHASHSEED", "0")
    torch.set_num_threads(args.threads)
    methods = [m for m in args.methods.split(",") if m]
    factors = [float(f) for f in args.factors.split(",") if f]
    started = time.perf_counter()
    table: dict[str, dict[str, dict[str, list[float]]]] = {}
    for factor in factors:
        easy = "-easy" if args.easy else ""
        name = (
            f"c{args.classes}-n{args.per_class}-px{args.image_size}{easy}-if{factor:g}"
        )
        root = make_dataset(args.root / name, args, factor)
        rows: dict[str, dict[str, list[float]]] = {}
        for method in methods:
            for seed in range(args.seeds):
                for key, result in train_once(root, method, seed, args).items():
                    row = rows.setdefault(key, {"top1": [], "rare": [], "ece": []})
                    for metric, value in result.items():
                        row[metric].append(value)
                    print(
                        f"IF {factor:g} {key} seed {seed}: top-1 {result['top1']:.1f}"
                        f"  rare {result['rare']:.1f}  ECE {result['ece']:.1f}"
                        f"  ({time.perf_counter() - started:.0f} s)",
                        flush=True,
                    )
        table[f"{factor:g}"] = rows
    clean: dict[str, list[float]] = {}
    if args.clean:
        balanced = make_dataset(
            args.root / f"c{args.classes}-n{args.per_class}-px{args.image_size}-bal"
            + ("-easy" if args.easy else ""),
            args,
            None,
        )
        first = table[next(iter(table))]
        best = max(
            (m for m in first if m != BASELINE),
            key=lambda m: statistics.fmean(
                mean_std(table[f][m]["top1"])[0] for f in table
            ),
        )
        for method in dict.fromkeys([BASELINE, best]):
            trained = "plain_ce" if method == POSTHOC else method
            for seed in range(args.seeds):
                result = train_once(balanced, trained, seed, args)[method]
                clean.setdefault(method, []).append(result["top1"])
                print(f"clean {method} seed {seed}: top-1 {result['top1']:.1f}")
    print(
        f"\n{args.classes} classes, train {args.per_class} rows for the most frequent "
        f"(Zipf-like), valid/test balanced ({args.eval_fraction} x {args.per_class} "
        f"per class), {args.image_size} px, {args.epochs} epochs (deferral "
        f"{args.defer_epochs}), {args.seeds} seeds, "
        f"{time.perf_counter() - started:.0f} s in all\n"
    )
    print("| method | " + " | ".join(
        f"IF {f} top-1 % | IF {f} rare top-1 % | IF {f} ECE %" for f in table
    ) + " |")  # fmt: skip
    print("| --- |" + " ---: | ---: | ---: |" * len(table))
    for method in table[next(iter(table))]:
        cells = []
        for name in table:
            row = table[name][method]
            for metric in ("top1", "rare", "ece"):
                mean, std = mean_std(row[metric])
                cells.append(f"{mean:.1f} ± {std:.1f}")
        print(f"| `{method}` | " + " | ".join(cells) + " |")
    if clean:
        print(
            "\nclean (balanced) top-1 %: "
            + ", ".join(
                f"{m} {mean_std(v)[0]:.1f} ± {mean_std(v)[1]:.1f}"
                for m, v in clean.items()
            )
        )
    print("\n" + decide(table, clean))


if __name__ == "__main__":
    main()
