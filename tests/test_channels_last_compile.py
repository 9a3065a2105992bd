"""``model.channels_last`` and ``model.compile``: training, EMA and ONNX export."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import pytest
import torch

from classifier_training.callbacks.ema import EMACallback
from classifier_training.config import ConfigError, DataModuleConfig
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.export import export_onnx
from classifier_training.models import ImageClassifier
from tests.helpers import make_jsonl_dataset, quiet_trainer


def _datamodule(root: Path) -> ImageFolderDataModule:
    data = make_jsonl_dataset(root / "data", ("", "7", "23"), per_class=6, size=24)
    config = DataModuleConfig(
        data_root=data, image_size=24, batch_size=6, num_workers=0
    )
    datamodule = ImageFolderDataModule(config, arch="resnet18", accelerator="cpu")
    datamodule.setup("fit")
    return datamodule


def _model(dm: ImageFolderDataModule, **settings: Any) -> ImageClassifier:
    return ImageClassifier(
        num_classes=dm.num_classes,
        class_names=dm.class_names,
        arch="resnet18",
        pretrained=False,
        optimizer=functools.partial(torch.optim.AdamW, lr=3e-3),
        **settings,
    )


def _fit(model: ImageClassifier, dm: ImageFolderDataModule) -> EMACallback:
    ema = EMACallback(decay=0.9)
    trainer = quiet_trainer(
        max_epochs=1, limit_train_batches=2, limit_val_batches=1, callbacks=[ema]
    )
    trainer.fit(model, datamodule=dm)
    return ema


def _is_channels_last(model: ImageClassifier) -> bool:
    weight = model.network.conv1.weight
    assert isinstance(weight, torch.Tensor)
    return weight.is_contiguous(memory_format=torch.channels_last) and not (
        weight.is_contiguous()
    )


def _export_and_verify(
    model: ImageClassifier, dm: ImageFolderDataModule, path: Path
) -> None:
    result = export_onnx(
        model.network, dm.contract, path, verify_images=dm.eval_images("val", 4)
    )
    assert path.is_file()
    assert result.max_abs_diff <= 1e-4


def test_channels_last_trains_with_ema_and_exports(tmp_path: Path) -> None:
    dm = _datamodule(tmp_path)
    model = _model(dm, channels_last=True)
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    ema = _fit(model, dm)
    assert model.use_channels_last
    assert _is_channels_last(model)
    assert ema._average_model is not None  # the EMA copy was made and updated
    after = model.network.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    _export_and_verify(model, dm, tmp_path / "model.onnx")


def test_channels_last_defaults_to_cuda_only(tmp_path: Path) -> None:
    dm = _datamodule(tmp_path)
    model = _model(dm)  # channels_last=None
    _fit(model, dm)
    assert not model.use_channels_last
    assert not _is_channels_last(model)


def test_failed_compilation_is_one_line_naming_the_key(tmp_path: Path) -> None:
    dm = _datamodule(tmp_path)
    model = _model(dm, compile=True)

    def failing_backend(graph: Any, example_inputs: Any) -> Any:
        raise RuntimeError("no C++ compiler found\nsecond line")

    # What on_fit_start does, with a backend that fails like a broken toolchain.
    model.network.compile(backend=failing_backend)
    model._check_compiled_call = True
    try:
        with pytest.raises(ConfigError) as info:
            model(torch.zeros(2, 3, 24, 24))
    finally:
        torch._dynamo.reset()
    message = str(info.value)
    assert message.startswith("model.compile=true: torch.compile failed")
    assert "no C++ compiler found" in message
    assert "\n" not in message
    assert "model.compile=false" in message


@pytest.mark.slow
def test_compiled_training_keeps_ema_checkpoint_names_and_export(
    tmp_path: Path,
) -> None:
    dm = _datamodule(tmp_path)
    model = _model(dm, compile=True, channels_last=True)
    try:
        ema = _fit(model, dm)
    finally:
        torch._dynamo.reset()
    assert model._check_compiled_call is False  # the first call compiled fine
    # In-place compilation: parameter names stay those of the plain network.
    assert all("_orig_mod" not in k for k in model.state_dict())
    assert ema._average_model is not None
    _export_and_verify(model, dm, tmp_path / "model.onnx")
