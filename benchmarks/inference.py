"""Inference side by side: eager PyTorch, fp32 and int8 (or fp16) onnxruntime.

The demo's model (``classifier-synth`` data, the ``train_demo`` recipe; a finished
run with ``--run DIR``, else a short one is trained first) is exported at each
input size (default 40 px, the demo's, and 224 px: the same weights, input
resized) by the project's own code: ``model.onnx`` by
:func:`classifier_training.export.write_deployment` (verified against PyTorch)
and ``model.int8.onnx`` by :func:`classifier_training.quantization.export_precision`
(static QDQ, per-channel, the int8 scheme this CPU gets, calibrated on train
images; its accuracy guard runs on the test split, which gives both ONNX
top-1 figures). Then, in one process and taking turns:

* ``torch eager``: ``model.eval()`` under ``torch.inference_mode()``, fp32;
* ``onnxruntime fp32`` and ``onnxruntime int8``: CPU provider, sessions opened
  by :func:`classifier_training.inference.runtime.open_session` with one
  :class:`~classifier_training.inference.runtime.RuntimeSettings` (stated
  above the table).

``--device cuda --precisions fp16`` (``benchmarks/gpu_check.sh``) runs eager
PyTorch on the GPU and onnxruntime with its CUDA provider, fp32 against fp16
(``model.fp16.onnx``, exported and guarded the same way); onnxruntime's times
include copying the batch to the GPU and the logits back.

Batch 1: median latency (ms); batch 64: images/s from the median batch time; on
real test images. Top-1: the test split, through the code of
``classifier-evaluate``. ``--schemes`` adds the int8 schemes of the other CPU
targets (on x86, ``arm`` = signed activations, S8S8), calibrated alike.

Target: int8 >= 1.7x fp32 onnxruntime at 224 px, batch 64 (the last line).

Run: ``python benchmarks/inference.py [--run outputs/DATE/TIME] [--sizes 40 224]``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from classifier_training.checkpoints import load_checkpoint
from classifier_training.core.contract import DeploymentContract
from classifier_training.core.cpu_features import cpu_features
from classifier_training.core.readers import find_splits, read_split
from classifier_training.core.run_files import (
    BEST_CHECKPOINT,
    MODEL_ONNX,
    checkpoint_file,
)
from classifier_training.export import load_images, write_deployment
from classifier_training.inference.base import Classifier
from classifier_training.inference.evaluate import evaluate_samples
from classifier_training.inference.onnx_classifier import ONNXClassifier
from classifier_training.inference.runtime import RuntimeSettings, open_session
from classifier_training.quantization import (
    PrecisionOptions,
    export_precision,
    gather_inputs,
    int8_scheme,
)
from classifier_training.quantization.calibration_set import load_calibration_set
from classifier_training.quantization.convert import write_int8
from classifier_training.quantization.guard import run_guard
from classifier_training.quantization.pipeline import PrecisionInputs

REPO = Path(__file__).resolve().parents[1]
#: The Makefile's demo dataset (SYNTH_DIR, SYNTH_ARGS).
SYNTH_DIR = REPO / "data" / "synthetic-jersey"
SYNTH_ARGS = ("--per-class", "60", "--seed", "0", "--image-size", "48")
TARGET_RATIO = 1.7
TARGET_SIZE = 224
Engine = Callable[[npt.NDArray[np.float32]], Callable[[], object]]


class EagerClassifier(Classifier):
    """A PyTorch network behind the classifiers' interface (for top-1)."""

    def __init__(
        self, network: nn.Module, contract: DeploymentContract, device: str
    ) -> None:
        super().__init__(contract, Path("eager"))
        self.network = network
        self.device = device

    @torch.inference_mode()
    def predict_logits(self, batch: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Run the network on a preprocessed batch."""
        logits = self.network(torch.from_numpy(batch).to(self.device))
        return np.asarray(logits.cpu().numpy())


def ensure_demo_data(data_root: Path) -> Path:
    """The demo dataset, generated as ``make data`` does when missing."""
    if not (data_root / ".complete").is_file():
        subprocess.run(
            [sys.executable, "-m", "classifier_training.synthetic",
             "--out", str(data_root), *SYNTH_ARGS, "-q"],
            check=True,
        )  # fmt: skip
    return data_root


def train_demo(data_root: Path, run_dir: Path, epochs: int) -> Path:
    """A short ``train_demo`` run; returns its folder."""
    if not (run_dir / checkpoint_file(BEST_CHECKPOINT)).is_file():
        subprocess.run(
            [sys.executable, "-m", "classifier_training.train",
             "--config-name", "train_demo", f"data.data_root={data_root}",
             f"hydra.run.dir={run_dir}", f"trainer.max_epochs={epochs}",
             "~callbacks.rich_progress_bar"],
            check=True,
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
    return run_dir


def interleaved_medians(
    steps: dict[str, Callable[[], object]], repeats: int, warmup: int
) -> dict[str, float]:
    """Median wall time of each step, timed round-robin.

    Engines take turns within every round, so a busy machine slows them alike
    instead of favouring whichever ran in a quiet moment.
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


def torch_step(
    network: nn.Module, device: str, batch: npt.NDArray[np.float32]
) -> Callable[[], object]:
    """One eager forward pass on ``batch`` (on the device, waited for)."""
    x = torch.from_numpy(batch).to(device)

    def step() -> object:
        with torch.inference_mode():
            out = network(x)
        if device == "cuda":
            torch.cuda.synchronize()
        return out

    return step


def ort_step(
    session: ort.InferenceSession,
    contract: DeploymentContract,
    batch: npt.NDArray[np.float32],
) -> Callable[[], object]:
    """One onnxruntime run on ``batch``."""
    feed = {contract.input_name: batch}
    return lambda: session.run([contract.output_name], feed)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=None, help="a finished demo run")
    parser.add_argument("--data-root", type=Path, default=SYNTH_DIR)
    parser.add_argument("--train-epochs", type=int, default=3, help="without --run")
    parser.add_argument(
        "--work-dir", type=Path, default=REPO / "outputs" / "bench_inference"
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[40, TARGET_SIZE])
    parser.add_argument("--batch", type=int, default=64, help="throughput batch")
    parser.add_argument("--repeats", type=int, default=20, help="batch-1 repeats")
    parser.add_argument("--batch-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--calibration-images", type=int, default=300)
    parser.add_argument("--schemes", action="store_true", help="every int8 target")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--precisions",
        nargs="+",
        choices=("int8", "fp16"),
        default=["int8"],
        help="besides fp32 (default int8)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table; returns 0."""
    args = build_parser().parse_args(argv)
    torch.manual_seed(0)
    torch.set_num_threads(args.threads)
    console = Console(width=120)
    data_root = ensure_demo_data(args.data_root)
    run_dir = args.run or train_demo(
        data_root, args.work_dir / "run", args.train_epochs
    )
    loaded = load_checkpoint(run_dir / checkpoint_file(BEST_CHECKPOINT))
    network = loaded.network.eval().to(args.device)
    test_dir = find_splits(data_root)["test"]
    assert test_dir is not None, f"{data_root}: no test split"
    test_rows = len(read_split(test_dir))
    settings = RuntimeSettings(intra_op_threads=args.threads, spinning=False)
    features = cpu_features()
    scheme = int8_scheme()
    console.print(
        f"torch {torch.__version__}, onnxruntime {ort.__version__}, "
        f"{args.threads} thread(s) each; model: {run_dir} "
        f"({loaded.contract.arch}, {loaded.contract.num_classes} classes, trained at "
        f"{loaded.contract.image_size} px); test split: {test_rows} rows\n"
        f"CPU {features.describe()}\n"
        f"int8: {scheme.describe()}; {args.calibration_images} calibration images\n"
        f"onnxruntime sessions: {settings.describe()}"
    )
    table = Table(title=f"Inference on the {args.device.upper()} (demo model)")
    header = ("engine", "size", "batch 1 (ms)", f"batch {args.batch} (img/s)",
              "vs fp32 ORT", "test top-1")  # fmt: skip
    for column in header:
        table.add_column(column, justify="left" if column == "engine" else "right")
    ratios: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            rows, ratios[size] = bench_size(
                size, Path(tmp), network, loaded.contract, data_root, args, settings
            )
            for row in rows:
                table.add_row(*row)
    console.print(table)
    if TARGET_SIZE in ratios:
        where = f"({TARGET_SIZE} px, batch {args.batch})"
        at_target = ratios[TARGET_SIZE]
        for name, ratio in at_target.items():
            if name not in ("onnxruntime fp32", "onnxruntime int8"):
                console.print(f"{name} vs fp32 ORT {where}: {ratio:.2f} x")
        if "onnxruntime int8" in at_target:
            ratio = at_target["onnxruntime int8"]
            verdict = "MET" if ratio >= TARGET_RATIO else "MISSED"
            console.print(
                f"target int8 >= {TARGET_RATIO}x fp32 ORT {where}: "
                f"{ratio:.2f} x ({verdict})"
            )
    return 0


