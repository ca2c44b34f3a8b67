"""Resident memory of this process, read from Linux's /proc (see design rule 6).

tracemalloc alone is biased here: it sees the heap copies of greenlet stacks but not the
stacks of OS threads. The kernel's resident set counts both.
"""

from __future__ import annotations

from pathlib import Path

from bench.names import PSS_METHOD_PREFIX

# How a row's memory was measured (its extra_info's memory_method).
VMHWM = "VmHWM: the worker's resident high-water mark"
# Read once after each round, not sampled during it (issue 19, item 4): runs saved before say
# "sampled every 20 ms or more".
SUMMED_PSS = f"{PSS_METHOD_PREFIX}, read after each round, outside its timer"

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kib(field: str) -> int:
    for line in _STATUS.read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{_STATUS} has no {field} line")


def rss_bytes() -> int:
    return _status_kib("VmRSS") * 1024


def peak_rss_bytes() -> int:
    """The resident high-water mark since the last ``reset_peak_rss``."""
    return _status_kib("VmHWM") * 1024


def reset_peak_rss() -> None:
    """Writing 5 to clear_refs resets VmHWM to the current RSS (proc(5))."""
    _CLEAR_REFS.write_text("5")


def check_supported() -> None:
    if not _CLEAR_REFS.exists():
        raise RuntimeError("peak memory per round needs Linux's /proc/self/clear_refs; this system has none")
