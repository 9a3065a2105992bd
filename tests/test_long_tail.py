"""Long-tail training and inference (issue 25): the loss choice in the model,
deferred re-sampling, post-hoc logit adjustment, the rare-class metrics and the
long-tailed synthetic set. The losses themselves: ``tests/test_losses.py``."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from lightning.pytorch.callbacks import ModelCheckpoint

from classifier_training.callbacks.sampler import SamplerDistributionCallback
from classifier_training.config import ConfigError
from classifier_training.core.calibration import softmax
from classifier_training.core.contract import (
    DeploymentContract,
    LabelsMappingError,
    parse_contract,
    read_labels_mapping,
    write_labels_mapping,
)
from classifier_training.core.long_tail import (
    adjust_logits,
    rare_classes,
    top1_rare,
)
from classifier_training.data.sampler import DeferredWeightedSampler
from classifier_training.export import export_onnx
from classifier_training.inference.evaluate import main as evaluate_main
from classifier_training.inference.onnx_classifier import ONNXClassifier
from classifier_training.models.classifier import ImageClassifier
from classifier_training.synthetic.cli import main as synth_main
from classifier_training.synthetic.config import SynthConfig
from classifier_training.training.builders import build_datamodule, build_model
from tests.helpers import quiet_trainer, write_jsonl_split
from tests.inference_support import (
    ChannelArgmax,
    TrainedRun,
    color_contract,
    write_color_image,
)

# -- post-hoc logit adjustment -------------------------------------------------


def test_posthoc_adjustment_reproduces_a_hand_computed_prediction_change() -> None:
    # Priors 0.8, 0.15, 0.05: subtracting log(prior) adds 0.223, 1.897, 2.996.
    logits = np.array([[2.0, 1.5, 0.0], [4.0, 0.0, 0.0]])
    adjusted = adjust_logits(logits, [80, 15, 5], tau=1.0)
    by_hand = [
        [2.0 - math.log(0.8), 1.5 - math.log(0.15), 0.0 - math.log(0.05)],
        [4.0 - math.log(0.8), 0.0 - math.log(0.15), 0.0 - math.log(0.05)],
    ]
    assert adjusted == pytest.approx(np.array(by_hand))
    assert logits.argmax(1).tolist() == [0, 0]
    assert adjusted.argmax(1).tolist() == [1, 0]  # the first row changes class
    assert adjust_logits(logits, [80, 15, 5], tau=0.0).tolist() == logits.tolist()
    uniform = adjust_logits(logits, [4, 4, 4], tau=1.0)
    assert uniform - logits == pytest.approx(np.full((2, 3), math.log(3)))


def test_posthoc_adjustment_refuses_bad_input() -> None:
    logits = np.zeros((1, 3))
    with pytest.raises(ValueError, match="tau must be >= 0, got -1"):
        adjust_logits(logits, [1, 2, 3], tau=-1.0)
    with pytest.raises(ValueError, match="2 class priors for 3 model outputs"):
        adjust_logits(logits, [1, 2], tau=1.0)
    with pytest.raises(ValueError, match=r"class index\(es\) \[1\] have no train"):
        adjust_logits(logits, [4, 0, 3], tau=1.0)


# Train counts that make "blue" rare: tau 5 lifts it by 5 * log(1000) over red.
SKEWED = (1, 1000, 1000)


def skewed_color_model(folder: Path, tau: float) -> Path:
    """The colour model (answers known) with a contract that adjusts its logits."""
    folder.mkdir(parents=True, exist_ok=True)
    contract = color_contract().model_copy(
        update={"train_counts": SKEWED, "logit_adjust_tau": tau}
    )
    write_labels_mapping(contract, folder)
    path = folder / "model.onnx"
    export_onnx(ChannelArgmax(), contract, path)
    return path


def test_the_classifier_applies_the_contracts_adjustment(tmp_path: Path) -> None:
    image = write_color_image(tmp_path / "red.png", "red", 0)
    plain = ONNXClassifier(skewed_color_model(tmp_path / "plain", 0.0))
    adjusted = ONNXClassifier(skewed_color_model(tmp_path / "adjusted", 5.0))
    batch = plain.preprocessor.batch([image])
    raw = plain.predict_logits(batch)
    prior = np.asarray(SKEWED, dtype=np.float64) / sum(SKEWED)
    by_hand = raw - 5.0 * np.log(prior)
    assert plain.predict(image).label == "red"
    assert by_hand.argmax() == 0  # blue: the rare class wins after adjustment
    assert adjusted.predict(image).label == "blue"
    assert adjusted.predict_proba(batch) == pytest.approx(softmax(by_hand))


def write_color_splits(root: Path) -> Path:
    """``val/`` and ``test/`` class folders of red, green and blue images."""
    for split in ("val", "test"):
        for i, color in enumerate(("red", "green", "blue") * 2):
            write_color_image(root / split / color / f"{i}.png", color, i)
    return root


def test_evaluate_logit_adjust_refits_the_temperature_and_writes_the_contract(
    tmp_path: Path,
) -> None:
    model = skewed_color_model(tmp_path / "model", 0.0)
    root = write_color_splits(tmp_path / "data")
    out = tmp_path / "eval"
    argv = ["--model", str(model), "--data-root", str(root), "--out", str(out)]
    assert evaluate_main([*argv, "--logit-adjust", "5"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["logit_adjustment"] == {
        "tau": 5.0,
        "source": "--logit-adjust",
        "temperature_fitted_on": "val",
    }
    # Blue (rare in train) lifted by 5 * log(1000) wins every image: 2 of 6 right.
    assert summary["top1"] == pytest.approx(2 / 6)
    assert summary["per_class"]["blue"]["recall"] == 1.0
    mapping = read_labels_mapping(out / "labels_mapping.json")
    assert mapping.logit_adjust_tau == 5.0
    assert mapping.train_counts == SKEWED
    assert summary["calibration"]["temperature"] == mapping.temperature
    assert "tau=5: logits - tau * log(train prior)" in (out / "report.html").read_text()
    # The written contract is what classifier-predict applies.
    image = write_color_image(tmp_path / "red.png", "red", 0)
    assert ONNXClassifier(model, out / "labels_mapping.json").predict(image).label == (
        "blue"
    )
    assert evaluate_main([*argv, "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "summary.json").read_text())
    assert plain["logit_adjustment"] == {"tau": 0.0, "source": "labels mapping"}
    assert plain["top1"] == pytest.approx(1.0)


def test_evaluate_logit_adjust_bad_input_is_one_line(
    tmp_path: Path, color_model: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_color_splits(tmp_path / "data")
    argv = ["--data-root", str(root), "--out", str(tmp_path / "eval")]
    model = skewed_color_model(tmp_path / "model", 0.0)
    assert evaluate_main(["--model", str(model), *argv, "--logit-adjust", "-1"]) == 2
    assert "--logit-adjust must be >= 0, got -1.0" in capsys.readouterr().err
    # The session's colour model records no train counts (no priors).
    assert evaluate_main(["--model", str(color_model), *argv, "--logit-adjust", "1"])
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "needs the train split's class counts" in err


def test_contract_priors_must_fit_the_class_list() -> None:
    stored = color_contract().to_json()
    with pytest.raises(LabelsMappingError, match=r"2 train_counts .* for 3 class"):
        parse_contract(stored | {"train_counts": [4, 5]}, "m.json")
    with pytest.raises(LabelsMappingError, match=r"\['green'\] have no train rows"):
        parse_contract(stored | {"train_counts": [4, 0, 5]}, "m.json")
    with pytest.raises(LabelsMappingError, match="logit_adjust_tau needs the train"):
        parse_contract(stored | {"logit_adjust_tau": 1.0}, "m.json")
    with pytest.raises(LabelsMappingError, match="logit_adjust_tau"):
        parse_contract(
            stored | {"train_counts": [1, 2, 3], "logit_adjust_tau": -1}, "m.json"
        )
    format_4 = {k: v for k, v in stored.items() if k != "train_counts"}
    old = parse_contract(format_4 | {"format_version": 4}, "old.json")
    assert (old.train_counts, old.logit_adjust_tau) == (None, 0.0)


# -- the loss in the model -----------------------------------------------------


def tiny_model(**settings: Any) -> ImageClassifier:
    return ImageClassifier(
        3, class_counts=[80, 15, 5], arch="resnet18", pretrained=False, **settings
    )


def test_model_loss_is_the_configured_one() -> None:
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 1.0, 0.5]])
    targets = torch.tensor([0, 2])
    model = tiny_model(loss="logit_adjusted", logit_adjust_tau=0.5, label_smoothing=0)
    prior = torch.tensor([0.8, 0.15, 0.05]).log()
    expected = torch.nn.functional.cross_entropy(logits + 0.5 * prior, targets)
    assert float(model.loss_fn(logits, targets)) == pytest.approx(float(expected))
    assert model.hparams["class_counts"] == [80, 15, 5]
    assert not any(k.startswith("loss_fn") for k in model.state_dict())


def test_deferred_reweighting_switches_on_in_the_last_epochs() -> None:
    model = tiny_model(class_weighted_loss=True, class_weighted_last_epochs=2)
    assert [model.reweighting_active(e, 5) for e in range(5)] == [
        False, False, False, True, True,
    ]  # fmt: skip
    always = tiny_model(class_weighted_loss=True)
    assert all(always.reweighting_active(e, 5) for e in range(5))


@pytest.mark.parametrize(
    ("settings", "counts", "message"),
    [
        ({"logit_adjust_tau": -0.5}, [8, 5, 3], "model.logit_adjust_tau"),
        ({"loss": "ldam"}, [8, 5], "2 class counts .priors. for 3 classes"),
        ({"loss": "balanced_softmax"}, [8, 0, 3], r"class\(es\) \['1'\] have no"),
        ({"loss": "focal"}, [8, 5, 3], "model.loss"),
        ({"class_weighted_last_epochs": 2}, [8, 5, 3], "class_weighted_loss=true"),
    ],
)
def test_model_loss_bad_input_is_one_line(
    settings: dict[str, Any], counts: list[int], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as error:
        ImageClassifier(
            3, class_counts=counts, arch="resnet18", pretrained=False, **settings
        )
    assert "\n" not in str(error.value)


# -- deferred re-sampling --------------------------------------------------------

TARGETS = [0] * 12 + [1] * 3


def deferred(seed: int = 7) -> DeferredWeightedSampler:
    """The sampler ``data.sampler.defer_epochs=2`` builds (auto weights)."""
    weights = torch.tensor([1 / 12] * 12 + [1 / 3] * 3, dtype=torch.float64)
    sampler = DeferredWeightedSampler(weights, len(TARGETS), 2, seed)
    sampler.schedule(5)
    return sampler


def epoch_draws(sampler: DeferredWeightedSampler, epoch: int) -> list[int]:
    sampler.set_epoch(epoch)
    return list(iter(sampler))


def test_deferred_sampler_switches_at_the_right_epoch() -> None:
    sampler = deferred()
    assert sampler.switch_epoch == 3
    assert [sampler.phase(e) for e in range(5)] == [
        "shuffle", "shuffle", "shuffle", "weighted", "weighted",
    ]  # fmt: skip
    for epoch in range(3):  # every row once, in a new order
        assert sorted(epoch_draws(sampler, epoch)) == list(range(15))
        shares = sampler.expected_class_shares(TARGETS, 2)
        assert shares.tolist() == pytest.approx([12 / 15, 3 / 15])
    weighted = [epoch_draws(sampler, e) for e in (3, 4)]
    assert sampler.expected_class_shares(TARGETS, 2).tolist() == pytest.approx(
        [0.5, 0.5]
    )
    # Drawn with replacement by weight: some row repeats.
    assert any(len(set(draws)) < len(draws) for draws in weighted)


def test_deferred_sampler_resumes_across_the_switch() -> None:
    uninterrupted = deferred()
    history = [epoch_draws(uninterrupted, e) for e in range(5)]
    # A resumed run rebuilds the sampler and Lightning sets the saved epoch.
    for epoch in (2, 3, 4):
        assert epoch_draws(deferred(), epoch) == history[epoch]
    assert epoch_draws(deferred(seed=8), 3) != history[3]


def test_deferred_sampler_needs_an_epoch_count() -> None:
    with pytest.raises(ConfigError, match=r"set trainer\.max_epochs"):
        deferred().schedule(None)
    short = deferred()
    assert short.schedule(1) == 0  # fewer epochs than deferred: weighted throughout


# -- rare classes ----------------------------------------------------------------


def test_rare_classes_are_the_rarest_third_by_train_count() -> None:
    counts = [50, 3, 20, 3, 9, 40]
    assert rare_classes(counts).tolist() == [1, 3]  # ties: lower index first
    targets = np.array([1, 1, 3, 0, 2])
    predicted = np.array([1, 0, 3, 0, 0])
    assert top1_rare(predicted, targets, counts) == pytest.approx(2 / 3)
    assert top1_rare(predicted[3:], targets[3:], counts) is None


def test_the_run_reports_rare_class_accuracy(trained_run: TrainedRun) -> None:
    metrics = trained_run.metrics
    for split in ("val", "test"):
        assert 0.0 <= metrics[split]["top1_rare"] <= 1.0  # type: ignore[index]
    long_tail = metrics["long_tail"]
    assert isinstance(long_tail, dict)
    figure = trained_run.run_dir / long_tail["figure"]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    per_class = metrics["test"]["per_class"]  # type: ignore[index]
    assert {row["train_count"] for row in per_class.values()} == {6}
    mapping = read_labels_mapping(trained_run.run_dir / "labels_mapping.json")
    assert mapping.train_counts == (6, 6, 6)
    assert mapping.logit_adjust_tau == 0.0


# -- the long-tailed synthetic set -------------------------------------------------


def test_synth_long_tail_counts_are_zipf_like_and_eval_balanced() -> None:
    config = SynthConfig(
        out_dir=Path("x"), per_class=100, classes=("0", "1", "2", "3", ""),
        long_tail=10,
    )  # fmt: skip
    counts = [config.train_count(c) for c in ("", "0", "1", "2", "3")]
    a = math.log(10) / math.log(5)
    assert counts == [round(100 * (r + 1) ** -a) for r in range(5)]
    assert counts[0] / counts[-1] == pytest.approx(10, rel=0.05)
    assert config.split_count("test", "3") == config.split_count("test", "") == 20
    balanced = SynthConfig(out_dir=Path("x"), per_class=100)
    assert "long_tail" not in balanced.fingerprint()  # old datasets stay as they are
    assert config.fingerprint()["long_tail"] == 10


def test_synth_long_tail_bad_value_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = synth_main(["--out", str(tmp_path), "--long-tail", "0.5", "-q"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "long_tail" in err


def test_contract_round_trip_keeps_the_counts(tmp_path: Path) -> None:
    contract = DeploymentContract.model_validate(
        color_contract().model_dump() | {"train_counts": (3, 2, 1)}
    )
    written = json.loads(write_labels_mapping(contract, tmp_path).read_text())
    assert written["train_counts"] == [3, 2, 1]
    assert written["num_classes"] == 3  # the seed's keys stay
    assert read_labels_mapping(tmp_path / "labels_mapping.json") == contract


# -- end to end: a long-tail loss and deferred sampling, resumed across the switch


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Checkpoint directory")
def test_a_long_tail_run_resumes_across_the_deferred_switch(tmp_path: Path) -> None:
    root = tmp_path / "data"
    write_jsonl_split(root / "train", ["a"], 12)
    write_jsonl_split(root / "train", ["b"], 3, subdir="more")
    write_jsonl_split(root / "valid", ["a", "b"], 1)
    overrides = [
        f"data.data_root={root}",
        "data.image_size=16",
        "data.batch_size=5",
        "data.num_workers=0",
        "data.augment_on=workers",
        "data.sampler.defer_epochs=1",
        "model.loss=balanced_softmax",
        "trainer.max_epochs=3",
    ]
    with initialize_config_module("classifier_training.conf", version_base="1.3"):
        cfg = compose("train_demo", overrides=overrides)
    saved = tmp_path / "checkpoints"

    def fit(ckpt_path: Path | None = None) -> list[dict[str, object]]:
        datamodule = build_datamodule(cfg)
        model = build_model(cfg, datamodule)
        monitor = SamplerDistributionCallback(tmp_path)
        every_epoch = ModelCheckpoint(saved, filename="{epoch}", save_top_k=-1)
        trainer = quiet_trainer(
            max_epochs=3,
            callbacks=[monitor, every_epoch],
            enable_checkpointing=True,
            limit_val_batches=0,
        )
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt_path)
        return monitor.epochs

    uninterrupted = fit()
    assert [r["phase"] for r in uninterrupted] == ["shuffle", "shuffle", "weighted"]
    assert uninterrupted[0]["drawn"] == [12, 3]  # a plain shuffle: every row once
    checkpoint = torch.load(saved / "epoch=1.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["class_counts"] == [12, 3]
    resumed = fit(saved / "epoch=1.ckpt")
    assert resumed[-1]["epoch"] == 2
    assert resumed[-1]["phase"] == "weighted"
    assert resumed[-1]["draws_digest"] == uninterrupted[-1]["draws_digest"]
