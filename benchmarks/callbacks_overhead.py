"""Cost of the artifact callbacks (and of EMA) on the demo's epoch time.

Trains the demo recipe (``train_demo``: ResNet18 from scratch at 40 px, CPU) on a
demo-like dataset (101 classes, 60 train images per class) three ways, side by
side in one process, and prints per-epoch times and their ratios:

- ``bare``: no EMA, no artifact callbacks;
- ``ema``: EMA only;
- ``all``: EMA plus every artifact callback (confusion matrix, training history,
  sample predictions, model info, dataset statistics, sampler distribution, ONNX
  export).

Per-epoch time is measured from one training epoch start to the next (it
includes validation and everything the callbacks do after it); the first epoch
is left out as warm-up. One-time costs (fit start, the ONNX export at fit end)
are printed separately. Runs are interleaved (``--repeats``) and the median
epoch time per variant is used. On a busy, shared machine the epoch times of
separate runs vary more than the overhead itself, so the time spent inside the
artifact callbacks' hooks is also measured directly and printed as a share of
the epoch time without them.

Usage::

    python benchmarks/callbacks_overhead.py [--epochs 3] [--repeats 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra import compose, initialize_config_module
from lightning.pytorch.callbacks import Callback

import classifier_training.models  # noqa: F401  (registers model configs)
from classifier_training.synthetic import SynthConfig, generate_dataset
from classifier_training.train import (
    build_callbacks,
    build_datamodule,
    build_model,
    register_configs,
    silence_known_noise,
)
from classifier_training.training.builders import build_trainer


def artifact_callbacks() -> tuple[str, ...]:
    """The project's own callbacks in the demo config, EMA aside (from the config,
    so a new artifact callback is measured without editing this file)."""
    register_configs()
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        cfg = compose(config_name="train_demo")
    return tuple(
        name
        for name, node in cfg.callbacks.items()
        if node is not None
        and str(node["_target_"]).startswith("classifier_training.callbacks.")
        and name != "ema"
    )


ARTIFACT_CALLBACKS = artifact_callbacks()
VARIANTS: dict[str, tuple[str, ...]] = {
    "bare": ("ema", *ARTIFACT_CALLBACKS),
    "ema": ARTIFACT_CALLBACKS,
    "all": (),
}


def make_dataset(root: Path, per_class: int, image_size: int) -> Path:
    """The demo's dataset: the built-in synthetic jersey numbers (101 classes)."""
    config = SynthConfig(out_dir=root, per_class=per_class, image_size=image_size)
    generate_dataset(config, log=print)
    return root


class EpochTimer(Callback):
    """Wall time between training epoch starts, and one-time fit start/end costs."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.fit_start = self.train_start = self.train_end = self.fit_end = 0.0

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.fit_start = time.perf_counter()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_start = time.perf_counter()

    def on_train_epoch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        self.starts.append(time.perf_counter())

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.train_end = time.perf_counter()
        self.starts.append(self.train_end)


# Hooks the artifact callbacks use during an epoch; fit start/end are one-time.
EPOCH_HOOKS = (
    "on_train_batch_end",
    "on_train_epoch_end",
    "on_validation_epoch_start",
    "on_validation_batch_end",
    "on_validation_end",
    "on_save_checkpoint",
)
ONCE_HOOKS = ("on_fit_start", "on_fit_end")


class HookClock:
    """Time spent inside the artifact callbacks' hooks (wraps the bound methods)."""

    def __init__(self) -> None:
        self.per_epoch: dict[str, float] = {}
        self.once = 0.0

    def wrap(self, callback: Callback, name: str) -> None:
        self.per_epoch.setdefault(name, 0.0)
        for hook in (*EPOCH_HOOKS, *ONCE_HOOKS):
            method = getattr(callback, hook)
            setattr(callback, hook, self._timed(method, name, hook in ONCE_HOOKS))

    def _timed(self, method: Any, name: str, once: bool) -> Any:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                spent = time.perf_counter() - started
                if once:
                    self.once += spent
                else:
                    self.per_epoch[name] += spent

        return timed


