"""MixUp/CutMix at batch level: targets, schedule, loss, accuracy, evaluation."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from classifier_training.config import ConfigError
from classifier_training.models.base import BaseClassificationModel
from classifier_training.models.classifier import ImageClassifier
from classifier_training.models.mixing import BatchMixer, dominant_labels

NUM_CLASSES = 5
# Training steps outside a Trainer: self.log() only warns.
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log")


def one_hot_images(labels: torch.Tensor, size: int = 8) -> torch.Tensor:
    """Image ``i`` is the one-hot vector of its label in every pixel (channels =
    classes), so the channel means of any pixel mix are the shares of its
    sources: exactly what the soft target must say."""
    hot = F.one_hot(labels, NUM_CLASSES).float()
    return hot[:, :, None, None].expand(-1, -1, size, size).contiguous()


LABELS = torch.tensor([0, 1, 2, 3, 4, 0, 1, 2])


@pytest.mark.parametrize(
    ("mixup", "cutmix"), [(0.4, 0.0), (0.0, 1.0), (0.4, 1.0)], ids=str
)
def test_targets_are_the_pixel_shares(mixup: float, cutmix: float) -> None:
    mixer = BatchMixer(NUM_CLASSES, mixup_alpha=mixup, cutmix_alpha=cutmix)
    torch.manual_seed(0)
    mixed_any = False
    for _ in range(10):
        images, targets = mixer(one_hot_images(LABELS), LABELS)
        shares = images.mean(dim=(2, 3))
        torch.testing.assert_close(targets, shares, atol=1e-5, rtol=0)
        torch.testing.assert_close(targets.sum(1), torch.ones(len(LABELS)))
        mixed_any |= bool((targets.max(1).values < 1).any())
    assert mixed_any


def test_probability_zero_and_alpha_zero_leave_the_batch() -> None:
    images = one_hot_images(LABELS)
    for mixer in (
        BatchMixer(NUM_CLASSES, mixup_alpha=1.0, prob=0.0),
        BatchMixer(NUM_CLASSES),
    ):
        assert not mixer.enabled
        state = torch.get_rng_state()
        out, targets = mixer(images, LABELS)
        assert torch.equal(torch.get_rng_state(), state)  # no random draw
        assert torch.equal(out, images)
        assert torch.equal(targets, F.one_hot(LABELS, NUM_CLASSES).float())


def test_probability_mixes_that_share_of_batches() -> None:
    mixer = BatchMixer(NUM_CLASSES, cutmix_alpha=1.0, prob=0.3)
    torch.manual_seed(1)
    mixed = 0
    for _ in range(400):
        _, targets = mixer(one_hot_images(LABELS, 4), LABELS)
        mixed += bool((targets.max(1).values < 1).any())
    assert 0.22 < mixed / 400 < 0.38


def test_dominant_labels() -> None:
    targets = torch.tensor([[0.7, 0.3, 0.0], [0.2, 0.0, 0.8], [0.0, 1.0, 0.0]])
    assert dominant_labels(targets).tolist() == [0, 2, 1]


class Tiny(BaseClassificationModel):
    def build_network(self, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.Flatten(), nn.Linear(NUM_CLASSES * 4 * 4, num_classes))


def tiny(**kwargs: float) -> Tiny:
    torch.manual_seed(0)
    return Tiny(
        NUM_CLASSES,
        class_weights=torch.tensor([1.0, 2.0, 0.5, 1.0, 3.0]),
        label_smoothing=0.1,
        class_weighted_loss=True,
        **kwargs,  # type: ignore[arg-type]
    )


def test_off_for_the_last_epochs() -> None:
    model = tiny(mixup_alpha=0.2, mixup_off_last_epochs=2)
    assert [model.mixing_active(e, 5) for e in range(5)] == [1, 1, 1, 0, 0]
    assert model.mixing_active(10, None)
    assert not tiny().mixing_active(0, 5)  # off by default


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"model\.mixup_alpha"):
        tiny(mixup_alpha=-1.0)
    with pytest.raises(ConfigError, match=r"model\.mixup_prob"):
        tiny(mixup_alpha=1.0, mixup_prob=1.5)
    with pytest.raises(ConfigError, match=r"model\.mixup_off_last_epochs"):
        tiny(mixup_off_last_epochs=-1)


def test_training_loss_with_mixing() -> None:
    """Smoothed, class-weighted cross-entropy against the mixed targets (computed
    here from the same draw)."""
    model = tiny(mixup_alpha=1.0, cutmix_alpha=1.0)
    images = one_hot_images(LABELS, 4)
    torch.manual_seed(3)
    mixed, targets = model.mixer(images, LABELS)
    torch.manual_seed(3)
    loss = model.training_step({"images": images, "labels": LABELS}, 0)
    logits = model(mixed)
    smoothed = targets * 0.9 + 0.1 / NUM_CLASSES
    log_probs = logits.log_softmax(1)
    by_hand = -(model.class_weights * smoothed * log_probs).sum(1).mean()
    torch.testing.assert_close(loss, by_hand)
    assert not torch.equal(mixed, images)


class Reader(BaseClassificationModel):
    """Predicts the class with the largest pixel share (the dominant one)."""

    def build_network(self, num_classes: int) -> nn.Module:
        return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())


def test_training_accuracy_is_against_the_dominant_label() -> None:
    model = Reader(NUM_CLASSES, mixup_alpha=1.0)
    images = one_hot_images(LABELS, 4)
    # A draw that mixes the images mostly with partners of other classes.
    seed = next(
        s
        for s in range(50)
        if torch.manual_seed(s) is not None
        and (model.mixer(images, LABELS)[1].argmax(1) != LABELS).any()
    )
    torch.manual_seed(seed)
    model.training_step({"images": images, "labels": LABELS}, 0)
    assert model.train_acc.compute() == 1.0


def test_without_mixing_the_step_is_unchanged() -> None:
    model = tiny()
    images = one_hot_images(LABELS, 4)
    loss = model.training_step({"images": images, "labels": LABELS}, 0)
    expected = F.cross_entropy(
        model(images), LABELS, weight=model.class_weights, label_smoothing=0.1
    )
    torch.testing.assert_close(loss, expected)


def test_validation_never_mixes() -> None:
    model = tiny(mixup_alpha=1.0, cutmix_alpha=1.0)
    images = one_hot_images(LABELS, 4)
    out = model.validation_step({"images": images, "labels": LABELS}, 0)
    logits = model(images)
    torch.testing.assert_close(out["preds"], logits.argmax(1))
    torch.testing.assert_close(
        model.val_loss.compute(), F.cross_entropy(logits, LABELS)
    )


def test_image_classifier_takes_the_keys() -> None:
    model = ImageClassifier(
        3, arch="resnet18", pretrained=False, cutmix_alpha=1.0, mixup_prob=0.5
    )
    assert model.mixer.enabled
    assert model.mixer.prob == 0.5
    assert model.hparams["cutmix_alpha"] == 1.0
