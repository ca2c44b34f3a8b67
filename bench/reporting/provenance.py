"""Where a saved run's code came from: the commit and whether the tree was dirty, at its start and its end.

pytest-benchmark records ``commit_info`` only when it saves, at the end of a run, so a run that
started on uncommitted code and ended after a commit looks clean (measured: a committed run had
measured for 700 s before the commit it names was made). bench/conftest.py records the tree
here at the session's start and again before saving, under ``coroutine_bench.provenance``.

A run a page cites must have come from a clean tree, at one commit from start to end, that is
an ancestor of the page's commit (design rule 13; ``cited_run_problems``). "Dirty" means a
tracked file differs from the commit, or a file is untracked and not ignored (an untracked
pytest.ini changes what runs); what runs write (results/<machine>/, .venv/) is in .gitignore, so
it never makes the next run dirty.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

KEY = "provenance"
MOMENTS = ("start", "end")


class GitError(RuntimeError):
    """git is missing or the folder is no repository; the message says which."""


def _git(repo: Path, *args: str) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=60)
    except FileNotFoundError:
        raise GitError("git is not installed") from None


def tree_state(repo: Path) -> dict:
    """{"commit", "dirty", "at"} of the work tree now; commit None outside a git repository."""
    at = datetime.now(UTC).isoformat()
    head = _git(repo, "rev-parse", "HEAD")
    if head.returncode != 0:
        return {"commit": None, "dirty": None, "at": at}
    # Untracked files count (an untracked pytest.ini or module changes what runs); what a run
    # writes itself (results/<machine>/, .venv/) is in .gitignore, so it never dirties the next.
    status = _git(repo, "status", "--porcelain", "--untracked-files=normal")
    return {"commit": head.stdout.strip(), "dirty": bool(status.stdout.strip()), "at": at}


def duration_seconds(context: dict) -> float | None:
    """Seconds from the run's start record to its end record; None for a run saved without them."""
    record = context.get(KEY) or {}
    try:
        start, end = (datetime.fromisoformat(record[moment]["at"]) for moment in MOMENTS)
    except (KeyError, TypeError, ValueError):
        return None
    return (end - start).total_seconds()


def is_ancestor(repo: Path, commit: str, of: str = "HEAD") -> bool:
    result = _git(repo, "merge-base", "--is-ancestor", commit, of)
    if result.returncode not in (0, 1):  # 128: unknown commit, or not a repository
        raise GitError(f"git merge-base --is-ancestor {commit} {of}: {result.stderr.strip()}")
    return result.returncode == 0


def cited_run_problems(context: dict, repo: Path) -> list[str]:
    """Why a run may not back a page (empty: it may): each reason one phrase."""
    record = context.get(KEY)
    if not isinstance(record, dict):
        return ["no provenance record (saved before runs recorded their start): re-make it"]
    problems = []
    for moment in MOMENTS:
        state = record.get(moment) or {}
        if not state.get("commit"):
            problems.append(f"no commit recorded at its {moment}")
        elif state.get("dirty") is not False:
            problems.append(f"the tree was dirty at its {moment}")
    start, end = ((record.get(m) or {}).get("commit") for m in MOMENTS)
    if start and end and start != end:
        problems.append(f"the commit changed during the run ({start[:10]} -> {end[:10]})")
    commit = (record.get("start") or {}).get("commit")
    if commit and not problems:
        try:
            if _git(repo, "cat-file", "-e", f"{commit}^{{commit}}").returncode != 0:
                problems.append(f"its commit {commit[:10]} is not in this repository (a shallow clone?)")
            elif not is_ancestor(repo, commit):
                problems.append(f"its commit {commit[:10]} is not an ancestor of HEAD")
        except GitError as exc:
            problems.append(str(exc))
    return problems
