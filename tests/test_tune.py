"""``classifier-tune``: the search space, the pruning callback, a real search."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lightning as L
import optuna
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from classifier_training.callbacks.optuna_pruning import (
    PRUNED_ATTR,
    PRUNER_ATTR,
    OptunaPruningCallback,
)
from classifier_training.core.errors import UsageError
from classifier_training.tune import main as tune_main
from classifier_training.tune import override_value, parse_search_space
from tests.helpers import make_jsonl_dataset, quiet_trainer
from tests.sweep_support import read_csv, subprocess_env

D = optuna.distributions


def test_sweep_syntax_becomes_the_search_space_and_the_rest_stays_fixed() -> None:
    space, fixed = parse_search_space(
        [
            "data.data_root=/data",
            "optimizer.lr=tag(log, interval(1e-4, 1e-2))",
            "model.label_smoothing=interval(0.0, 0.2)",
            "transforms=choice(digits, broadcast)",
            "data.batch_size=range(16, 65, 16)",
            "+trainer.accumulate_grad_batches=tag(int, interval(1, 4))",
            "scheduler.warmup_epochs=range(0.5, 2.0, 0.5)",
        ]
    )

    assert fixed == ["data.data_root=/data"]
    assert [(p.key, p.distribution) for p in space] == [
        ("optimizer.lr", D.FloatDistribution(1e-4, 1e-2, log=True)),
        ("model.label_smoothing", D.FloatDistribution(0.0, 0.2)),
        ("transforms", D.CategoricalDistribution(["digits", "broadcast"])),
        ("data.batch_size", D.IntDistribution(16, 64, step=16)),
        ("+trainer.accumulate_grad_batches", D.IntDistribution(1, 4)),
        ("scheduler.warmup_epochs", D.CategoricalDistribution([0.5, 1.0, 1.5])),
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optimizer.lr=tag(log, interval(0.0, 1e-2))", "optimizer.lr=tag(log"),
        ("optimizer.lr=interval(1e-2", "optimizer.lr=interval(1e-2"),
        ("transforms=glob(*)", "not a search space"),
    ],
)
def test_a_search_space_that_cannot_be_searched_is_a_usage_error(
    override: str, message: str
) -> None:
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        parse_search_space([override])


def test_sampled_values_are_written_as_override_values() -> None:
    assert override_value(0.00125) == "0.00125"
    assert override_value(True) == "true"
    assert override_value(None) == "null"
    assert override_value("broadcast") == "broadcast"
    assert override_value("a b,c") == "'a b,c'"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["data.data_root=/data"], "no search space"),
        (["no_such.key=interval(0.0, 1.0)"], "no_such"),
        (["transforms=choice(digits, no_such_preset)"], "no_such_preset"),
    ],
)
def test_bad_arguments_are_one_line_before_any_training(
    overrides: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    study = tmp_path / "study"

    code = tune_main(
        ["--config-name", "train_demo", "--study-dir", str(study), *overrides]
    )

    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("error: ")
    assert message in err[0]
    assert not study.exists()  # nothing started


class ConstantAccuracy(L.LightningModule):
    """Trains a tiny layer; logs a fixed ``val/acc_top1`` every epoch."""

    def __init__(self, accuracy: float) -> None:
        super().__init__()
        self.accuracy = accuracy
        self.layer = nn.Linear(2, 2)

    def training_step(self, batch: list[torch.Tensor], _: int) -> torch.Tensor:
        return self.layer(batch[0]).sum()

    def validation_step(self, batch: list[torch.Tensor], _: int) -> None:
        self.log("val/acc_top1", self.accuracy)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.01)


def _study_with_two_good_trials(tmp_path: Path) -> tuple[str, optuna.Study]:
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.set_user_attr(
        PRUNER_ATTR, {"name": "median", "startup_trials": 2, "warmup_epochs": 0}
    )
    for _ in range(2):
        study.add_trial(
            optuna.trial.create_trial(
                value=0.9,
                intermediate_values={0: 0.9, 1: 0.9, 2: 0.9},
            )
        )
    return storage, study


@pytest.mark.parametrize(
    ("accuracy", "epochs", "pruned"), [(0.1, 1, 0), (0.95, 3, None)]
)
def test_the_callback_stops_a_trial_worse_than_the_median(
    accuracy: float, epochs: int, pruned: int | None, tmp_path: Path
) -> None:
    storage, study = _study_with_two_good_trials(tmp_path)
    trial = study.ask()
    callback = OptunaPruningCallback(storage, "s", trial.number)
    data = DataLoader(TensorDataset(torch.ones(4, 2)), batch_size=2)
    trainer = quiet_trainer(max_epochs=3, callbacks=[callback])

    trainer.fit(ConstantAccuracy(accuracy), data, data)

    assert trainer.current_epoch == epochs
    stored = study.get_trials(deepcopy=False)[-1]
    assert stored.user_attrs.get(PRUNED_ATTR) == pruned
    assert stored.intermediate_values == {
        e: pytest.approx(accuracy) for e in range(epochs)
    }


@pytest.mark.slow
def test_a_search_runs_trials_as_runs_and_writes_the_sweep_summary(
    tmp_path: Path,
) -> None:
    data = make_jsonl_dataset(tmp_path / "data", per_class=4, eval_per_class=2, size=16)
    study = tmp_path / "study"

    result = subprocess.run(
        [sys.executable, "-m", "classifier_training.tune", "--config-name",
         "train_demo", "--trials", "2", "--study-dir", str(study), "--pruner",
         "none", "--sampler-seed", "0", f"data.data_root={data}",
         "data.image_size=16", "data.batch_size=8", "data.num_workers=0",
         "trainer.max_epochs=1", "callbacks=none",
         "optimizer.lr=tag(log, interval(1e-4, 1e-2))"],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr[-3000:]
    rows = read_csv(study / "summary.csv")
    assert [r["job"] for r in rows] == ["0", "1"]
    assert [r["status"] for r in rows] == ["ok", "ok"]
    lrs = [float(r["optimizer.lr"]) for r in rows]
    assert all(1e-4 <= lr <= 1e-2 for lr in lrs)
    assert lrs[0] != lrs[1]
    assert (study / "summary.html").is_file()
    stored = optuna.load_study(
        study_name="classifier-tune", storage=f"sqlite:///{study / 'study.db'}"
    )
    assert [t.state for t in stored.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    assert [t.value for t in stored.trials] == [
        pytest.approx(float(r["val_top1"]), abs=1e-6)  # the CSV keeps 6 digits
        for r in rows
    ]
    assert "best trial" in result.stdout
