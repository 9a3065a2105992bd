"""``trainer.precision=auto``: chosen from the CPU's flags (made-up ``cpuinfo``
texts both ways), the GPU's bf16 support, and a bf16 trial step."""

from __future__ import annotations

from pathlib import Path

import pytest
from hydra import compose, initialize_config_module

from classifier_training.core.cpu_features import parse_cpuinfo
from classifier_training.training.builders import build_trainer, precision_choice
from classifier_training.training.precision import (
    AUTO,
    bf16_trial_step,
    choose_precision,
)
from tests.test_cpu_features import AVX2_ONLY, GRAVITON, SAPPHIRE, ZEN4


def _works() -> None:
    return None


def _never_called() -> str | None:
    raise AssertionError("the bf16 trial runs only on a CPU with bf16 instructions")


@pytest.mark.parametrize(
    ("text", "arch", "expected", "flags"),
    [
        (AVX2_ONLY, "x86_64", "32-true", "CPU without bf16 instructions"),
        ("", "x86_64", "32-true", "CPU without bf16 instructions"),
        (
            ZEN4,
            "x86_64",
            "32-true",
            "CPU has avx512_bf16 but no AMX: bf16 not faster there",
        ),
        (SAPPHIRE, "x86_64", "bf16-mixed", "CPU has amx_bf16 (AMX)"),
        (
            GRAVITON,
            "aarch64",
            "32-true",
            "CPU has bf16 but no AMX: bf16 not faster there",
        ),
    ],
)
def test_auto_on_a_cpu_follows_its_bf16_flags(
    text: str, arch: str, expected: str, flags: str
) -> None:
    cpu = parse_cpuinfo(text, arch)
    trial = _works if expected == "bf16-mixed" else _never_called
    choice = choose_precision(AUTO, "cpu", cpu, cpu_trial=trial)
    assert (choice.precision, choice.reason) == (expected, flags)
    assert choice.describe() == f"trainer.precision=auto: {expected} ({flags})"
    assert choice.to_json() == {
        "requested": "auto",
        "precision": expected,
        "device": "cpu",
        "reason": flags,
    }


def test_auto_falls_back_to_fp32_when_the_bf16_trial_fails() -> None:
    choice = choose_precision(
        AUTO,
        "cpu",
        parse_cpuinfo(SAPPHIRE, "x86_64"),
        cpu_trial=lambda: "RuntimeError: x",
    )
    assert choice.precision == "32-true"
    assert choice.reason == (
        "CPU has amx_bf16 but a bf16 trial step failed: RuntimeError: x"
    )


@pytest.mark.parametrize(
    ("bf16", "expected"), [(True, "bf16-mixed"), (False, "16-mixed")]
)
def test_auto_on_cuda_follows_the_gpu(bf16: bool, expected: str) -> None:
    cpu = parse_cpuinfo(AVX2_ONLY, "x86_64")  # the host CPU does not matter
    choice = choose_precision(
        AUTO, "cuda", cpu, cuda_bf16=lambda: bf16, cpu_trial=_never_called
    )
    assert choice.precision == expected


def test_a_configured_precision_is_kept_whatever_the_machine() -> None:
    choice = choose_precision(
        "16-mixed", "cpu", parse_cpuinfo(ZEN4, "x86_64"), cpu_trial=_never_called
    )
    assert (choice.precision, choice.reason) == ("16-mixed", "as configured")


def test_the_bf16_trial_step_runs_on_this_machine() -> None:
    assert bf16_trial_step() is None


def test_the_cpu_recipes_ask_for_auto_and_the_trainer_gets_a_choice(
    tmp_path: Path,
) -> None:
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        cfg = compose(
            config_name="train_demo",
            overrides=[f"paths.output_dir={tmp_path}", "logging=none"],
        )
    assert cfg.trainer.precision == AUTO
    choice = precision_choice(cfg)
    assert choice.precision in ("bf16-mixed", "32-true")
    trainer = build_trainer(cfg, [], [], enable_progress_bar=False)
    assert trainer.precision == choice.precision
