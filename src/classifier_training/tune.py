"""``classifier-tune``: an Optuna search over training settings, with pruning.

The search space is written in Hydra's sweep syntax, the same as the Hydra
Optuna sweeper's; every other override is fixed for all trials::

    classifier-tune --trials 20 data.data_root=/data trainer.max_epochs=30 \\
        'optimizer.lr=tag(log, interval(1e-4, 1e-2))' \\
        'optimizer.weight_decay=interval(0.0, 0.1)' \\
        'model.label_smoothing=interval(0.0, 0.2)' \\
        'transforms=choice(digits, broadcast)'

``interval(a, b)`` samples a float (``tag(log, ...)``: log-uniform; ``tag(int,
...)``: an integer), ``range(a, b[, step])`` an integer (floats: one of its
values), ``choice(x, y, ...)`` one of the values (config group options too).

Each trial is a ``classifier-train`` run in its own process, in
``STUDY_DIR/<trial number>`` (a normal run folder), with a callback that reports
the monitored metric (the best-checkpoint callback's, ``val/acc_top1`` by
default) to the study after every epoch; the pruner stops trials that are
clearly worse than the earlier ones at the same epoch
(:mod:`classifier_training.callbacks.optuna_pruning`). The trial's value is the
final monitored metric of its best checkpoint. The study lives in
``STUDY_DIR/study.db`` (SQLite): run the same command with the same
``--study-dir`` to add trials to it. After every trial, ``summary.csv`` and
``summary.html`` in the study folder are rewritten (the sweep summary).

Exit status: 0 done, 1 every trial failed, 2 bad arguments, 130 interrupted.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess
import sys
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
)
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from classifier_training.callbacks.optuna_pruning import (
    PRUNED_ATTR,
    PRUNER_ATTR,
    PRUNERS,
    OptunaPruningCallback,
    build_pruner,
)
from classifier_training.core import run_files as rf
from classifier_training.core.errors import UsageError, run_command
from classifier_training.report.runs import (
    FAILED,
    PRUNED,
    child_error_line,
    first_line,
    flatten,
    monitor_of,
    read_run,
    write_job_status,
)
from classifier_training.report.sweep import print_sweep_summary, write_sweep_summary
from classifier_training.training.builders import register_configs

DEFAULT_CONFIG = "train_jersey_ocr_resnet18"
STUDY_NAME = "classifier-tune"
INTERRUPTED_EXIT_CODE = 130
ALL_FAILED_EXIT_CODE = 1
#: Environment variables that hand the study to each trial's process.
ENV_STORAGE = "CLASSIFIER_TUNE_STORAGE"
ENV_STUDY = "CLASSIFIER_TUNE_STUDY"
ENV_TRIAL = "CLASSIFIER_TUNE_TRIAL"
_CALLBACK = f"{OptunaPruningCallback.__module__}.{OptunaPruningCallback.__name__}"
# Override values that need no quotes in Hydra's grammar.
_PLAIN = re.compile(r"[A-Za-z0-9_./:@+-]+")


@dataclass(frozen=True)
class SearchParam:
    """One searched setting.

    Attributes:
        key: The override's left side as typed (``optimizer.lr``, ``+x``).
        distribution: Where Optuna samples its value.
    """

    key: str
    distribution: optuna.distributions.BaseDistribution


def _distribution(override: Override) -> optuna.distributions.BaseDistribution:
    sweep = override.value()
    if not isinstance(sweep, IntervalSweep | ChoiceSweep | RangeSweep):
        raise UsageError(
            f"{override.input_line}: not a search space; use interval(a, b), "
            "tag(log, interval(a, b)), range(a, b) or choice(x, y, ...)"
        )
    try:
        if isinstance(sweep, IntervalSweep):
            if sweep.start is None or sweep.end is None:
                raise ValueError("an interval needs both ends")
            low, high = float(sweep.start), float(sweep.end)
            log = "log" in sweep.tags
            if "int" in sweep.tags:
                return optuna.distributions.IntDistribution(
                    math.ceil(low), math.floor(high), log=log
                )
            return optuna.distributions.FloatDistribution(low, high, log=log)
        values = list(override.sweep_iterator())
        ints = [v for v in values if type(v) is int]
        if isinstance(sweep, RangeSweep) and ints and len(ints) == len(values):
            step = abs(int(sweep.step)) if sweep.step is not None else 1
            return optuna.distributions.IntDistribution(min(ints), max(ints), step=step)
        choices: list[bool | int | float | str | None] = []
        for v in values:
            if not isinstance(v, None | bool | int | float | str):
                raise ValueError(f"a choice must be a single value, got {v!r}")
            choices.append(round(v, 10) if isinstance(v, float) else v)
        return optuna.distributions.CategoricalDistribution(choices)
    except (ValueError, TypeError) as error:
        raise UsageError(f"{override.input_line}: {error}") from None


def parse_search_space(
    overrides: Sequence[str],
) -> tuple[list[SearchParam], list[str]]:
    """Split the command line's overrides into the search space and fixed ones.

    Args:
        overrides: Hydra overrides; those in sweep syntax are searched.

    Returns:
        The searched settings and the fixed overrides (as typed).

    Raises:
        UsageError: If an override does not parse or a sweep cannot be searched.
    """
    parser = OverridesParser.create()
    space: list[SearchParam] = []
    fixed: list[str] = []
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([text])
        except HydraException as error:
            raise UsageError(f"{text}: {first_line(str(error))}") from None
        if override.is_sweep_override():
            key = text.partition("=")[0].strip()
            space.append(SearchParam(key, _distribution(override)))
        else:
            fixed.append(text)
    return space, fixed


def override_value(value: Any) -> str:
    """A sampled value as the right side of a Hydra override."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if _PLAIN.fullmatch(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def suggest(trial: optuna.Trial, space: Sequence[SearchParam]) -> list[str]:
    """The trial's overrides: one sampled value per searched setting."""
    overrides = []
    for param in space:
        d = param.distribution
        value: Any
        if isinstance(d, optuna.distributions.FloatDistribution):
            value = trial.suggest_float(
                param.key, d.low, d.high, step=d.step, log=d.log
            )
        elif isinstance(d, optuna.distributions.IntDistribution):
            value = trial.suggest_int(param.key, d.low, d.high, step=d.step, log=d.log)
        elif isinstance(d, optuna.distributions.CategoricalDistribution):
            value = trial.suggest_categorical(param.key, d.choices)
        else:  # parse_search_space builds only the three above
            raise TypeError(d)
        overrides.append(f"{param.key}={override_value(value)}")
    return overrides


