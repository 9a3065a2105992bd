"""ONNX export with an onnxruntime check, and the ``classifier-export`` CLI.

``model.onnx`` is one self-contained file (no external data): input
``contract.input_name`` (``N x 3 x H x W`` float32, normalised as the contract
says), output ``contract.output_name`` (``N x num_classes`` logits), dynamic batch
axis. Before a file is kept it is run with onnxruntime against PyTorch at batch 1
and at a larger batch; the maximum absolute logit difference must be within
``atol`` and the argmax identical. A failed check raises
:class:`OnnxVerificationError` and leaves nothing at the destination (the file is
written to a temporary name and renamed only after the check passes).

``classifier-export`` rebuilds the network of a checkpoint from the deployment
contract it carries (:mod:`classifier_training.checkpoints`) and writes
``labels_mapping.json`` beside the ONNX file. ``--precision int8`` / ``fp16``
(from a checkpoint or from an exported ``model.onnx``) also writes
``model.int8.onnx`` / ``model.fp16.onnx`` beside it, each checked by the accuracy
guard (:mod:`classifier_training.quantization`); ``export_summary.json`` records
what was written and the guard's figures.
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from torch import nn

from classifier_training.checkpoints import load_checkpoint
from classifier_training.core.contract import (
    DeploymentContract,
    run_folder,
    write_labels_mapping,
)
from classifier_training.core.errors import ClassifierError, UsageError, run_command
from classifier_training.core.io import atomic_path
from classifier_training.core.preprocessing import Preprocessor
from classifier_training.core.run_files import (
    BEST_CHECKPOINT,
    EXPORT_SUMMARY_FILE,
    LABELS_MAPPING_FILE,
    MODEL_ONNX,
    checkpoint_file,
)
from classifier_training.inference.runtime import open_session
from classifier_training.quantization.cli import (
    add_precision_arguments,
    export_precisions,
    parse_precisions,
    precision_options,
    remove_stale,
)
from classifier_training.quantization.pipeline import (
    fp32_reference,
    gather_inputs,
    record_fp32,
)

MAX_BATCH = 4096
DEFAULT_ATOL = 1e-4
VERIFY_BATCH = 8


class OnnxVerificationError(ClassifierError):
    """The exported ONNX model does not reproduce the PyTorch model."""


class ExportError(ClassifierError):
    """A checkpoint or labels mapping cannot be exported (message names the file)."""


@dataclass(frozen=True)
class OnnxVerification:
    """Outcome of a passed check.

    Attributes:
        max_abs_diff: Largest absolute logit difference over all checked batches.
        batch_sizes: The batch sizes that were run.
    """

    max_abs_diff: float
    batch_sizes: tuple[int, ...]


@contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's progress output (stdout and INFO log records)."""
    loggers = [
        logging.getLogger(name) for name in ("onnxscript", "onnx_ir", "torch.onnx")
    ]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        with redirect_stdout(io.StringIO()):
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def _cpu_fp32_eval(network: nn.Module) -> nn.Module:
    """A CPU, float32, eval-mode copy (the original, maybe training on a GPU,
    is left alone)."""
    return copy.deepcopy(network).to(device="cpu", dtype=torch.float32).eval()


def verification_batches(
    images: torch.Tensor | None, image_size: int, batch: int = VERIFY_BATCH
) -> torch.Tensor:
    """At least 2 images to check an export with, real ones first.

    Args:
        images: Real normalised images ``N x 3 x H x W`` (may be ``None`` or fewer
            than 2; the rest is filled with seeded standard-normal noise, which is
            what normalised images look like to the network).
        image_size: Input side.
        batch: Images wanted.

    Returns:
        A ``M x 3 x image_size x image_size`` float32 CPU tensor, ``M >= 2``.
    """
    real = (
        images.detach().to("cpu", torch.float32)[:batch]
        if images is not None
        else torch.empty(0, 3, image_size, image_size)
    )
    missing = max(0, 2 - len(real))
    if missing:
        generator = torch.Generator().manual_seed(0)
        noise = torch.randn(missing, 3, image_size, image_size, generator=generator)
        real = torch.cat([real, noise])
    return real


