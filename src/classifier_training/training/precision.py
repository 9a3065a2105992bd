"""``trainer.precision=auto``: the precision this machine trains fastest in.

On a CUDA GPU: ``bf16-mixed`` where the GPU computes in bf16 natively, else
``16-mixed``. On a CPU: ``bf16-mixed`` when the CPU has the bf16 instructions
of :data:`BF16_TRAINING_FLAGS` and one training step of a small network under
bf16 autocast runs and gives finite numbers; otherwise ``32-true``. Without bf16
instructions bf16 is emulated and slower than fp32; with ``avx512_bf16`` alone
(no AMX) the demo trained slower in bf16 than in fp32 end to end on the
reference machine (``benchmarks/README.md``, bf16 training), so such CPUs stay
in fp32 too. Elsewhere (Apple MPS) ``32-true``. Any other value of
``trainer.precision`` is used as given. The choice is printed once when the
trainer is built and recorded in ``metrics.json`` (``training_precision``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import cache

import torch
from torch import nn

from classifier_training.core.cpu_features import BF16_FLAGS, CpuFeatures, cpu_features

#: The value of ``trainer.precision`` that asks for this module's choice.
AUTO = "auto"
#: CPU flags with which ``auto`` trains in bf16: AMX's bf16 tiles. The other bf16
#: flags (``avx512_bf16``, ARM ``bf16``) were not faster end to end where measured
#: (``benchmarks/README.md``); add one here once a measurement shows a gain.
BF16_TRAINING_FLAGS = frozenset({"amx_bf16"})


@dataclass(frozen=True)
class PrecisionChoice:
    """The training precision of a run and why.

    Attributes:
        requested: ``trainer.precision`` as configured.
        precision: What Lightning is given (``bf16-mixed``, ``32-true``...).
        device: ``cpu``, ``cuda`` or ``mps``.
        reason: Why this precision (the CPU flags or GPU fact it rests on).
    """

    requested: str
    precision: str
    device: str
    reason: str

    def describe(self) -> str:
        """``trainer.precision=auto: bf16-mixed (reason)``."""
        return f"trainer.precision={self.requested}: {self.precision} ({self.reason})"

    def to_json(self) -> dict[str, str]:
        """The four fields, for ``metrics.json``."""
        return asdict(self)


def device_type(accelerator: str) -> str:
    """The torch device type ``trainer.accelerator`` trains on.

    Args:
        accelerator: ``cpu``, ``gpu``/``cuda``, ``mps`` or ``auto`` (Lightning's
            order: CUDA, then MPS, then the CPU).

    Returns:
        ``cuda``, ``mps`` or ``cpu``.
    """
    name = accelerator.lower()
    if name in ("gpu", "cuda"):
        return "cuda"
    if name in ("cpu", "mps"):
        return name
    if torch.cuda.is_available():
        return "cuda"
    if torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def bf16_trial_step() -> str | None:
    """One training step of a small conv net under CPU bf16 autocast.

    Returns:
        ``None`` when it ran with finite loss and gradients, else what failed.
    """
    generator = torch.Generator().manual_seed(0)
    network = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 4),
    )
    images = torch.randn(4, 3, 16, 16, generator=generator)
    targets = torch.arange(4)
    try:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = nn.functional.cross_entropy(network(images), targets)
        loss.backward()  # type: ignore[no-untyped-call]
    except RuntimeError as error:
        return f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    grads = [p.grad for p in network.parameters()]
    if not torch.isfinite(loss) or any(
        g is None or not bool(torch.isfinite(g).all()) for g in grads
    ):
        return "non-finite loss or gradients"
    return None


def choose_precision(
    requested: str,
    device: str,
    cpu: CpuFeatures,
    cuda_bf16: Callable[[], bool] = lambda: False,
    cpu_trial: Callable[[], str | None] = bf16_trial_step,
) -> PrecisionChoice:
    """Resolve ``trainer.precision`` for one machine.

    Args:
        requested: ``trainer.precision`` as configured (``auto`` or a Lightning
            value, returned unchanged).
        device: ``cpu``, ``cuda`` or ``mps`` (:func:`device_type`).
        cpu: The CPU's features.
        cuda_bf16: Whether the GPU computes in bf16 natively (asked only on CUDA).
        cpu_trial: A bf16 training step on the CPU: ``None`` when it works, else
            what failed (run only when the CPU has bf16 instructions).

    Returns:
        The choice and its reason.
    """
    if requested != AUTO:
        return PrecisionChoice(requested, requested, device, "as configured")
    if device == "cuda":
        if cuda_bf16():
            return PrecisionChoice(requested, "bf16-mixed", device, "GPU has bf16")
        return PrecisionChoice(
            requested, "16-mixed", device, "GPU without native bf16: fp16"
        )
    if device != "cpu":
        return PrecisionChoice(
            requested, "32-true", device, f"{device}: mixed precision not measured"
        )
    bf16_flags = sorted(cpu.flags & BF16_FLAGS)
    if not bf16_flags:
        return PrecisionChoice(
            requested, "32-true", device, "CPU without bf16 instructions"
        )
    if not cpu.flags & BF16_TRAINING_FLAGS:
        return PrecisionChoice(
            requested,
            "32-true",
            device,
            f"CPU has {' '.join(bf16_flags)} but no AMX: bf16 not faster there",
        )
    failure = cpu_trial()
    if failure is not None:
        return PrecisionChoice(
            requested,
            "32-true",
            device,
            f"CPU has {' '.join(bf16_flags)} but a bf16 trial step failed: {failure}",
        )
    return PrecisionChoice(
        requested, "bf16-mixed", device, f"CPU has {' '.join(bf16_flags)} (AMX)"
    )


@cache
def training_precision(requested: str, accelerator: str) -> PrecisionChoice:
    """:func:`choose_precision` for this machine (decided once per process).

    Args:
        requested: ``trainer.precision``.
        accelerator: ``trainer.accelerator``.

    Returns:
        The choice.
    """
    return choose_precision(
        requested,
        device_type(accelerator),
        cpu_features(),
        cuda_bf16=lambda: torch.cuda.is_bf16_supported(including_emulation=False),
    )
