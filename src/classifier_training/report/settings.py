"""Seeds as a sweep axis: runs that differ only by ``seed`` repeat one setting.

A setting's score is the mean of its seeds, its noise their standard deviation
(sample std, ``ddof=1``; unknown from a single seed). The verdict compares the
best setting's lead over the runner-up with the larger of the two spreads: a
lead inside the spread may be the seed, not the setting.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from classifier_training.report.html import fmt, pct

SEED_KEY = "seed"


@dataclass(frozen=True)
class Setting:
    """The runs of one setting and their monitored metric.

    Attributes:
        label: The setting (``optimizer.lr=0.001``; ``(same)`` when only seeds
            differ).
        runs: Labels of its runs.
        seeds: Their ``seed`` values.
        values: The monitored metric of the runs that finished.
    """

    label: str
    runs: tuple[str, ...]
    seeds: tuple[str, ...]
    values: tuple[float, ...]

    @property
    def mean(self) -> float | None:
        """Mean over the finished runs (``None`` when none finished)."""
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        """Sample standard deviation (``None`` below two finished runs)."""
        return statistics.stdev(self.values) if len(self.values) > 1 else None


def seeds_vary(settings: Sequence[Mapping[str, object]]) -> bool:
    """Whether the runs' differing values include more than one ``seed``."""
    return len({str(s.get(SEED_KEY)) for s in settings}) > 1


def group_by_setting(
    runs: Sequence[tuple[str, Mapping[str, object], float | None]],
    higher_is_better: bool,
) -> list[Setting]:
    """Group runs that differ only by ``seed``, best mean first.

    Args:
        runs: ``(label, differing values, monitored metric)`` per run; the
            differing values (overrides or config keys) include ``seed``; the
            metric is ``None`` for a run that did not finish.
        higher_is_better: The metric's direction.

    Returns:
        One :class:`Setting` per distinct non-seed value set, ranked by mean
        (settings without a finished run last).
    """
    groups: dict[str, list[tuple[str, str, float | None]]] = {}
    for label, values, metric in runs:
        rest = {k: v for k, v in values.items() if k != SEED_KEY}
        key = " ".join(f"{k}={v}" for k, v in sorted(rest.items())) or "(same)"
        groups.setdefault(key, []).append(
            (label, str(values.get(SEED_KEY, "")), metric)
        )
    settings = [
        Setting(
            label=key,
            runs=tuple(label for label, _, _ in members),
            seeds=tuple(seed for _, seed, _ in members),
            values=tuple(m for _, _, m in members if m is not None),
        )
        for key, members in groups.items()
    ]
    sign = -1.0 if higher_is_better else 1.0
    return sorted(
        settings,
        key=lambda s: (s.mean is None, sign * s.mean if s.mean is not None else 0.0),
    )


def metric_text(monitor: str, value: float | None) -> str:
    """A monitored value as the pages show it (accuracies as percentages)."""
    if value is None or math.isnan(value):
        return "-"
    return pct(value) if "acc" in monitor else fmt(value)


def spread_text(monitor: str, value: float | None) -> str:
    """A difference or standard deviation (accuracy in percentage points)."""
    if value is None:
        return "-"
    return f"{100 * value:.2f} pts" if "acc" in monitor else fmt(value)


def mean_std_text(monitor: str, setting: Setting) -> str:
    """``92.31% ± 0.42 pts (n=3)``."""
    if setting.mean is None:
        return "-"
    std = setting.std
    spread = (
        f" \N{PLUS-MINUS SIGN} {spread_text(monitor, std)}" if std is not None else ""
    )
    return f"{metric_text(monitor, setting.mean)}{spread} (n={len(setting.values)})"


@dataclass(frozen=True)
class Lead:
    """The best setting against the runner-up.

    Attributes:
        best: The best setting by mean.
        runner_up: The second.
        lead: The difference of their means (always >= 0).
        spread: The larger of their standard deviations (``None`` when either
            has fewer than two finished seeds).
    """

    best: Setting
    runner_up: Setting
    lead: float
    spread: float | None

    @property
    def exceeds_spread(self) -> bool | None:
        """Whether the lead is larger than the spread (``None``: spread unknown)."""
        return None if self.spread is None else self.lead > self.spread


def lead_of(settings: Sequence[Setting]) -> Lead | None:
    """The best setting's lead (``None`` with fewer than two scored settings).

    Args:
        settings: Ranked settings (:func:`group_by_setting`).
    """
    scored = [s for s in settings if s.mean is not None]
    if len(scored) < 2:
        return None
    best, runner_up = scored[0], scored[1]
    lead = abs((best.mean or 0.0) - (runner_up.mean or 0.0))  # both finished
    stds = (best.std, runner_up.std)
    spread = None if None in stds else max(s for s in stds if s is not None)
    return Lead(best, runner_up, lead, spread)


def lead_verdict(settings: Sequence[Setting], monitor: str) -> str:
    """Whether the best setting's lead over the runner-up exceeds the seed spread.

    Args:
        settings: Ranked settings (:func:`group_by_setting`).
        monitor: The metric (for the wording of numbers).

    Returns:
        One sentence.
    """
    scored = [s for s in settings if s.mean is not None]
    result = lead_of(settings)
    if result is None:
        if not scored:
            return "No run finished: nothing to rank."
        best = scored[0]
        if best.std is None:
            return f"One setting, one finished run: {metric_text(monitor, best.mean)}."
        return (
            f"One setting: {mean_std_text(monitor, best)} over seeds "
            f"{', '.join(best.seeds)}."
        )
    head = (
        f"Best setting {result.best.label} leads {result.runner_up.label} by "
        f"{spread_text(monitor, result.lead)} ({monitor})"
    )
    if result.spread is None:
        return (
            f"{head}; the seed spread is unknown (a setting has fewer than two "
            "finished seeds): repeat each setting with seed=0,1,2 to tell a real "
            "lead from noise."
        )
    spread = spread_text(monitor, result.spread)
    if result.exceeds_spread:
        return (
            f"{head}, more than the seed spread (std up to {spread}): the lead is "
            "larger than the noise."
        )
    return (
        f"{head}, within the seed spread (std up to {spread}): the difference may "
        "be noise; run more seeds before choosing."
    )