def verify_onnx(
    onnx_path: Path,
    reference: nn.Module,
    images: torch.Tensor,
    contract: DeploymentContract,
    atol: float = DEFAULT_ATOL,
) -> OnnxVerification:
    """Check an ONNX file against the PyTorch model it was exported from.

    Runs batch 1 (the first image) and batch ``len(images)`` through onnxruntime
    (CPU) and the PyTorch model (CPU, fp32, eval mode).

    Args:
        onnx_path: The ONNX file.
        reference: The PyTorch network (images to logits).
        images: Normalised images ``N x 3 x H x W`` with ``N >= 2``.
        contract: The deployment contract (input and output names).
        atol: Largest allowed absolute logit difference.

    Returns:
        The largest difference seen and the batch sizes checked.

    Raises:
        OnnxVerificationError: On a wrong interface, external data, a difference
            above ``atol`` or any argmax mismatch; the message names the file.
    """
    if images.ndim != 4 or len(images) < 2:
        raise ValueError(
            f"verify_onnx needs N x 3 x H x W images with N >= 2, got "
            f"{tuple(images.shape)}"
        )
    try:
        proto = onnx.load(str(onnx_path), load_external_data=False)
        onnx.checker.check_model(proto)
    except Exception as error:
        raise OnnxVerificationError(
            f"{onnx_path}: not a valid ONNX model: {error}"
        ) from None
    external = [
        t.name
        for t in proto.graph.initializer
        if t.data_location == onnx.TensorProto.EXTERNAL
    ]
    if external:
        raise OnnxVerificationError(
            f"{onnx_path}: weights stored outside the file ({external[:3]}); "
            "the export must be self-contained"
        )
    # Checks are tiny: two threads, never every core of a training machine.
    session = open_session(onnx_path, "cpu", intra_op_threads=2)
    input_name, output_name = contract.input_name, contract.output_name
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != [input_name] or outputs != [output_name]:
        raise OnnxVerificationError(
            f"{onnx_path}: expected input {input_name!r} and output {output_name!r}, "
            f"got inputs {inputs} and outputs {outputs}"
        )
    model = _cpu_fp32_eval(reference)
    images = images.detach().to("cpu", torch.float32)
    worst = 0.0
    sizes = (1, len(images))
    for size in sizes:
        batch = images[:size]
        with torch.no_grad():
            expected = model(batch).numpy()
        (got,) = session.run([output_name], {input_name: batch.numpy()})
        if got.shape != expected.shape:
            raise OnnxVerificationError(
                f"{onnx_path}: logits shape {got.shape} at batch {size}, PyTorch "
                f"gives {expected.shape}"
            )
        diff = float(np.abs(got - expected).max())
        worst = max(worst, diff)
        if not diff <= atol:  # also catches NaN
            raise OnnxVerificationError(
                f"{onnx_path}: ONNX logits differ from PyTorch by up to {diff:.3g} "
                f"at batch {size} (allowed {atol:g})"
            )
        mismatched = int((got.argmax(axis=1) != expected.argmax(axis=1)).sum())
        if mismatched:
            raise OnnxVerificationError(
                f"{onnx_path}: ONNX and PyTorch predict different classes for "
                f"{mismatched} of {size} images"
            )
    return OnnxVerification(max_abs_diff=worst, batch_sizes=sizes)