def bench_size(
    size: int,
    tmp: Path,
    network: nn.Module,
    trained: DeploymentContract,
    data_root: Path,
    args: argparse.Namespace,
    settings: RuntimeSettings,
) -> tuple[list[list[str]], dict[str, float]]:
    """Export, quantize and time one input size.

    Returns:
        The table rows, and each engine's batch speed-up over fp32 onnxruntime.
    """
    contract = trained.model_copy(update={"image_size": size})
    model = tmp / f"{size}px" / MODEL_ONNX
    write_deployment(network, contract, model)
    options = PrecisionOptions(
        data_root=data_root,
        guard_split="test",
        max_drop=100.0,  # measured here, not refused
        calibration_images=args.calibration_images,
        provider=args.device,
    )
    inputs = gather_inputs(args.precisions, options, model)
    assert inputs is not None
    eager = EagerClassifier(network, contract, args.device)
    top1 = {
        "torch eager": float(
            evaluate_samples(eager, inputs.guard_samples).metrics()["top1"]
        )
    }
    files = {"onnxruntime fp32": model}
    for precision in args.precisions:
        written = export_precision(model, precision, options, inputs)
        top1["onnxruntime fp32"] = written.guard.top1_fp32
        top1[f"onnxruntime {precision}"] = written.guard.top1
        files[f"onnxruntime {precision}"] = written.path
    if args.schemes and "int8" in args.precisions:
        files.update(_scheme_variants(model, contract, inputs, args, top1))
    paths = [s.image for s in inputs.guard_samples[: args.batch]]
    images = load_images(paths, contract).numpy()
    engines: dict[str, Engine] = {
        "torch eager": partial(torch_step, network, args.device)
    }
    for name, path in files.items():
        session = open_session(path, args.device, settings=settings)
        engines[name] = partial(ort_step, session, contract)
    latency = interleaved_medians(
        {n: make(images[:1]) for n, make in engines.items()}, args.repeats, 3
    )
    batch_time = interleaved_medians(
        {n: make(images) for n, make in engines.items()}, args.batch_repeats, 1
    )
    rows = []
    fp32 = batch_time["onnxruntime fp32"]
    for name in engines:
        rows.append(
            [
                name,
                str(size),
                f"{1000 * latency[name]:.2f}",
                f"{args.batch / batch_time[name]:.0f}",
                f"{fp32 / batch_time[name]:.2f}x",
                f"{100 * top1[name]:.2f}%",
            ]
        )
    return rows, {name: fp32 / seconds for name, seconds in batch_time.items()}


