"""CPU feature detection and the int8 scheme chosen from it, on made-up
``/proc/cpuinfo`` texts both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier_training.core.cpu_features import cpu_features, parse_cpuinfo
from classifier_training.quantization.schemes import int8_scheme

# Abridged from real machines: an AVX2-only EPYC, a Zen 4 with VNNI and bf16, a
# Sapphire Rapids with AMX, a Graviton 3.
AVX2_ONLY = """processor\t: 0
vendor_id\t: AuthenticAMD
model name\t: AMD EPYC 7B12
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2
processor\t: 1
flags\t\t: fpu vme sse sse2 ssse3 sse4_1 sse4_2 avx f16c fma avx2 bmi2
"""
ZEN4 = """processor\t: 0
flags\t\t: sse4_2 avx f16c fma avx2 avx512f avx512bw avx512vl avx512_bf16 avx512_vnni
"""
SAPPHIRE = """flags\t\t: avx2 avx512f avx512_vnni avx_vnni amx_bf16 amx_tile amx_int8
"""
GRAVITON = """processor\t: 0
BogoMIPS\t: 2100.00
Features\t: fp asimd evtstrm aes crc32 atomics fphp asimdhp asimddp sve i8mm bf16
"""


def test_flags_are_read_from_the_first_cpu() -> None:
    features = parse_cpuinfo(AVX2_ONLY, "x86_64")
    assert features.is_x86
    assert not features.is_arm
    assert "avx2" in features.flags
    assert features.vector_flags == ["sse4_2", "avx", "avx2", "fma", "f16c"]
    assert not features.has_int8_dot
    assert not features.has_bf16
    assert features.describe() == "x86_64: sse4_2 avx avx2 fma f16c"


@pytest.mark.parametrize(
    ("text", "arch", "int8_dot", "bf16"),
    [
        (AVX2_ONLY, "x86_64", False, False),
        (ZEN4, "x86_64", True, True),
        (SAPPHIRE, "x86_64", True, True),
        (GRAVITON, "aarch64", True, True),
        ("", "x86_64", False, False),
    ],
)
def test_capabilities_both_ways(
    text: str, arch: str, int8_dot: bool, bf16: bool
) -> None:
    features = parse_cpuinfo(text, arch)
    assert features.has_int8_dot is int8_dot
    assert features.has_bf16 is bf16


def test_int8_scheme_follows_the_cpu() -> None:
    no_vnni = int8_scheme("auto", parse_cpuinfo(AVX2_ONLY, "x86_64"))
    assert (no_vnni.target, no_vnni.activation_type, no_vnni.reduce_range) == (
        "x86", "uint8", True,
    )  # fmt: skip
    assert "none of avx512_vnni" in no_vnni.reason
    vnni = int8_scheme("auto", parse_cpuinfo(ZEN4, "x86_64"))
    assert (vnni.target, vnni.activation_type, vnni.reduce_range) == (
        "x86-vnni", "uint8", False,
    )  # fmt: skip
    assert vnni.reason == "this CPU has avx512_vnni"
    amx = int8_scheme("auto", parse_cpuinfo(SAPPHIRE, "x86_64"))
    assert amx.target == "x86-vnni"
    assert amx.reason == "this CPU has avx512_vnni, avx_vnni, amx_int8"
    arm = int8_scheme("auto", parse_cpuinfo(GRAVITON, "aarch64"))
    assert (arm.target, arm.activation_type, arm.reduce_range) == (
        "arm", "int8", False,
    )  # fmt: skip
    assert vnni.describe().startswith("U8S8 for x86-vnni (reduce_range off)")
    assert arm.describe().startswith("S8S8 for arm")


def test_a_named_target_wins_over_this_cpu() -> None:
    scheme = int8_scheme("x86", parse_cpuinfo(ZEN4, "x86_64"))
    assert (scheme.target, scheme.reduce_range, scheme.reason) == (
        "x86", True, "asked for",
    )  # fmt: skip
    with pytest.raises(ValueError, match="int8 target must be one of"):
        int8_scheme("avx2")


def test_a_machine_without_cpuinfo_knows_no_flags(tmp_path: Path) -> None:
    features = cpu_features(tmp_path / "missing")
    assert features.flags == frozenset()
    assert features.vector_flags == []
    assert int8_scheme("auto", features).reduce_range is (not features.is_arm)