def export_onnx(
    network: nn.Module,
    contract: DeploymentContract,
    out_path: Path,
    verify_images: torch.Tensor | None = None,
    atol: float = DEFAULT_ATOL,
) -> OnnxVerification:
    """Export ``network`` to a self-contained, verified ONNX file.

    The network is exported in eval mode on the CPU in float32 (a copy; the
    original is untouched) with ``torch.onnx.export(dynamo=True)``, the contract's
    input and output names and a dynamic batch axis (1 to 4096). The file is
    checked with :func:`verify_onnx` under a temporary name and only then renamed
    onto ``out_path``.

    Args:
        network: Maps normalised ``N x 3 x H x W`` images to ``N x C`` logits.
        contract: The deployment contract (input size, I/O names).
        out_path: Destination ``.onnx`` file.
        verify_images: Real normalised images to check with (first 8 used); noise
            fills up to 2 when fewer are given.
        atol: Largest allowed absolute logit difference.

    Returns:
        The verification result.

    Raises:
        OnnxVerificationError: If the check fails; ``out_path`` is then not written.
    """
    model = _cpu_fp32_eval(network)
    image_size = contract.image_size
    images = verification_batches(verify_images, image_size)
    if tuple(images.shape[1:]) != (3, image_size, image_size):
        raise ValueError(
            f"verification images are {tuple(images.shape[1:])}, the export "
            f"expects 3 x {image_size} x {image_size}"
        )
    batch = torch.export.Dim("batch", min=1, max=MAX_BATCH)
    with atomic_path(out_path) as tmp:
        with _quiet_exporter():
            torch.onnx.export(
                model,
                (images[:2],),
                str(tmp),
                dynamo=True,
                input_names=[contract.input_name],
                output_names=[contract.output_name],
                dynamic_shapes=({0: batch},),
                external_data=False,
                verbose=False,
            )
        result = verify_onnx(tmp, model, images, contract, atol=atol)
    return result


def load_images(paths: Sequence[Path], contract: DeploymentContract) -> torch.Tensor:
    """Preprocess image files exactly as evaluation does (per the contract).

    Args:
        paths: Image files.
        contract: The deployment contract.

    Returns:
        ``N x 3 x H x W`` float32 images.

    Raises:
        ExportError: Naming an image that cannot be read.
    """
    preprocessor = Preprocessor.from_contract(contract)
    arrays = []
    for path in paths:
        try:
            arrays.append(preprocessor(path))
        except Exception as error:  # PIL raises many types for corrupt files
            raise ExportError(f"{path}: cannot read image: {error}") from None
    return torch.from_numpy(np.stack(arrays))


def write_deployment(
    network: nn.Module,
    contract: DeploymentContract,
    onnx_path: Path,
    verify_images: torch.Tensor | None = None,
    atol: float = DEFAULT_ATOL,
) -> OnnxVerification:
    """Write a verified ``onnx_path`` and ``labels_mapping.json`` beside it.

    Args:
        network: The network to ship.
        contract: Its deployment contract.
        onnx_path: Destination ``.onnx`` file.
        verify_images: Real normalised images to check with.
        atol: Largest allowed absolute logit difference.

    Returns:
        The verification result.
    """
    result = export_onnx(network, contract, onnx_path, verify_images, atol)
    write_labels_mapping(contract, onnx_path.parent / LABELS_MAPPING_FILE)
    return result


def export_checkpoint(
    checkpoint_path: Path,
    out_path: Path,
    images: Sequence[Path] = (),
    atol: float = DEFAULT_ATOL,
) -> OnnxVerification:
    """Export a checkpoint to a verified ``out_path`` plus ``labels_mapping.json``.

    Args:
        checkpoint_path: The ``.ckpt`` file (it carries its contract).
        out_path: Destination ``.onnx``.
        images: Image files to verify with (else seeded noise).
        atol: Largest allowed absolute logit difference.

    Returns:
        The verification result.
    """
    loaded = load_checkpoint(checkpoint_path)
    verify = load_images(images, loaded.contract) if images else None
    return write_deployment(loaded.network, loaded.contract, out_path, verify, atol)


