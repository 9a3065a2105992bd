"""The model's settings: the keys of the ``model`` config node, declared once.

A model class names its settings model in ``settings_model``; its constructor
takes the run-time arguments (classes, loss weights, optimizer and schedule
partials) and the settings as keywords, validated here: a bad value is one
:class:`~classifier_training.config.ConfigError` line naming ``model.<key>``.
``@register`` (:mod:`classifier_training.utils.hydra`) builds the Hydra node of a
model option from the same fields, so every default is written once, here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from classifier_training.config import ConfigError, format_validation_error
from classifier_training.models.losses import LossName


class ModelSettings(BaseModel):
    """The training recipe every model shares (``model.*`` keys).

    Attributes:
        pretrained: Start from pretrained weights, where the network has them
            (``ImageClassifier``: the architecture's ImageNet weights). Shared
            so that a recipe training from scratch (the demo) suits any model.
        label_smoothing: Label smoothing of the training loss.
        class_weighted_loss: Weight the training loss by inverse class frequency.
        class_weighted_last_epochs: With ``class_weighted_loss``, weight only
            the last N epochs (deferred re-weighting, Cao et al., NeurIPS
            2019: features learnt on the plain distribution first); 0 = every
            epoch.
        loss: The training loss (:mod:`classifier_training.models.losses`):
            ``cross_entropy``, ``logit_adjusted``, ``balanced_softmax`` or
            ``ldam``. Every one takes label smoothing, class weights and the
            soft targets of MixUp/CutMix.
        logit_adjust_tau: ``tau`` of ``loss=logit_adjusted`` (the logits see
            ``+ tau * log(prior)`` in the loss; raw logits at inference).
        ldam_max_margin: The largest LDAM margin (that of the rarest class).
        ldam_scale: Factor on the LDAM logits before the cross-entropy.
        mixup_alpha: MixUp's Beta parameter for training batches; 0 = off.
        cutmix_alpha: CutMix's Beta parameter; 0 = off. With both on, each mixed
            batch uses one of them (equal odds), as timm does.
        mixup_prob: Probability that a training batch is mixed.
        mixup_off_last_epochs: Train the last N epochs without mixing (on clean
            images, closer to what validation sees).
        scale_lr_with_batch: Linear scaling rule (Goyal et al., 2017): multiply
            the optimizer's learning rate(s) by ``effective batch /
            lr_reference_batch``, where the effective batch is per device x
            devices x nodes x gradient accumulation (``classifier-train`` sets
            the model's ``effective_batch_size``). Off by default:
            ``optimizer.lr`` is then used as given, whatever the number of GPUs.
        lr_reference_batch: The effective batch ``optimizer.lr`` was tuned for.
        channels_last: Train in the channels-last memory format (faster
            convolutions on GPUs with tensor cores). ``None``: on when the model
            runs on a CUDA GPU. Decided when fitting starts.
        compile: Compile the network with ``torch.compile`` when fitting starts
            (the first batch then takes a while); checkpoints, EMA and the ONNX
            export see the plain network.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    pretrained: bool = True
    label_smoothing: float = Field(default=0.1, ge=0, le=1)
    class_weighted_loss: bool = False
    class_weighted_last_epochs: int = Field(default=0, ge=0)
    loss: LossName = "cross_entropy"
    logit_adjust_tau: float = Field(default=1.0, ge=0)
    ldam_max_margin: float = Field(default=0.5, gt=0)
    ldam_scale: float = Field(default=1.0, gt=0)
    mixup_alpha: float = Field(default=0.0, ge=0)
    cutmix_alpha: float = Field(default=0.0, ge=0)
    mixup_prob: float = Field(default=1.0, ge=0, le=1)
    mixup_off_last_epochs: int = Field(default=0, ge=0)
    scale_lr_with_batch: bool = False
    lr_reference_batch: int = Field(default=256, ge=1)
    channels_last: bool | None = None
    compile: bool = False

    @model_validator(mode="after")
    def _reweighting_needs_weights(self) -> Self:
        if self.class_weighted_last_epochs and not self.class_weighted_loss:
            raise ValueError(
                "class_weighted_last_epochs defers the class weights: set "
                "model.class_weighted_loss=true as well"
            )
        return self

    @classmethod
    def from_keys(cls, values: Mapping[str, Any]) -> Self:
        """Validate the ``model.*`` keys a constructor was given.

        Args:
            values: Keyword arguments of the model's constructor, less the
                run-time ones.

        Returns:
            The settings.

        Raises:
            ConfigError: One line per bad key, naming ``model.<key>``.
        """
        try:
            return cls.model_validate(dict(values))
        except ValidationError as error:
            raise ConfigError(format_validation_error(error, "model")) from None


class ImageClassifierSettings(ModelSettings):
    """Settings of a network chosen by name (``ImageClassifier``).

    Attributes:
        arch: A torchvision classification model name (``resnet18``,
            ``efficientnet_b0``, ``mobilenet_v3_large``, ``convnext_tiny``, ...)
            or ``timm/<name>`` (needs ``timm``).
        weights_path: Start from a local weights file instead (takes precedence).
    """

    arch: str = Field(default="resnet18", min_length=1)
    weights_path: str | None = None
