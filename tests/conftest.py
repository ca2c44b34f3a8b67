"""Test-suite wiring: prove that no process we started outlives the session."""

import os
from pathlib import Path

import pytest


def child_pids() -> list[int]:
    """PIDs whose parent is this process, read from /proc (no psutil needed)."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited while we looked
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


@pytest.fixture(scope="session", autouse=True)
def no_process_left_behind():
    """Set up before, so torn down after, every other session fixture (the delay server too)."""
    yield
    leftover = child_pids()
    assert not leftover, f"processes left behind by the test session: {leftover}"
