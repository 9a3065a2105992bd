"""The Hydra callback that keeps a sweep's summary (``hydra.callbacks`` of the
root configs).

After every job of a ``-m`` sweep it records a failed job's error in the job's
folder (``job_status.json``) and rewrites ``summary.csv``/``summary.html`` in the
sweep folder, so the summary is current while a long sweep runs and complete
however it ends. At the end it prints the summary as Rich tables.

Hydra's basic sweeper re-raises the first failed job's error after the batch,
and then never calls ``on_multirun_end``; the end-of-sweep print is therefore
also registered with :mod:`atexit` (and unregistered once it has run), so a
sweep with failed jobs still ends with its table. Single runs are left alone.
"""

from __future__ import annotations

import atexit
import logging
from pathlib import Path
from typing import Any

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from classifier_training.report.run import ReportError
from classifier_training.report.runs import (
    FAILED,
    clear_job_status,
    error_line,
    exception_detail,
    write_job_status,
)
from classifier_training.report.sweep import print_sweep_summary, write_sweep_summary

log = logging.getLogger(__name__)


def _is_multirun(config: DictConfig) -> bool:
    return bool(config.hydra.mode == RunMode.MULTIRUN)


def _sweep_dir(config: DictConfig) -> Path:
    # Relative to where the command ran (a job with hydra.job.chdir=true runs
    # in its own folder).
    folder = Path(str(config.hydra.sweep.dir))
    return folder if folder.is_absolute() else Path(config.hydra.runtime.cwd) / folder


class SweepSummaryCallback(Callback):
    """Write the sweep summary after each job and print it at the end."""

    def __init__(self) -> None:
        self._sweep_dir: Path | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Remember the sweep folder; make sure the summary is printed at exit."""
        self._sweep_dir = _sweep_dir(config)
        atexit.register(self._finish)

    def on_job_end(
        self, config: DictConfig, job_return: JobReturn, **kwargs: Any
    ) -> None:
        """Record a failure in the job's folder; rewrite the summary files."""
        if not _is_multirun(config):
            return
        run_dir = Path(str(config.hydra.runtime.output_dir))
        if job_return.status == JobStatus.FAILED:
            # JobReturn.return_value re-raises; the exception itself is kept here.
            error = job_return._return_value
            if isinstance(error, BaseException):
                line = error_line(error)
                write_job_status(run_dir, FAILED, line, exception_detail(error))
            else:
                line = "the job failed"
                write_job_status(run_dir, FAILED, line)
            log.error(f"job {config.hydra.job.num} ({run_dir}) failed: {line}")
        else:
            clear_job_status(run_dir)
        write_sweep_summary(_sweep_dir(config))

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """Write the final summary and print it."""
        self._finish()

    def _finish(self) -> None:
        if self._sweep_dir is None:
            return
        atexit.unregister(self._finish)
        folder, self._sweep_dir = self._sweep_dir, None
        try:
            print_sweep_summary(write_sweep_summary(folder))
        except ReportError as error:  # the sweep ended before its first job
            log.warning(f"no sweep summary: {error}")
