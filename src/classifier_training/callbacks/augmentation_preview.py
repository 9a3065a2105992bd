"""``augmentation_preview.png``: what the network is trained on, at fit start."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from classifier_training.callbacks._common import (
    class_names,
    get_datamodule,
    should_write,
)
from classifier_training.callbacks.visualization import _to_uint8, choose_fixed_indices
from classifier_training.core.run_files import AUGMENTATION_PREVIEW_FILE
from classifier_training.plots import (
    AugmentedTile,
    render_augmentation_grid,
    save_image,
)


class AugmentationPreviewCallback(Callback):
    """Write ``augmentation_preview.png`` once, when fit starts.

    ``num_images`` fixed training images (spread over the classes) in rows,
    each with ``num_draws`` augmented draws through the exact training pipeline:
    the data module's train transform, then the model's MixUp/CutMix of the first
    epoch when on (mixed within the batch of the shown images). Each tile carries
    its target: the label, or the classes and shares of a mixed image.

    It draws its random numbers from a forked generator with a fixed seed, so
    the picture is the same for a given config and training draws exactly the
    numbers it would without this callback.

    Args:
        output_dir: The run folder.
        num_images: Training images shown (rows).
        num_draws: Augmented draws per image (columns).
        tile: Tile side in pixels.
        seed: Seed of the preview's own random draws.
    """

    def __init__(
        self,
        output_dir: str | Path,
        num_images: int = 8,
        num_draws: int = 6,
        tile: int = 96,
        seed: int = 0,
    ) -> None:
        self.output_dir = Path(output_dir)
        self.num_images = num_images
        self.num_draws = num_draws
        self.tile = tile
        self.seed = seed

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Draw and write the preview (global rank 0)."""
        if not should_write(trainer):
            return
        rows = self.preview_rows(trainer, pl_module)
        if not rows:
            return
        grid = render_augmentation_grid(
            rows,
            f"training images as the network sees them ({self.num_draws} draws each)",
            tile=self.tile,
        )
        save_image(grid, self.output_dir / AUGMENTATION_PREVIEW_FILE)

    def preview_rows(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        epoch: int | None = None,
    ) -> list[tuple[str, list[AugmentedTile]]]:
        """The fixed training images' labels and their augmented draws.

        Args:
            trainer: The trainer (its data module supplies the images).
            pl_module: The model (its ``mix_batch``, when it has one, mixes).
            epoch: The epoch whose pipeline is shown (default: the current one;
                MixUp/CutMix may be off in the last epochs).

        Returns:
            One ``(label, draws)`` row per image (empty without train rows).
        """
        datamodule = get_datamodule(trainer, type(self).__name__)
        class_to_idx = datamodule.contract.class_to_idx
        targets = [class_to_idx[s.label] for s in datamodule.split_samples("train")]
        indices = choose_fixed_indices(targets, self.num_images)
        if not indices:
            return []
        names = class_names(pl_module)
        contract = datamodule.contract
        mean = torch.tensor(contract.mean).view(1, 3, 1, 1)
        std = torch.tensor(contract.std).view(1, 3, 1, 1)
        mix = getattr(pl_module, "mix_batch", None)
        epoch = trainer.current_epoch if epoch is None else epoch
        columns: list[list[AugmentedTile]] = []
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            for _ in range(self.num_draws):
                batch = datamodule.preview_batch(indices)
                images, labels = batch["images"], batch["labels"]
                soft = None
                if mix is not None:
                    with torch.no_grad():
                        images, soft = mix(images, labels, epoch)
                pixels = _to_uint8(images, mean, std)
                column = []
                for row, image in enumerate(pixels):
                    if soft is None:
                        target = [(names[int(labels[row])], 1.0)]
                    else:
                        shares = soft[row].float()
                        order = shares.argsort(descending=True)
                        target = [
                            (names[int(c)], float(shares[c]))
                            for c in order[:2]
                            if float(shares[c]) > 0.005
                        ]
                    column.append(AugmentedTile(image=image, target=target))
                columns.append(column)
        return [
            (names[targets[index]], [column[r] for column in columns])
            for r, index in enumerate(indices)
        ]
