"""``pytest bench/`` as a user runs it, in a subprocess: for tests of what a whole run does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from servers.process import PROJECT_ROOT

# How to start pytest; a test may run it through a script instead (python -c SCRIPT).
PYTEST = ("-m", "pytest")


def run_bench(
    storage: Path, *options: str, start: tuple[str, ...] = PYTEST, **popen
) -> subprocess.CompletedProcess:
    """Its runs saved under ``storage``, never in results/; output captured for the assertions.

    ``popen``: more of subprocess.run's arguments (a ``preexec_fn`` that lowers a limit).
    """
    return subprocess.run(
        [
            sys.executable,
            *start,
            "bench/",
            "-p",
            "no:cacheprovider",
            f"--benchmark-storage=file://{storage}",
            *options,
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        **popen,
    )


def output_of(done: subprocess.CompletedProcess) -> str:
    """The end of both streams, for an assertion's message."""
    return done.stdout[-3000:] + done.stderr[-3000:]