def pruning_overrides(monitor: str) -> list[str]:
    """The overrides that add the pruning callback to a trial's run; the study
    and trial come from the environment (:data:`ENV_STORAGE`, ...), so these are
    the same for every trial and no summary column shows them."""
    node = "+callbacks.optuna_pruning"
    return [
        f"{node}._target_={_CALLBACK}",
        f"{node}.storage=${{oc.env:{ENV_STORAGE}}}",
        f"{node}.study_name=${{oc.env:{ENV_STUDY}}}",
        f"{node}.trial_number=${{oc.env:{ENV_TRIAL}}}",
        f"{node}.monitor={monitor}",
    ]


def compose_trial_config(config_name: str, overrides: Sequence[str]) -> dict[str, Any]:
    """Compose the config one trial would get (start-up check), flattened.

    Raises:
        UsageError: If the overrides do not compose (unknown key or option).
    """
    GlobalHydra.instance().clear()
    try:
        register_configs()
        with initialize_config_module("classifier_training.conf", version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as error:
        raise UsageError(
            f"--config-name {config_name}: {first_line(str(error))}"
        ) from None
    finally:
        GlobalHydra.instance().clear()
    container = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(container, dict)
    return flatten({str(k): v for k, v in container.items()})


def check_space(
    config_name: str, space: Sequence[SearchParam], fixed: Sequence[str]
) -> tuple[str, str]:
    """Compose the config with every choice's option once, before any training.

    Returns:
        The monitored metric and its mode.
    """
    first = [f"{p.key}={override_value(_first_value(p.distribution))}" for p in space]
    config = compose_trial_config(config_name, [*fixed, *first])
    monitor, mode = monitor_of(config)
    compose_trial_config(config_name, [*fixed, *first, *pruning_overrides(monitor)])
    for i, param in enumerate(space):
        if isinstance(param.distribution, optuna.distributions.CategoricalDistribution):
            for choice in param.distribution.choices[1:]:
                option = f"{param.key}={override_value(choice)}"
                compose_trial_config(
                    config_name, [*fixed, *first[:i], option, *first[i + 1 :]]
                )
    return monitor, mode


def _first_value(distribution: optuna.distributions.BaseDistribution) -> Any:
    if isinstance(distribution, optuna.distributions.CategoricalDistribution):
        return distribution.choices[0]
    if isinstance(
        distribution,
        optuna.distributions.FloatDistribution | optuna.distributions.IntDistribution,
    ):
        return distribution.low
    raise TypeError(distribution)


class TrialFailedError(Exception):
    """A trial's training process failed (Optuna records the trial as failed)."""


@dataclass
class TrialRunner:
    """Optuna's objective: run one trial as a ``classifier-train`` process.

    Attributes:
        config_name: The recipe.
        fixed: Overrides of every trial.
        space: The searched settings.
        study_dir: The study folder (trial ``n`` runs in ``study_dir/n``).
        storage: The study's storage URL.
        study_name: The study's name.
        monitor: The metric reported and optimised.
    """

    config_name: str
    fixed: list[str]
    space: list[SearchParam]
    study_dir: Path
    storage: str
    study_name: str
    monitor: str

    def command(self, trial_dir: Path, suggested: Sequence[str]) -> list[str]:
        """The trial's ``classifier-train`` command line."""
        return [
            sys.executable,
            "-m",
            "classifier_training.train",
            "--config-name",
            self.config_name,
            *self.fixed,
            *suggested,
            *pruning_overrides(self.monitor),
            f"hydra.run.dir={trial_dir}",
        ]

    def __call__(self, trial: optuna.Trial) -> float:
        """Train; return the monitored value, or raise TrialPruned/TrialFailedError."""
        suggested = suggest(trial, self.space)
        trial_dir = (self.study_dir / str(trial.number)).resolve()
        print(f"trial {trial.number}: {' '.join(suggested)}", flush=True)
        env = {
            **os.environ,
            ENV_STORAGE: self.storage,
            ENV_STUDY: self.study_name,
            ENV_TRIAL: str(trial.number),
        }
        tail: deque[str] = deque(maxlen=200)
        with subprocess.Popen(
            self.command(trial_dir, suggested),
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        ) as process:
            assert process.stderr is not None
            for line in process.stderr:  # shown as it comes, kept for the error
                sys.stderr.write(line)
                tail.append(line)
            code = process.wait()
        try:
            if code != 0:
                raise TrialFailedError(child_error_line(tail, code))
            record = read_run(trial_dir)
            value = record.monitored
            if value is None:
                raise TrialFailedError(
                    f"no {self.monitor} in {trial_dir / rf.METRICS_FILE}"
                )
        except TrialFailedError as error:
            trial_dir.mkdir(parents=True, exist_ok=True)
            write_job_status(trial_dir, FAILED, str(error), overrides=suggested)
            raise
        finally:
            write_sweep_summary(self.study_dir)
        pruned_at = _pruned_epoch(trial)
        if pruned_at is not None:
            write_job_status(
                trial_dir,
                PRUNED,
                f"pruned after epoch {pruned_at}: {self.monitor} worse than the "
                "earlier trials at that epoch",
            )
            write_sweep_summary(self.study_dir)
            raise optuna.TrialPruned(f"pruned after epoch {pruned_at}")
        return value


def _pruned_epoch(trial: optuna.Trial) -> int | None:
    # The trial's own object caches its attributes; the training process wrote
    # to the storage, so read the stored trial.
    for stored in trial.study.get_trials(deepcopy=False):
        if stored.number == trial.number:
            epoch = stored.user_attrs.get(PRUNED_ATTR)
            return int(epoch) if epoch is not None else None
    return None


def _default_study_dir() -> Path:
    now = datetime.now()
    return Path("tune") / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S")


def main(argv: list[str] | None = None) -> int:
    """Run ``classifier-tune``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="classifier-tune",
        description="Search training settings with Optuna; prune clearly worse "
        "trials from their per-epoch validation metric.",
        epilog="Example: classifier-tune --trials 20 data.data_root=/data "
        "'optimizer.lr=tag(log, interval(1e-4, 1e-2))' "
        "'transforms=choice(digits, broadcast)'",
    )
    parser.add_argument(
        "overrides",
        nargs="+",
        help="Hydra overrides; those in sweep syntax (interval, range, choice) "
        "form the search space, the rest apply to every trial",
    )
    parser.add_argument("--config-name", default=DEFAULT_CONFIG, help="the recipe")
    parser.add_argument("--trials", type=int, default=20, help="trials to run")
    parser.add_argument(
        "--timeout", type=float, default=None, help="stop starting trials after S s"
    )
    parser.add_argument(
        "--study-dir",
        type=Path,
        default=None,
        help="study folder (default tune/<date>/<time>); an existing one is resumed",
    )
    parser.add_argument("--pruner", choices=PRUNERS, default="median")
    parser.add_argument(
        "--startup-trials",
        type=int,
        default=3,
        help="median pruner: trials that always run to the end first",
    )
    parser.add_argument(
        "--warmup-epochs",
        type=int,
        default=2,
        help="epochs every trial trains before it can be pruned",
    )
    parser.add_argument(
        "--sampler-seed", type=int, default=None, help="seed of the TPE sampler"
    )
    args = parser.parse_args(argv)

    def run() -> int:
        if args.trials < 1:
            raise UsageError(f"--trials must be at least 1, got {args.trials}")
        space, fixed = parse_search_space(args.overrides)
        if not space:
            raise UsageError(
                "no search space: give at least one override in sweep syntax, e.g. "
                "'optimizer.lr=tag(log, interval(1e-4, 1e-2))'"
            )
        monitor, mode = check_space(args.config_name, space, fixed)
        study_dir: Path = args.study_dir or _default_study_dir()
        study_dir.mkdir(parents=True, exist_ok=True)
        storage = f"sqlite:///{(study_dir / rf.STUDY_DB).resolve()}"
        pruner_settings = {
            "name": args.pruner,
            "startup_trials": args.startup_trials,
            "warmup_epochs": args.warmup_epochs,
        }
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        study = optuna.create_study(
            study_name=STUDY_NAME,
            storage=storage,
            load_if_exists=True,
            direction="maximize" if mode == "max" else "minimize",
            sampler=optuna.samplers.TPESampler(seed=args.sampler_seed),
            pruner=build_pruner(**pruner_settings),
        )
        study.set_user_attr(PRUNER_ATTR, pruner_settings)
        runner = TrialRunner(
            config_name=args.config_name,
            fixed=fixed,
            space=space,
            study_dir=study_dir,
            storage=storage,
            study_name=STUDY_NAME,
            monitor=monitor,
        )
        print(f"study: {study_dir} ({len(space)} settings searched, {monitor} {mode})")
        interrupted = False
        try:
            study.optimize(
                runner,
                n_trials=args.trials,
                timeout=args.timeout,
                catch=(TrialFailedError,),
            )
        except KeyboardInterrupt:
            interrupted = True
        summary = write_sweep_summary(study_dir)
        print_sweep_summary(summary)
        finished = [
            t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE
        ]
        if finished:
            best = study.best_trial
            print(
                f"best trial {best.number}: {monitor} {best.value:.4f} "
                f"({' '.join(f'{k}={v}' for k, v in best.params.items())}), "
                f"run folder {study_dir / str(best.number)}"
            )
        if interrupted:
            print(f"interrupted; add trials with --study-dir {study_dir}")
            return INTERRUPTED_EXIT_CODE
        if summary.all_failed:
            print(f"error: {study_dir}: every trial failed", file=sys.stderr)
            return ALL_FAILED_EXIT_CODE
        return 0

    return run_command(run)


if __name__ == "__main__":
    raise SystemExit(main())
