"""onnxruntime vs PyTorch eager (fp32, CPU) for ResNet18 inference, side by side.

For each input size (default 64 and 224 px) the same randomly initialised ResNet18
is exported (and verified against PyTorch) by the project's own
:func:`classifier_training.export.export_onnx` (input ``input``, output
``logits``, dynamic batch) and run by:

* ``torch eager``: ``model.eval()`` under ``torch.inference_mode()``, fp32;
* ``onnxruntime``: CPU provider, graph optimisation ORT_ENABLE_ALL (the settings of
  :class:`classifier_training.inference.ONNXClassifier`).

Batch 1 is reported as median latency (ms), batch 64 as throughput (images/s,
from the median batch time). Both engines use the same number of threads
(``--threads``, default: all CPUs torch sees). ``--variants`` adds the tuning
options tried while investigating the target (channels-last, BN folded into
conv for eager; onnxruntime with its default thread spinning, which
steals CPU from the engine timed after it).

Target: onnxruntime at batch 64 >= 2.5x PyTorch eager fp32 at 224 px.

Run: ``python benchmarks/inference.py [--sizes 64 224] [--repeats 20]``.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch
from rich.console import Console
from rich.table import Table
from torch import nn
from torchvision import models as tv_models

from classifier_training.core.contract import (
    INPUT_NAME,
    OUTPUT_NAME,
    DeploymentContract,
)
from classifier_training.core.preprocessing import IMAGENET_MEAN, IMAGENET_STD
from classifier_training.export import export_onnx
from classifier_training.inference.onnx_classifier import session_options

TARGET_RATIO = 2.5
Runner = Callable[[npt.NDArray[np.float32]], Callable[[], object]]


def ort_session(path: Path, threads: int, spin: bool = False) -> ort.InferenceSession:
    """A CPU session with :class:`ONNXClassifier`'s options (full graph optimisation).

    Thread spinning is off by default here: with round-robin timing, threads that
    keep spinning after a run steal the CPU from the engine timed next (on a
    2-core machine this made eager PyTorch look 5-30x slower than it is).
    """
    options = session_options(threads)
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def fold_batchnorm(network: nn.Module) -> nn.Module:
    """Eager ResNet with every BatchNorm folded into the conv before it."""
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    def fold(module: nn.Module) -> None:
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv, bn = module._modules[first], module._modules[second]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
        for child in module.children():
            fold(child)

    fold(network)
    return network


def interleaved_medians(
    steps: dict[str, Callable[[], object]], repeats: int, warmup: int
) -> dict[str, float]:
    """Median wall time of each step, timed round-robin.

    Engines take turns within every round, so a busy machine slows them alike
    instead of favouring whichever ran in a quiet moment.

    Args:
        steps: Engine name to one timed call.
        repeats: Timed rounds.
        warmup: Untimed rounds first.

    Returns:
        Engine name to median seconds.
    """
    for _ in range(warmup):
        for step in steps.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def torch_runner(
    network: nn.Module, batch: npt.NDArray[np.float32], channels_last: bool = False
) -> Callable[[], object]:
    """One eager forward pass on ``batch``."""
    x = torch.from_numpy(batch)
    if channels_last:
        network = network.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)

    def step() -> object:
        with torch.inference_mode():
            return network(x)

    return step


def ort_runner(
    session: ort.InferenceSession, batch: npt.NDArray[np.float32]
) -> Callable[[], object]:
    """One onnxruntime run on ``batch``."""
    return lambda: session.run([OUTPUT_NAME], {INPUT_NAME: batch})


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; returns 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 224])
    parser.add_argument("--batch", type=int, default=64, help="throughput batch")
    parser.add_argument("--repeats", type=int, default=20, help="batch-1 repeats")
    parser.add_argument("--batch-repeats", type=int, default=5)
    parser.add_argument("--num-classes", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--variants", action="store_true", help="tuning variants")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    console = Console()
    console.print(
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, "
        f"{args.threads} thread(s) each, ResNet18 fp32, {args.num_classes} classes"
    )
    table = Table(title="ResNet18 inference on the CPU")
    for column in ("engine", "size", "batch 1 (ms)", f"batch {args.batch} (img/s)"):
        table.add_column(column, justify="left" if column == "engine" else "right")
    ratios = Table(title="onnxruntime / torch eager")
    for column in ("size", "batch 1 speed-up", f"batch {args.batch} speed-up"):
        ratios.add_column(column, justify="right")

    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            network = tv_models.resnet18(weights=None, num_classes=args.num_classes)
            network.eval()
            onnx_path = Path(tmp) / f"resnet18_{size}.onnx"
            contract = DeploymentContract(
                arch="resnet18",
                class_names=tuple(str(i) for i in range(args.num_classes)),
                image_size=size,
                resize_mode="squash",
                mean=IMAGENET_MEAN,
                std=IMAGENET_STD,
            )
            export_onnx(network, contract, onnx_path)  # the project's export, verified
            one = rng.standard_normal((1, 3, size, size), dtype=np.float32)
            many = rng.standard_normal((args.batch, 3, size, size), dtype=np.float32)
            session = ort_session(onnx_path, args.threads)
            engines: dict[str, Runner] = {
                "torch eager": partial(torch_runner, network),
                "onnxruntime": partial(ort_runner, session),
            }
            if args.variants:
                folded = fold_batchnorm(copy.deepcopy(network))
                engines["torch eager channels-last"] = partial(
                    torch_runner, copy.deepcopy(network), channels_last=True
                )
                engines["torch eager BN folded"] = partial(torch_runner, folded)
                engines["onnxruntime spinning"] = partial(
                    ort_runner, ort_session(onnx_path, args.threads, spin=True)
                )
            latency = interleaved_medians(
                {name: make(one) for name, make in engines.items()},
                args.repeats,
                warmup=3,
            )
            batch_time = interleaved_medians(
                {name: make(many) for name, make in engines.items()},
                args.batch_repeats,
                warmup=1,
            )
            results: dict[str, tuple[float, float]] = {}
            for name in engines:
                results[name] = (1000 * latency[name], args.batch / batch_time[name])
                ms, ips = results[name]
                table.add_row(name, str(size), f"{ms:.2f}", f"{ips:.0f}")
            torch_ms, torch_ips = results["torch eager"]
            ort_ms, ort_ips = results["onnxruntime"]
            ratios.add_row(
                str(size), f"{torch_ms / ort_ms:.2f}x", f"{ort_ips / torch_ips:.2f}x"
            )
            if size == 224:
                verdict = "met" if ort_ips / torch_ips >= TARGET_RATIO else "MISSED"
                target_line = (
                    f"target onnxruntime >= {TARGET_RATIO}x torch eager at batch "
                    f"{args.batch}, 224 px: {ort_ips / torch_ips:.3f}x ({verdict})"
                )
    console.print(table)
    console.print(ratios)
    if 224 in args.sizes:
        console.print(target_line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