def build_parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    parser = argparse.ArgumentParser(
        prog="classifier-export",
        description="Export a classifier-train checkpoint (its EMA weights when EMA "
        "was on) to one self-contained ONNX file, verify it with onnxruntime "
        "against PyTorch, and write labels_mapping.json beside it. With "
        "--precision int8/fp16 (from a checkpoint or an exported model.onnx), "
        "also write model.int8.onnx / model.fp16.onnx beside it, kept only when "
        "the accuracy guard passes: their top-1 on --guard-split may not drop "
        "more than --max-drop points below fp32's.",
        epilog="Exit status: 0 exported, 1 a file refused by the accuracy guard "
        "(figures printed), 2 unusable input or failed check.",
    )
    parser.add_argument(
        "source", type=Path, help="a .ckpt file, or an exported model.onnx"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="ONNX file to write from a checkpoint (default: model.onnx of the "
        "checkpoint's run folder, RUN for RUN/checkpoints/x.ckpt)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace the run folder's model.onnx even when it was exported from "
        "another checkpoint",
    )
    parser.add_argument(
        "--images",
        type=Path,
        nargs="*",
        default=[],
        help="image files to verify with (default: seeded random inputs)",
    )
    parser.add_argument(
        "--atol", type=float, default=DEFAULT_ATOL, help="max abs logit difference"
    )
    add_precision_arguments(parser)
    return parser


def _check_arguments(args: argparse.Namespace) -> list[str]:
    precisions = parse_precisions(args.precision)
    is_onnx = args.source.suffix.lower() == ".onnx"
    if is_onnx and args.out is not None:
        raise UsageError(
            f"{args.source}: --out applies to checkpoints; the files of other "
            "precisions are written beside the model"
        )
    if is_onnx and precisions == ["fp32"]:
        raise UsageError(
            f"{args.source}: already an ONNX model; ask for --precision int8 "
            "and/or fp16"
        )
    return precisions


def default_model_path(checkpoint: Path, force: bool = False) -> Path:
    """Where a checkpoint exports to without ``--out``: its run folder's
    ``model.onnx`` (``RUN`` for ``RUN/checkpoints/x.ckpt``, else its folder).

    Args:
        checkpoint: The ``.ckpt`` file.
        force: Replace a ``model.onnx`` exported from another checkpoint.

    Raises:
        UsageError: If the folder's ``model.onnx`` came from another checkpoint
            (the run's own is ``best.ckpt``'s) and ``force`` is off.
    """
    run = run_folder(checkpoint)
    target = run / MODEL_ONNX
    if not target.exists() or force:
        return target
    best = (run / checkpoint_file(BEST_CHECKPOINT)).resolve()
    try:
        summary = json.loads((run / EXPORT_SUMMARY_FILE).read_text(encoding="utf-8"))
        recorded = summary["fp32"]["source"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = None
    sources = {best} | ({Path(recorded).resolve()} if recorded else set())
    if checkpoint.resolve() not in sources:
        origin = Path(recorded).name if recorded else BEST_CHECKPOINT
        raise UsageError(
            f"{target} holds another model (exported from {origin}); --force "
            "replaces it, --out FILE writes elsewhere"
        )
    return target


def _export(args: argparse.Namespace) -> int:
    precisions = _check_arguments(args)
    from_onnx = args.source.suffix.lower() == ".onnx"
    model_path = (
        args.source
        if from_onnx
        else args.out or default_model_path(args.source, args.force)
    )
    if from_onnx:
        fp32_reference(model_path, args.provider)  # its contract, at start-up
    options = precision_options(args)
    hint = model_path if from_onnx else args.source
    inputs = gather_inputs(precisions, options, hint)
    if not from_onnx:
        result = export_checkpoint(args.source, model_path, args.images, args.atol)
        record_fp32(
            model_path,
            source=str(args.source),
            verified_batch_sizes=list(result.batch_sizes),
            max_abs_logit_diff=result.max_abs_diff,
        )
        print(
            f"wrote {model_path} and {model_path.parent / LABELS_MAPPING_FILE} "
            f"(verified at batch sizes {list(result.batch_sizes)}, max abs logit "
            f"difference {result.max_abs_diff:.2e})"
        )
        remove_stale(model_path, precisions)
    return export_precisions(model_path, precisions, options, inputs)


def main(argv: list[str] | None = None) -> int:
    """``classifier-export SOURCE [--precision fp32 int8 fp16]``: export, verify,
    and write the reduced-precision files the accuracy guard allows."""
    args = build_parser().parse_args(argv)
    return run_command(lambda: _export(args))


if __name__ == "__main__":
    raise SystemExit(main())
