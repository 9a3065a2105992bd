"""EMA: the warm-up formula, the scored weights in "best", and resuming."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from loguru import logger

from classifier_training.callbacks.ema import EMACallback, WarmupEMA
from classifier_training.config import DataModuleConfig
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.models import ImageClassifier
from classifier_training.models.optim import warmup_cosine
from tests.helpers import make_jsonl_dataset, quiet_trainer

STEPS_PER_EPOCH = 3  # 18 train images, batch 6


def test_warmup_decay_formula() -> None:
    ema = WarmupEMA(decay=0.9999)
    assert ema.decay_at(1) == pytest.approx(2 / 11)
    assert ema.decay_at(100) == pytest.approx(101 / 110)
    assert ema.decay_at(10**6) == 0.9999
    assert WarmupEMA(decay=0.99, warmup=False).decay_at(1) == 0.99
    with pytest.raises(ValueError, match="decay"):
        WarmupEMA(decay=1.0)


def test_update_moves_towards_the_weights() -> None:
    ema = WarmupEMA(decay=0.9999)
    averaged = [torch.zeros(3), torch.zeros(2, 2)]
    current = [torch.ones(3), torch.full((2, 2), 2.0)]
    ema(averaged, current, torch.tensor(100))
    weight = 1 - 101 / 110
    torch.testing.assert_close(averaged[0], torch.full((3,), weight))
    torch.testing.assert_close(averaged[1], torch.full((2, 2), 2 * weight))
    counters = [torch.tensor(3)]
    ema(counters, [torch.tensor(7)], torch.tensor(5))
    assert int(counters[0]) == 7  # integer buffers are counters: copied


def test_update_every_n_steps() -> None:
    callback = EMACallback(update_every_n_steps=4)
    assert [callback.should_update(step_idx=i) for i in range(8)] == [
        False,
        False,
        False,
        True,
        False,
        False,
        False,
        True,
    ]
    assert not callback.should_update(epoch_idx=0)
    with pytest.raises(ValueError, match="update_every_n_steps"):
        EMACallback(update_every_n_steps=0)


@dataclass
class EmaRun:
    datamodule: ImageFolderDataModule
    checkpoint: ModelCheckpoint
    ema: EMACallback
    folder: Path
    trainer: L.Trainer
    model: ImageClassifier


def _datamodule(root: Path) -> ImageFolderDataModule:
    data = make_jsonl_dataset(root / "data", ("", "7", "23"), per_class=6, size=24)
    datamodule = ImageFolderDataModule(
        DataModuleConfig(data_root=data, image_size=24, batch_size=6, num_workers=0),
        arch="resnet18",
    )
    datamodule.setup("fit")
    return datamodule


def _model(datamodule: ImageFolderDataModule) -> ImageClassifier:
    return ImageClassifier(
        num_classes=datamodule.num_classes,
        class_names=datamodule.class_names,
        arch="resnet18",
        pretrained=False,
        optimizer=functools.partial(torch.optim.AdamW, lr=3e-3, weight_decay=0.05),
        scheduler=functools.partial(warmup_cosine, warmup_epochs=0, min_lr_ratio=0.01),
    )


def _trainer(max_epochs: int, callbacks: list[Any]) -> L.Trainer:
    return quiet_trainer(
        max_epochs=max_epochs,
        callbacks=callbacks,
        enable_checkpointing=True,
        deterministic=True,
    )


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory: pytest.TempPathFactory) -> EmaRun:
    """Two epochs with EMA, keeping the best checkpoint by validation loss."""
    root = tmp_path_factory.mktemp("ema")
    L.seed_everything(0)
    datamodule = _datamodule(root)
    checkpoint = ModelCheckpoint(
        dirpath=root / "checkpoints",
        filename="best",
        monitor="val/loss",  # continuous: tells EMA and raw weights apart
        mode="min",
    )
    # last.ckpt every epoch, as callbacks.last_checkpoint does (Lightning's
    # save_last=True writes it only in epochs that also save a best checkpoint).
    last = ModelCheckpoint(dirpath=root / "checkpoints", filename="last")
    ema = EMACallback()
    trainer, model = _trainer(2, [ema, checkpoint, last]), _model(datamodule)
    trainer.fit(model, datamodule=datamodule)
    return EmaRun(datamodule, checkpoint, ema, root, trainer, model)


def _val_loss(datamodule: ImageFolderDataModule, state: dict[str, Any]) -> float:
    model = _model(datamodule)
    model.load_state_dict(state)
    (results,) = _trainer(1, []).validate(model, datamodule=datamodule, verbose=False)
    return float(results["val/loss"])


def test_best_checkpoint_holds_the_weights_that_were_scored(ema_run: EmaRun) -> None:
    best = torch.load(ema_run.checkpoint.best_model_path, weights_only=True)
    assert all(k.startswith(("network.", "class_weights")) for k in best["state_dict"])
    score = float(ema_run.checkpoint.best_model_score)  # type: ignore[arg-type]
    # A plain model (no EMA callback) with the saved state_dict scores the same.
    assert _val_loss(ema_run.datamodule, best["state_dict"]) == pytest.approx(
        score, abs=1e-5
    )
    # The raw weights are kept too, and they are not what was scored.
    raw = best["current_model_state"]
    assert abs(_val_loss(ema_run.datamodule, raw) - score) > 1e-4
    assert best["hyper_parameters"]["num_classes"] == 3
    assert best["hyper_parameters"]["class_names"] == ["", "23", "7"]


def test_evaluating_the_best_checkpoint_after_fit_uses_its_ema_weights(
    ema_run: EmaRun,
) -> None:
    """What train.py does after fit: validate and test ``best.ckpt`` with the same
    trainer (EMA callback attached). Both must score the saved (EMA) weights, the
    ones a plain model loaded from the checkpoint scores and the ONNX export ships.
    """
    best_path = ema_run.checkpoint.best_model_path
    best = torch.load(best_path, weights_only=True)
    plain = _model(ema_run.datamodule)
    plain.load_state_dict(best["state_dict"])
    expected = {
        **_trainer(1, []).validate(plain, ema_run.datamodule, verbose=False)[0],
        **_trainer(1, []).test(plain, ema_run.datamodule, verbose=False)[0],
    }
    trainer, model = ema_run.trainer, ema_run.model
    got = {
        **trainer.validate(model, ema_run.datamodule, best_path, verbose=False)[0],
        **trainer.test(model, ema_run.datamodule, best_path, verbose=False)[0],
    }
    for key in ("val/loss", "test/loss", "test/acc_top1"):
        assert got[key] == pytest.approx(expected[key], abs=1e-6), key
    for key, value in best["state_dict"].items():
        torch.testing.assert_close(model.state_dict()[key], value, msg=key)


def test_ema_is_updated_every_step(ema_run: EmaRun) -> None:
    assert ema_run.ema.num_updates == 2 * STEPS_PER_EPOCH
    last = torch.load(ema_run.folder / "checkpoints/last.ckpt", weights_only=True)
    assert int(last["averaging_state"]["n_averaged"]) == 2 * STEPS_PER_EPOCH
    assert last["callbacks"]  # the callback's own state is saved too


def test_resumed_run_continues_the_average(ema_run: EmaRun) -> None:
    last_path = ema_run.folder / "checkpoints/last.ckpt"
    resumed = EMACallback()
    checkpoint = ModelCheckpoint(dirpath=ema_run.folder / "resumed", save_last=True)
    trainer = _trainer(3, [resumed, checkpoint])
    model = _model(ema_run.datamodule)
    trainer.fit(model, datamodule=ema_run.datamodule, ckpt_path=str(last_path))
    # 2 epochs before the resume + 1 after: the count continues, not restarts.
    assert resumed.num_updates == 3 * STEPS_PER_EPOCH
    assert resumed.current_decay == pytest.approx(WarmupEMA().decay_at(9))
    after = torch.load(ema_run.folder / "resumed/last.ckpt", weights_only=True)
    assert int(after["averaging_state"]["n_averaged"]) == 3 * STEPS_PER_EPOCH


def test_resume_restores_the_average_itself(ema_run: EmaRun) -> None:
    last_path = ema_run.folder / "checkpoints/last.ckpt"
    last = torch.load(last_path, weights_only=True)
    restored = EMACallback()
    model = _model(ema_run.datamodule)
    # Resuming at the end (no steps left): the loaded average must be the saved
    # one, its update count included, and the model gets the raw weights back.
    _trainer(2, [restored]).fit(
        model, datamodule=ema_run.datamodule, ckpt_path=str(last_path)
    )
    assert restored.num_updates == 2 * STEPS_PER_EPOCH
    average = restored._average_model
    assert average is not None
    averaged = average.module.state_dict()
    for key, value in last["state_dict"].items():
        torch.testing.assert_close(averaged[key], value, msg=key)
        torch.testing.assert_close(
            model.state_dict()[key], last["current_model_state"][key], msg=key
        )


def test_resume_with_another_decay_is_reported() -> None:
    saved = EMACallback(decay=0.999).state_dict()
    messages: list[str] = []
    sink = logger.add(lambda m: messages.append(str(m)), level="WARNING")
    try:
        EMACallback(decay=0.999).load_state_dict(saved)
        assert messages == []
        EMACallback(decay=0.9999).load_state_dict(saved)
    finally:
        logger.remove(sink)
    assert len(messages) == 1
    assert "decay=0.999," in messages[0]
    assert "decay=0.9999," in messages[0]
