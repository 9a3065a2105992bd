"""Self-contained HTML pages (torch-free): one per training run, one per
``classifier-evaluate`` folder. Images are embedded; nothing is fetched."""

from classifier_training.core.run_files import REPORT_FILE
from classifier_training.report.evaluation import (
    EVALUATION_SECTIONS,
    build_evaluation_report,
)
from classifier_training.report.run import (
    RUN_SECTIONS,
    ReportError,
    build_run_report,
)

__all__ = [
    "EVALUATION_SECTIONS",
    "REPORT_FILE",
    "RUN_SECTIONS",
    "ReportError",
    "build_evaluation_report",
    "build_run_report",
]
