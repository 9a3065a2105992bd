"""What the CPU can do: its vector and matrix instruction flags, without torch.

Decisions that depend on the CPU read them here: the int8 scheme of
``classifier-export --precision int8`` (unsigned activations everywhere on x86;
7-bit weights where there is no VNNI dot product, whose 16-bit intermediate sums
can saturate), and the training precision (bf16 where the CPU has bf16
instructions). The flags come from ``/proc/cpuinfo`` (the ``flags`` line on x86,
``Features`` on ARM); other systems report none, so every decision falls back to
the safe choice. Tests pass a made-up ``cpuinfo`` text.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")

#: Flags shown in benchmark tables and summaries, in this order when present.
VECTOR_FLAGS = (
    # x86
    "sse4_2", "avx", "avx2", "fma", "f16c",
    "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx_vnni",
    "avx512_bf16", "avx512_fp16", "amx_tile", "amx_int8", "amx_bf16",
    # ARM
    "asimd", "asimddp", "asimdhp", "i8mm", "bf16", "sve", "sve2",
)  # fmt: skip
#: 8-bit dot-product instructions (x86 VNNI in any form, AMX int8, ARM dot product).
INT8_DOT_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8", "asimddp"})
#: bf16 arithmetic (AVX-512 BF16, AMX, ARM BF16).
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})
_X86 = frozenset({"x86_64", "amd64", "i386", "i686", "x86"})
_ARM = frozenset({"aarch64", "arm64", "armv8l", "armv7l"})


@dataclass(frozen=True)
class CpuFeatures:
    """The instruction-set facts of one CPU.

    Attributes:
        architecture: ``platform.machine()`` lower-cased (``x86_64``, ``aarch64``).
        flags: Every flag the CPU reports (empty when unknown).
    """

    architecture: str
    flags: frozenset[str]

    @property
    def is_x86(self) -> bool:
        """An x86 CPU (Intel, AMD)."""
        return self.architecture in _X86

    @property
    def is_arm(self) -> bool:
        """An ARM CPU (Graviton, Apple silicon, Cortex-A)."""
        return self.architecture in _ARM

    @property
    def has_int8_dot(self) -> bool:
        """8-bit dot-product instructions (VNNI, AMX int8, ARM dot product)."""
        return bool(self.flags & INT8_DOT_FLAGS)

    @property
    def has_bf16(self) -> bool:
        """bf16 arithmetic instructions (AVX-512 BF16, AMX bf16, ARM BF16)."""
        return bool(self.flags & BF16_FLAGS)

    @property
    def vector_flags(self) -> list[str]:
        """The flags of :data:`VECTOR_FLAGS` this CPU has, in that order."""
        return [flag for flag in VECTOR_FLAGS if flag in self.flags]

    def describe(self) -> str:
        """``x86_64: avx2 fma avx512f ...`` (``no vector flags known`` if none)."""
        shown = " ".join(self.vector_flags) or "no vector flags known"
        return f"{self.architecture or 'unknown'}: {shown}"

    def to_json(self) -> dict[str, object]:
        """The architecture and the vector flags (the full list is long)."""
        return {"architecture": self.architecture, "vector_flags": self.vector_flags}


def parse_cpuinfo(text: str, architecture: str | None = None) -> CpuFeatures:
    """The features described by a ``/proc/cpuinfo`` text.

    Args:
        text: The file's content (only the first CPU's ``flags`` or ``Features``
            line is read: every core of one machine reports the same).
        architecture: The machine; default ``platform.machine()``.

    Returns:
        The features.
    """
    flags: frozenset[str] = frozenset()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip().lower() in ("flags", "features"):
            flags = frozenset(value.lower().split())
            break
    machine = (architecture if architecture is not None else platform.machine()).lower()
    return CpuFeatures(architecture=machine, flags=flags)


@cache
def cpu_features(cpuinfo: Path = CPUINFO) -> CpuFeatures:
    """This machine's CPU features (read once; none known off Linux).

    Args:
        cpuinfo: The file to read.

    Returns:
        The features.
    """
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    return parse_cpuinfo(text)
