"""Training throughput: the framework end to end against a plain PyTorch loop.

Side by side in one process, for each image size:

- ``plain loop``: the same network (``train_demo``'s ResNet18 from scratch), batch,
  optimizer (AdamW), precision and memory format, trained on one batch of random
  tensors that already sits on the device: no data loading at all, the ceiling.
- ``framework``: ``classifier-train``'s own pieces (``train_demo`` composed by
  Hydra, its data module, model and Lightning Trainer) reading a generated image
  folder with ``data.cache=ram``, the demo's sampler and ``digits`` augmentation,
  once per ``--modes`` entry (``workers``: ``data.augment_on=workers``, per-image
  PIL in the DataLoader workers; ``device``: batched on the training device, its
  colour jitter compiled as training does by default; ``device-eager``: the same
  with ``data.compile_augmentation=false``). No validation, no callbacks, no
  logger: the training loop alone.
- ``augmentation only``: the ``digits`` preset on a batch of cached ``uint8``
  images, one thread: per-image PIL (the ``workers`` path), per-image torchvision
  v2 on tensors (v2 draws one parameter set per call, so per-sample parameters
  need a loop), and the batched ``kornia`` path (``device``, compiled and not).

Images/s are measured after warm-up steps (so without the compilation on the
first batch), from a training batch's start to the last one's end. Each repeat
runs the plain loop and the framework modes in a rotated order: a fixed order
favoured whichever ran last by 5-10 %. The first size's framework run with the
``augment_on`` that ``auto`` picks there (the demo's setting) is checked against
the target: framework >= 0.9x plain loop.

Usage::

    python benchmarks/train_throughput.py                  # CPU, 40 and 96 px
    python benchmarks/train_throughput.py --accelerator gpu --precision bf16-mixed \\
        --sizes 224 --batch-size 128 --workers 8 --compile both
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_module
from lightning.pytorch.callbacks import Callback
from PIL import Image
from rich.console import Console
from rich.table import Table
from torchvision.transforms import v2

import classifier_training.models  # noqa: F401  (registers model configs)
from classifier_training.config import load_data_config
from classifier_training.data.device_transforms import (
    DeviceAugmentation,
    resolve_augment_on,
)
from classifier_training.data.transforms import (
    build_augmentation,
    build_train_transform,
)
from classifier_training.models.factory import build_network
from classifier_training.synthetic import SynthConfig, generate_dataset
from classifier_training.train import (
    build_datamodule,
    build_model,
    register_configs,
    resolve_data_values,
    silence_known_noise,
)
from classifier_training.training.builders import build_trainer

TARGET = 0.9
#: ``--modes``: the framework's data-path settings for each.
MODES = {
    "workers": ["data.augment_on=workers"],
    "device": ["data.augment_on=device"],
    "device-eager": ["data.augment_on=device", "data.compile_augmentation=false"],
}


class StepTimer(Callback):
    """Wall time from the start of batch ``warmup`` to the end of the last batch."""

    def __init__(self, warmup: int) -> None:
        self.warmup = warmup
        self.start = self.end = 0.0
        self.images = 0

    def _sync(self, pl_module: L.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int
    ) -> None:
        if idx == self.warmup:
            self._sync(pl_module)
            self.start = time.perf_counter()

    def on_train_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        idx: int,
    ) -> None:
        if idx >= self.warmup:
            self.images += len(batch["labels"])
            self._sync(pl_module)
            self.end = time.perf_counter()

    @property
    def rate(self) -> float:
        return self.images / max(self.end - self.start, 1e-9)


def compose_demo(data_root: Path, size: int, overrides: list[str]) -> Any:
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        return compose(
            config_name="train_demo",
            overrides=[
                f"data.data_root={data_root}",
                f"data.image_size={size}",
                "data.cache=ram",
                "logging=none",
                "callbacks=none",
                *overrides,
            ],
        )


def common_overrides(args: argparse.Namespace, compiled: bool) -> list[str]:
    steps = args.warmup + args.steps
    return [
        f"data.batch_size={args.batch_size}",
        f"data.num_workers={args.workers}",
        f"data.sampler.num_samples={steps * args.batch_size}",
        f"trainer.accelerator={args.accelerator}",
        f"trainer.precision={args.precision}",
        f"model.channels_last={args.channels_last}",
        f"model.compile={str(compiled).lower()}",
    ]


def run_framework(
    data_root: Path,
    size: int,
    mode: str,
    compiled: bool,
    args: argparse.Namespace,
    out_dir: Path,
) -> float:
    """Images/s of the framework's training loop."""
    overrides = [
        *common_overrides(args, compiled),
        *MODES[mode],
        f"paths.output_dir={out_dir}",
    ]
    cfg = compose_demo(data_root, size, overrides)
    L.seed_everything(cfg.seed, workers=True)
    datamodule = build_datamodule(cfg)
    model = build_model(cfg, datamodule)
    timer = StepTimer(args.warmup)
    trainer = build_trainer(
        cfg,
        [timer],
        [],
        max_epochs=1,
        limit_val_batches=0,
        num_sanity_val_steps=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(model, datamodule=datamodule)
    return timer.rate


def plain_loop(
    data_root: Path, size: int, compiled: bool, args: argparse.Namespace
) -> float:
    """Images/s of a bare PyTorch loop with the demo's network and optimizer."""
    cfg = compose_demo(data_root, size, common_overrides(args, compiled))
    accelerator = str(args.accelerator)
    cuda = torch.cuda.is_available() and accelerator != "cpu"
    device = torch.device("cuda" if cuda else "cpu")
    channels_last = (
        device.type == "cuda"
        if args.channels_last == "null"
        else args.channels_last == "true"
    )
    torch.manual_seed(0)
    net = build_network(str(cfg.model.arch), 101, pretrained=False).to(device)
    images = torch.randn(args.batch_size, 3, size, size, device=device)
    labels = torch.randint(0, 101, (args.batch_size,), device=device)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        images = images.contiguous(memory_format=torch.channels_last)
    if compiled:
        net.compile()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.05)
    bf16 = str(args.precision).startswith("bf16")
    autocast = (
        torch.autocast(device.type, dtype=torch.bfloat16)
        if bf16
        else contextlib.nullcontext()
    )
    net.train()

    def step() -> None:
        with autocast:
            loss = F.cross_entropy(net(images), labels, label_smoothing=0.1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(args.warmup):
        step()
    if cuda:
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(args.steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    return args.batch_size * args.steps / (time.perf_counter() - started)


def augmentation_only(data_root: Path, size: int, batch: int) -> dict[str, float]:
    """Images/s of the ``digits`` preset on one thread, three ways."""
    cfg = compose_demo(data_root, size, [])
    config = load_data_config(resolve_data_values(cfg))
    paths = sorted((data_root / "train").rglob("*.png"))[:batch]
    if len(paths) < batch:
        paths = sorted((data_root / "train").rglob("*.jpg"))[:batch]
    pil = [Image.open(p).convert("RGB").resize((size, size)) for p in paths]
    uint8 = torch.stack([v2.functional.pil_to_tensor(im) for im in pil])
    workers_tf = build_train_transform(config)
    fill = tuple(round(255 * m) for m in config.mean)
    tensor_tf = v2.Compose(
        [
            *build_augmentation(config.transforms, fill),  # type: ignore[arg-type]
            v2.ToDtype(torch.float32, scale=True),
            v2.Normalize(mean=list(config.mean), std=list(config.std)),
        ]
    )
    device_tf, eager_tf = (
        DeviceAugmentation(
            config.transforms,
            config.mean,
            config.std,
            config.image_size,
            compile=compiled,
        )
        for compiled in (True, False)
    )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rates: dict[str, float] = {}
    try:
        for name, fn in (
            ("PIL per image (workers)", lambda: [workers_tf(im) for im in pil]),
            ("torchvision v2 per image", lambda: [tensor_tf(t) for t in uint8]),
            ("kornia batched (device)", lambda: device_tf(uint8)),
            ("kornia batched, uncompiled (device-eager)", lambda: eager_tf(uint8)),
        ):
            fn()
            times = []
            for _ in range(3):
                started = time.perf_counter()
                fn()
                times.append(time.perf_counter() - started)
            rates[name] = len(uint8) / statistics.median(times)
    finally:
        torch.set_num_threads(threads)
    return rates


def make_dataset(root: Path, per_class: int) -> Path:
    """Synthetic jersey crops (101 classes, 96 px high, PNG), like the demo's."""
    config = SynthConfig(out_dir=root, per_class=per_class, image_size=96)
    generate_dataset(config, log=lambda _: None)
    return root


def main() -> None:
    silence_known_noise()
    register_configs()
    torch.set_float32_matmul_precision("high")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, 96])
    parser.add_argument(
        "--modes",
        nargs="+",
        choices=list(MODES),
        default=list(MODES),
        help="device-eager: the device path without compiling its colour jitter",
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=12)
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--channels-last", choices=["null", "true", "false"])
    parser.add_argument(
        "--compile", choices=["off", "on", "both"], default="off", dest="compile_mode"
    )
    parser.add_argument("--data-root", type=Path, help="use this dataset instead")
    args = parser.parse_args()
    args.channels_last = args.channels_last or "null"
    compile_modes = {"off": [False], "on": [True], "both": [False, True]}[
        args.compile_mode
    ]
    console = Console()
    with tempfile.TemporaryDirectory() as tmp:
        data_root = args.data_root or make_dataset(Path(tmp) / "data", args.per_class)
        table = Table(title="training images/s (median of repeats)")
        for column in ("size", "compile", "what", "images/s", "vs plain loop"):
            table.add_column(column, justify="right" if column != "what" else "left")
        demo_ratio: float | None = None
        for size in args.sizes:
            for compiled in compile_modes:
                rates: dict[str, list[float]] = {"plain loop": []}
                demo_mode = resolve_augment_on(
                    "auto",
                    args.accelerator,
                    size,
                    load_data_config(
                        resolve_data_values(compose_demo(data_root, size, []))
                    ).transforms,
                )
                for mode in args.modes:
                    rates[f"framework, augment_on={mode}"] = []
                runs = ["plain", *args.modes]
                for repeat in range(args.repeats):
                    shift = repeat % len(runs)
                    for mode in runs[shift:] + runs[:shift]:
                        if mode == "plain":
                            rates["plain loop"].append(
                                plain_loop(data_root, size, compiled, args)
                            )
                            continue
                        rate = run_framework(
                            data_root,
                            size,
                            mode,
                            compiled,
                            args,
                            Path(tmp) / f"run-{size}-{mode}-{repeat}",
                        )
                        rates[f"framework, augment_on={mode}"].append(rate)
                    console.print(
                        f"{size} px compile={compiled} repeat {repeat + 1}: "
                        + ", ".join(f"{k} {v[-1]:.0f}" for k, v in rates.items())
                    )
                plain = statistics.median(rates["plain loop"])
                for what, values in rates.items():
                    rate = statistics.median(values)
                    label = what
                    if what.endswith(f"={demo_mode}"):
                        label += " (auto's choice)"
                    table.add_row(
                        str(size),
                        "on" if compiled else "off",
                        label,
                        f"{rate:.0f}",
                        f"{rate / plain:.2f}x",
                    )
                    if what.endswith(f"={demo_mode}") and demo_ratio is None:
                        demo_ratio = rate / plain
            if args.accelerator == "cpu":
                for what, rate in augmentation_only(
                    data_root, size, args.batch_size
                ).items():
                    table.add_row(
                        str(size), "", f"augmentation only: {what}", f"{rate:.0f}", ""
                    )
        console.print(table)
    assert demo_ratio is not None
    verdict = "MET" if demo_ratio >= TARGET else "MISSED"
    console.print(
        f"target framework >= {TARGET}x plain loop (demo, {args.sizes[0]} px): "
        f"{demo_ratio:.2f} x ({verdict})"
    )


if __name__ == "__main__":
    main()