def run(
    data_root: Path, out_dir: Path, disabled: tuple[str, ...], args: argparse.Namespace
) -> dict[str, Any]:
    overrides = [
        f"data.data_root={data_root}",
        f"data.num_workers={args.workers}",
        f"trainer.max_epochs={args.epochs}",
        f"paths.output_dir={out_dir}",
        "callbacks.rich_progress_bar=null",
        "callbacks.early_stopping=null",
        "callbacks.lr_monitor=null",  # needs a logger
        "logging=none",
        *(f"callbacks.{name}=null" for name in disabled),
    ]
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        cfg = compose(config_name="train_demo", overrides=overrides)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    timer = EpochTimer()
    clock = HookClock()
    callbacks = build_callbacks(cfg)
    for name, callback in zip(
        [n for n, node in cfg.callbacks.items() if node is not None],
        callbacks,
        strict=True,
    ):
        if name in ARTIFACT_CALLBACKS:
            clock.wrap(callback, name)
    trainer = build_trainer(
        cfg,
        [*callbacks, timer],
        [],
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    started = time.perf_counter()
    trainer.fit(model, datamodule=datamodule)
    finished = time.perf_counter()
    epochs = [b - a for a, b in zip(timer.starts, timer.starts[1:], strict=False)]
    return {
        "epochs": epochs,
        "fit_start": timer.train_start - timer.fit_start,
        "fit_end": finished - timer.train_end,
        "total": finished - started,
        "hooks_per_epoch": {
            name: spent / max(len(epochs), 1) for name, spent in clock.per_epoch.items()
        },
        "hooks_once": clock.once,
    }


def main() -> None:
    silence_known_noise()
    register_configs()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--image-size", type=int, default=48)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=None, help="reuse a dataset")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = args.data or make_dataset(root / "data", args.per_class, args.image_size)
        results: dict[str, list[dict[str, Any]]] = {name: [] for name in VARIANTS}
        for repeat in range(args.repeats):
            for name, disabled in VARIANTS.items():
                out = root / f"{name}_{repeat}"
                results[name].append(run(data, out, disabled, args))
                times = results[name][-1]["epochs"]
                print(f"{name} #{repeat}: epochs {[round(t, 2) for t in times]} s")
    print()
    print(
        f"per-epoch time (median of epochs 2..{args.epochs}, "
        f"{args.repeats} run(s) each)"
    )
    medians: dict[str, float] = {}
    for name, runs in results.items():
        steady = [t for r in runs for t in r["epochs"][1:]] or [
            t for r in runs for t in r["epochs"]
        ]
        medians[name] = statistics.median(steady)
        fit_start = statistics.median(r["fit_start"] for r in runs)
        fit_end = statistics.median(r["fit_end"] for r in runs)
        print(
            f"  {name:5s} {medians[name]:7.2f} s/epoch   fit start {fit_start:5.2f} s"
            f"   fit end {fit_end:5.2f} s"
        )
    per_callback = {
        name: statistics.median(r["hooks_per_epoch"][name] for r in results["all"])
        for name in results["all"][0]["hooks_per_epoch"]
    }
    hooks = sum(per_callback.values())
    once = statistics.median(r["hooks_once"] for r in results["all"])
    print()
    print(f"EMA:                 ema / bare = {medians['ema'] / medians['bare']:.3f}")
    print(f"artifact callbacks:  all / ema  = {medians['all'] / medians['ema']:.3f}")
    print(
        f"time inside the artifact callbacks: {hooks:.2f} s/epoch = "
        f"{hooks / medians['ema']:.1%} of an epoch without them "
        f"(+ {once:.1f} s once: model info, dataset statistics, ONNX export)"
    )
    for name, spent in sorted(per_callback.items(), key=lambda item: -item[1]):
        print(f"  {name:22s} {spent:5.2f} s/epoch")


if __name__ == "__main__":
    main()