def _scheme_variants(
    model: Path,
    contract: DeploymentContract,
    inputs: PrecisionInputs,
    args: argparse.Namespace,
    top1: dict[str, float],
) -> dict[str, Path]:
    """int8 files of the other targets' schemes, calibrated on the same images."""
    reference = ONNXClassifier(model, provider="cpu")
    assert inputs.calibration_source is not None
    calibration = load_calibration_set(
        inputs.calibration_source,
        inputs.calibration_candidates,
        reference.preprocessor,
        args.calibration_images,
    )
    files = {}
    chosen = int8_scheme()
    for target in ("x86-vnni", "x86", "arm"):
        scheme = int8_scheme(target)
        if scheme.target == chosen.target:
            continue
        act = "U8" if scheme.activation_type == "uint8" else "S8"
        name = f"int8 {act}S8{' 7-bit' if scheme.reduce_range else ''} ({target})"
        path = model.with_name(f"model.{target}.onnx")
        write_int8(model, path, calibration.images, contract.input_name, scheme)
        candidate = ONNXClassifier(path, reference.mapping_path, provider="cpu")
        guard = run_guard(reference, candidate, inputs.guard_samples, "test", "int8")
        top1[name] = guard.top1
        files[name] = path
    return files


if __name__ == "__main__":
    raise SystemExit(main())
