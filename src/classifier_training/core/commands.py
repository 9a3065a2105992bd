"""The ``classifier-train`` command lines the project prints: the one that resumes
a run (after Ctrl-C, and on the report page of a run that stopped)."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path


def resume_command(
    argv: Sequence[str], overrides: Sequence[str], last: Path | None
) -> str:
    """The command line that resumes this run from ``last``.

    Args:
        argv: ``sys.argv`` of this run (kept: the program and ``--config-name``).
        overrides: This run's Hydra overrides (``hydra.*`` ones included, so a
            chosen run folder is reused).
        last: The checkpoint to resume from (``None``: none was saved yet).

    Returns:
        ``classifier-train [--config-name X] <overrides> ckpt_path=<last>``.
    """
    head = ["classifier-train"]
    args = list(argv[1:])
    for flag in ("--config-name", "-cn", "--config-path", "-cp"):
        if flag in args and args.index(flag) + 1 < len(args):
            at = args.index(flag)
            head += args[at : at + 2]
    head += [a for a in args if a.startswith(("--config-name=", "--config-path="))]
    kept = [
        o
        for o in overrides
        if not o.lstrip("+~").startswith(("ckpt_path=", "hydra.mode="))
    ]
    resume = [f"ckpt_path={last}"] if last is not None else []
    return shlex.join([*head, *kept, *resume])
