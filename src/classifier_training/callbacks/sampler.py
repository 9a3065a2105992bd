"""Sampler monitoring: classes drawn each epoch against what the weights expect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import numpy.typing as npt
import torch
from lightning.pytorch.callbacks import Callback
from loguru import logger
from matplotlib.figure import Figure

from classifier_training.callbacks._common import (
    get_datamodule,
    is_fitting,
    should_write,
)
from classifier_training.core.io import atomic_write_json
from classifier_training.core.readers import display_name, natural_order, shown_name
from classifier_training.core.run_files import SAMPLER_JSON, SAMPLER_PNG
from classifier_training.data.datamodule import ImageFolderDataModule
from classifier_training.plots import save_figure


def drift_test(
    drawn: npt.NDArray[np.int64], expected_share: npt.NDArray[np.float64]
) -> dict[str, Any]:
    """Pearson chi-square test of drawn class counts against expected shares.

    With ``n`` draws, class ``c`` is expected ``e_c = n * share_c`` times;
    ``chi2 = sum (o_c - e_c)^2 / e_c`` over classes with ``e_c > 0`` has ``K - 1``
    degrees of freedom under correct sampling, and its p-value is the upper
    regularised incomplete gamma ``Q(dof / 2, chi2 / 2)``. Draws of a class with
    zero expected share make the p-value 0. The per-class z-score
    ``(o - e) / sqrt(e (1 - share))`` names the worst class.

    Args:
        drawn: Draw counts per class.
        expected_share: Expected fraction per class (sums to 1).

    Returns:
        ``{"draws", "chi2", "dof", "p_value", "worst_class_index", "worst_z"}``.
    """
    n = float(drawn.sum())
    expected = expected_share * n
    live = expected > 0
    impossible = bool((drawn[~live] > 0).any())
    chi2 = float((((drawn - expected) ** 2)[live] / expected[live]).sum())
    dof = max(int(live.sum()) - 1, 1)
    p_value = (
        0.0
        if impossible
        else float(
            torch.special.gammaincc(
                torch.tensor(dof / 2, dtype=torch.float64),
                torch.tensor(chi2 / 2, dtype=torch.float64),
            )
        )
    )
    spread = np.sqrt(np.maximum(expected * (1 - expected_share), 1e-12))
    z = np.where(live, (drawn - expected) / spread, np.where(drawn > 0, np.inf, 0.0))
    worst = int(np.abs(z).argmax())
    return {
        "draws": int(n),
        "chi2": round(chi2, 4),
        "dof": dof,
        "p_value": p_value,
        "worst_class_index": worst,
        "worst_z": round(float(z[worst]), 3),
    }


class SamplerDistributionCallback(Callback):
    """Check every epoch that the weighted sampler draws classes as its weights say.

    Uses ``trainer.datamodule.train_sampler`` (a ``TrackingWeightedRandomSampler``
    that records its draws); does nothing when the sampler is disabled. The draws
    are those trained on (an epoch holds whole batches only); under DDP every rank
    computes the whole epoch and trains on its share, so the counts are all ranks'
    draws. After each training epoch it tests the drawn class counts against the
    expected shares (:func:`drift_test`) and logs a warning when they differ
    beyond sampling noise (p-value below ``p_threshold``). Writes
    ``sampler_distribution.json`` (expected shares and every epoch's draws and
    test) and ``sampler_distribution.png`` (drawn vs expected share per class, last
    epoch and all epochs so far). The history is saved in checkpoints.

    Args:
        output_dir: The run folder.
        p_threshold: Warn when the p-value falls below this.
    """

    def __init__(self, output_dir: str | Path, p_threshold: float = 1e-3) -> None:
        self.output_dir = Path(output_dir)
        self.p_threshold = p_threshold
        self.epochs: list[dict[str, Any]] = []
        self._told_disabled = False

    def on_train_epoch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule
    ) -> None:
        """Test this epoch's draws, warn on drift, write JSON and plot."""
        if not is_fitting(trainer):
            return
        datamodule = get_datamodule(trainer, type(self).__name__)
        if self.check_epoch(datamodule, trainer.current_epoch) is not None and (
            should_write(trainer)
        ):
            self.write(datamodule)

    def check_epoch(
        self, datamodule: ImageFolderDataModule, epoch: int
    ) -> dict[str, Any] | None:
        """Test the draws of the sampler's current epoch and record the result.

        Args:
            datamodule: The data module (its ``train_sampler`` and train targets).
            epoch: The epoch number to record.

        Returns:
            The record, or ``None`` when sampling is disabled or nothing was drawn.
        """
        sampler = datamodule.train_sampler
        if sampler is None:
            if not self._told_disabled:
                logger.info("sampler monitoring: weighted sampling is disabled")
                self._told_disabled = True
            return None
        if not sampler.drawn_indices:
            return None
        targets = datamodule.datasets["train"].targets
        k = datamodule.num_classes
        drawn = sampler.drawn_class_counts(targets, k).numpy()
        shares = sampler.expected_class_shares(targets, k).numpy()
        names = [display_name(n) for n in datamodule.class_names]
        test = drift_test(drawn, shares)
        record = {
            "epoch": epoch,
            # "shuffle" before a deferred sampler's switch, "weighted" after.
            "phase": sampler.phase(epoch),
            **test,
            "worst_class": names[test["worst_class_index"]],
            "drifted": test["p_value"] < self.p_threshold,
            "drawn": drawn.tolist(),
            # Equal digests: the same rows in the same order (e.g. after a resume).
            "draws_digest": sampler.epoch_digest(),
        }
        self.epochs = [r for r in self.epochs if r["epoch"] != epoch] + [record]
        if record["drifted"]:
            worst = test["worst_class_index"]
            logger.warning(
                f"sampler drift in epoch {epoch}: drawn classes "
                "differ from the sampler weights beyond sampling noise "
                f"(chi2={test['chi2']:.1f}, dof={test['dof']}, "
                f"p={test['p_value']:.1e}); worst class "
                f"{names[worst]!r}: drawn {int(drawn[worst])}, expected "
                f"{shares[worst] * test['draws']:.1f}"
            )
        return record

    def write(self, datamodule: ImageFolderDataModule) -> None:
        """Write ``sampler_distribution.json`` and ``sampler_distribution.png``."""
        sampler = datamodule.train_sampler
        assert sampler is not None
        names = [display_name(n) for n in datamodule.class_names]
        shares = sampler.expected_class_shares(
            datamodule.datasets["train"].targets, len(names)
        ).numpy()
        atomic_write_json(
            self.output_dir / SAMPLER_JSON,
            {
                "class_names": names,
                "expected_share": [round(float(s), 6) for s in shares],
                "p_threshold": self.p_threshold,
                "epochs": self.epochs,
            },
        )
        last = np.asarray(self.epochs[-1]["drawn"], dtype=np.float64)
        total = np.sum(
            [np.asarray(r["drawn"], dtype=np.float64) for r in self.epochs], 0
        )
        k = len(names)
        order = natural_order(names)  # drawn as people read the names
        width = float(np.clip(0.11 * k + 2.5, 6.0, 120.0))  # the page scrolls
        figure = Figure(figsize=(width, 3.8))
        ax = figure.add_subplot()
        x = np.arange(k)
        last = last[order] / max(last.sum(), 1)
        total = total[order] / max(total.sum(), 1)
        ax.bar(x - 0.2, last, 0.4, label="drawn, last epoch")
        ax.bar(x + 0.2, total, 0.4, label="drawn, all epochs")
        ax.hlines(
            shares[order], x - 0.45, x + 0.45, color="black", linewidth=1.2,
            label="expected",
        )  # fmt: skip
        ax.set_xticks(
            x, [shown_name(names[i]) for i in order], rotation=90,
            fontsize=8 if k <= 40 else 6,
        )  # fmt: skip
        ax.set_xlim(-0.6, k - 0.4)
        ax.set_ylabel("share of draws")
        record = self.epochs[-1]
        ax.set_title(
            f"sampler draws ({record.get('phase', 'weighted')}), epoch "
            f"{record['epoch']}: chi2={record['chi2']:.1f}, "
            f"p={record['p_value']:.2g}" + (" (DRIFT)" if record["drifted"] else "")
        )
        ax.legend(fontsize=7, loc="upper right")
        figure.subplots_adjust(
            left=0.6 / width + 0.02, right=0.99, top=0.88, bottom=0.25
        )
        save_figure(figure, self.output_dir / SAMPLER_PNG)

    def state_dict(self) -> dict[str, Any]:
        """Per-epoch records (saved in checkpoints)."""
        return {"epochs": self.epochs}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Continue the records of a resumed run."""
        self.epochs = list(state_dict.get("epochs", []))
