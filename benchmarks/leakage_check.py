"""What the leakage check costs: training start-up and ``classifier-check-data``.

Times, on one dataset root (default: the demo's ``data/synthetic-jersey``, made
by ``make data``):

* the training start-up check (:func:`~classifier_training.core.leakage.
  split_leakage`, ``data.check_leakage``) with an empty cache folder (every image
  decoded, signed and searched), then again on the same data (signatures and the
  pair counts read back: each file is only hashed);
* ``classifier-check-data`` (full decode, exact and near-duplicate checks, within-
  split clusters) with an empty cache folder, then again.

Each run gets a fresh temporary cache folder, so nothing of an earlier run (or of
the dataset's own ``.cache``) is reused.

Run::

    PYTHONPATH=src python benchmarks/leakage_check.py [DATA_ROOT]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from classifier_training.check_data import audit
from classifier_training.core.leakage import split_leakage
from classifier_training.core.readers import find_splits, read_split


def main() -> None:
    """Time both checks, cold then warm, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "data_root", type=Path, nargs="?", default=Path("data/synthetic-jersey")
    )
    args = parser.parse_args()
    rows = {
        split: read_split(folder)
        for split, folder in find_splits(args.data_root).items()
        if folder is not None
    }
    images = sum(len({s.image for s in samples}) for samples in rows.values())
    table = Table(title=f"leakage check on {args.data_root} ({images} images)")
    for column in ("step", "cold s", "warm s", "pairs across splits"):
        table.add_column(column, justify="left" if column == "step" else "right")
    with tempfile.TemporaryDirectory() as cache:
        times, pairs = [], 0
        for _ in range(2):
            started = time.perf_counter()
            pairs = split_leakage(rows, Path(cache))["near_duplicate_pairs"]
            times.append(time.perf_counter() - started)
        table.add_row("training start-up", *(f"{t:.2f}" for t in times), str(pairs))
    with tempfile.TemporaryDirectory() as cache:
        times = []
        for _ in range(2):
            started = time.perf_counter()
            with contextlib.redirect_stdout(io.StringIO()):
                result = audit(args.data_root, cache_dir=Path(cache))
            times.append(time.perf_counter() - started)
        found = len(result["near_duplicates"]["cross_split"])
        table.add_row("classifier-check-data", *(f"{t:.2f}" for t in times), str(found))
    Console().print(table)


if __name__ == "__main__":
    main()
