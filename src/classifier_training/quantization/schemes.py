"""Which int8 scheme a CPU runs fast, and the calibration methods on offer.

onnxruntime's CPU kernels multiply unsigned 8-bit activations by signed 8-bit
weights (``U8S8``) natively on x86: that is the operand order of the VNNI
instruction and of the AVX2 fall-back. Signed activations (``S8S8``, the
quantizer's default) are converted first on x86 and run no faster than fp32
there; ARM's dot-product instructions take ``S8S8`` directly. Without VNNI the
AVX2 path adds pairs of 8-bit products into 16 bits, which can saturate;
onnxruntime's documented remedy is ``reduce_range`` (7-bit weights). So:

========== ============ ======== ============
target     activations  weights  reduce_range
========== ============ ======== ============
x86-vnni   uint8        int8     no
x86        uint8        int8     yes
arm        int8         int8     no
========== ============ ======== ============

``auto`` picks the target of the CPU the export runs on
(:mod:`classifier_training.core.cpu_features`). A model for another machine
(exported on a VNNI server for AVX2-only edge boxes) names that machine's target.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from classifier_training.core.cpu_features import CpuFeatures, cpu_features

Int8Target = Literal["x86-vnni", "x86", "arm"]
INT8_TARGETS: tuple[str, ...] = ("auto", "x86-vnni", "x86", "arm")
#: onnxruntime's calibration methods: ``minmax`` (the observed range),
#: ``entropy`` (the range that keeps the activation histogram's information,
#: KL divergence) and ``percentile`` (clips the rarest 0.001 % of values).
CALIBRATION_METHODS: tuple[str, ...] = ("minmax", "entropy", "percentile")
DEFAULT_CALIBRATION_METHOD = "minmax"
_X86_INT8_DOT = ("avx512_vnni", "avx_vnni", "amx_int8")


@dataclass(frozen=True)
class Int8Scheme:
    """How a model is quantized for one kind of CPU.

    Attributes:
        target: ``x86-vnni``, ``x86`` or ``arm``.
        activation_type: ``uint8`` or ``int8``.
        weight_type: ``int8`` (per output channel).
        reduce_range: Weights on 7 bits (no saturation without VNNI).
        reason: Why this target (the CPU flags it was chosen from, or "asked").
    """

    target: Int8Target
    activation_type: Literal["uint8", "int8"]
    weight_type: Literal["int8"]
    reduce_range: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        """The scheme as JSON."""
        return asdict(self)

    def describe(self) -> str:
        """``U8S8 for x86-vnni (reduce_range off): <reason>``."""
        act = "U8" if self.activation_type == "uint8" else "S8"
        rr = "on" if self.reduce_range else "off"
        return f"{act}S8 for {self.target} (reduce_range {rr}): {self.reason}"


def detect_target(features: CpuFeatures) -> tuple[Int8Target, str]:
    """The int8 target of a CPU and why.

    Args:
        features: The CPU's features.

    Returns:
        The target and a short reason naming the deciding flags.
    """
    if features.is_arm:
        return "arm", f"{features.architecture} CPU"
    if features.has_int8_dot:
        found = [f for f in _X86_INT8_DOT if f in features.flags]
        return "x86-vnni", f"this CPU has {', '.join(found)}"
    if features.is_x86:
        return "x86", f"this CPU has none of {', '.join(_X86_INT8_DOT)}"
    return "x86", f"unknown CPU ({features.architecture or 'no architecture'})"


def int8_scheme(
    target: str = "auto", features: CpuFeatures | None = None
) -> Int8Scheme:
    """The int8 scheme for a target (``auto``: this machine's CPU).

    Args:
        target: One of :data:`INT8_TARGETS`.
        features: The CPU to decide ``auto`` for (default: this one).

    Returns:
        The scheme.
    """
    if target not in INT8_TARGETS:
        raise ValueError(f"int8 target must be one of {INT8_TARGETS}, got {target!r}")
    chosen: Int8Target
    if target == "auto":
        chosen, reason = detect_target(features or cpu_features())
    else:
        chosen, reason = target, "asked for"  # type: ignore[assignment]
    return Int8Scheme(
        target=chosen,
        activation_type="int8" if chosen == "arm" else "uint8",
        weight_type="int8",
        reduce_range=chosen == "x86",
        reason=reason,
    )
