"""Training throughput with 1 and 2 DDP processes (``trainer=ddp``), images/s.

Trains the demo recipe (ResNet18 from scratch) on a generated synthetic jersey
dataset twice, through the real ``classifier-train`` command: once in one
process, once as ``trainer=ddp trainer.devices=N`` (CPU, gloo) with the same
per-device batch. A small callback (this file, on ``PYTHONPATH``) times each
training epoch on rank 0; images/s = all ranks' draws of an epoch / its time,
median over the epochs after the first. Artifact callbacks are switched off, so
the number is the training loop's.

On a machine with 2 CPU cores, 2 processes share the cores one process already
uses (torch's threads): expect no speed-up. The point here is that the
accounting works (each rank trains on half the draws, the effective batch
doubles). On N GPUs, expect close to N x the 1-GPU rate once the loader keeps up
(see the README, "Several GPUs / machines").

Usage::

    PYTHONPATH=src python benchmarks/ddp.py [--devices 2] [--epochs 4] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


class EpochTimer(Callback):
    """Writes each training epoch's wall time (rank 0) to ``out`` as JSON."""

    def __init__(self, out: str) -> None:
        self.out = Path(out)
        self.times: list[float] = []
        self._start = 0.0

    def on_train_epoch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        self.times.append(time.perf_counter() - self._start)
        if trainer.is_global_zero:
            self.out.write_text(json.dumps({"epoch_s": self.times}))


def run(
    data: Path,
    work: Path,
    devices: int,
    epochs: int,
    batch: int,
    threads: int,
    accelerator: str = "cpu",
) -> dict[str, Any]:
    """Train once with ``devices`` processes of ``threads`` torch threads each (0:
    cores / processes, Lightning's choice under DDP); return epoch times and
    images/s."""
    out = work / f"run_{devices}"
    timing = work / f"timing_{devices}.json"
    ddp = ["trainer=ddp", f"trainer.devices={devices}"]
    command = [
        sys.executable,
        "-m",
        "classifier_training.train",
        "--config-name",
        "train_demo",
        f"data.data_root={data}",
        "data.image_size=40",
        f"data.batch_size={batch}",
        "data.num_workers=1",
        "data.sampler.mode=disabled",
        f"trainer.max_epochs={epochs}",
        f"trainer.accelerator={accelerator}",
        "trainer.precision=32-true",
        "trainer.num_sanity_val_steps=0",
        f"hydra.run.dir={out}",
        "callbacks=[model_checkpoint,last_checkpoint]",
        "+callbacks.timer._target_=ddp.EpochTimer",
        f"+callbacks.timer.out={timing}",
        *(ddp if devices > 1 else []),
    ]
    threads = threads or max(1, (os.cpu_count() or 1) // devices)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(HERE)]),
        "OMP_NUM_THREADS": str(threads),  # torch's intra-op threads per process
    }
    started = time.perf_counter()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{devices} process(es) failed:\n{result.stderr[-3000:]}")
    epoch_s = json.loads(timing.read_text())["epoch_s"]
    metrics = json.loads((out / "metrics.json").read_text())
    rows = metrics["data"]["splits"]["train"]["rows"]
    draws = -(-rows // devices) * devices  # the epoch, rounded up to the ranks
    steady = statistics.median(epoch_s[1:] if len(epoch_s) > 1 else epoch_s)
    return {
        "devices": devices,
        "threads": threads,
        "effective_batch": metrics["batch"]["effective"],
        "draws_per_epoch": draws,
        "epoch_s": [round(t, 2) for t in epoch_s],
        "images_per_s": draws / steady,
        "wall_s": time.perf_counter() - started,
    }


def main() -> None:
    """Generate the data, train with 1 and N processes, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--per-class", type=int, default=40)
    parser.add_argument("--batch", type=int, default=32, help="per device")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch threads per process (default: cores / processes)",
    )
    parser.add_argument("--accelerator", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument("--quick", action="store_true", help="tiny: 2 epochs")
    args = parser.parse_args()
    epochs, per_class = (2, 12) if args.quick else (args.epochs, args.per_class)

    from classifier_training.synthetic import SynthConfig, generate_dataset

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        classes = ("", "1", "7", "10", "23", "42", "77", "99")
        config = SynthConfig(
            out_dir=data, per_class=per_class, image_size=48, classes=classes
        )
        generate_dataset(config, log=lambda _: None)
        results = [
            run(data, work, d, epochs, args.batch, args.threads, args.accelerator)
            for d in (1, args.devices)
        ]
    base = results[0]["images_per_s"]
    print(f"CPU cores: {os.cpu_count()}")
    print(
        "| processes | threads each | effective batch | draws/epoch | epoch s "
        "| img/s | vs 1 |"
    )
    print("| ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for r in results:
        print(
            f"| {r['devices']} | {r['threads']} | {r['effective_batch']} | "
            f"{r['draws_per_epoch']} | "
            f"{', '.join(map(str, r['epoch_s']))} | {r['images_per_s']:.0f} | "
            f"{r['images_per_s'] / base:.2f}x |"
        )


if __name__ == "__main__":
    main()
