"""Read saved runs back: a pytest-benchmark JSON file in, this suite's rows out, or a one-line error.

Used by the report and the gate; both refuse, with exit status 2, a file that is missing, is
not pytest-benchmark JSON, or holds no row of this suite.

Rows with no timed round are saved beside pytest-benchmark's rows instead of vanishing
(issue 19, item 1). A row whose worker would not start, whose warm-up failed, or none of whose
rounds ran to its end has no time to give pytest-benchmark, which cannot summarize no data
and leaves the row out of its ``benchmarks`` list. Such a row is saved under its own key of the
same document (``unmeasured_rows``, called by bench/conftest.py), with its ``extra_info``
(INVALID, and why) and explicit null timings: ``pytest-benchmark compare`` reads only
``benchmarks`` and still works; this module reads both.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from pytest_benchmark.stats import Stats

from bench.analysis.summary import Row

# Keys every row of this suite carries (the data contract, docs/reference/output.md); a file without them
# was written by something else, or by a version this code cannot read.
REQUIRED_KEYS = (
    "strategy",
    "requests",
    "delay_ms",
    "concurrency",
    "ok",
    "errors",
    "peak_rss_bytes",
    "cpu_seconds",
    "os_threads_peak",
    "monkey_patched",
    "valid",
)


UNMEASURED_KEY = "benchmarks_without_rounds"
NULL_STATS = dict.fromkeys(Stats.fields) | {"rounds": 0, "data": [], "iterations": 1}


def unmeasured_rows(benchmarks) -> list[dict]:
    """This suite's benchmarks that had no round to hand over, as saved entries with null timings."""
    return [
        bench.as_dict(stats=False) | {"stats": dict(NULL_STATS)}
        for bench in benchmarks
        if bench.has_error and not bench.stats and "strategy" in bench.extra_info
    ]


# Strategies renamed when the client became an axis of its own: the name says the model only.
RENAMED_STRATEGIES = {"asyncio-aiohttp": "asyncio-gather", "asyncio-aiohttp-bounded": "asyncio-bounded"}


def migrate(info: dict, seconds: list[float]) -> dict:
    """A row saved by an older version, read as it would be saved now."""
    info = info | {"strategy": RENAMED_STRATEGIES.get(info["strategy"], info["strategy"])}
    if info.get("kind") == "cpu":
        info["client"] = None  # the CPU task never had a client; old runs named the strategy's default
    if "efficiency_vs_bound" not in info and seconds:
        # Saved before issue 22: its "efficiency" was max(ideal, CPU / cores) / median, now
        # efficiency_vs_bound; efficiency is ideal / median, as every table prints it now.
        cores, cpu = info.get("efficiency_cores") or 1, info.get("cpu_seconds")
        info["efficiency_vs_bound"] = info.get("efficiency")
        info["cpu_bound_seconds"] = None if cpu is None else cpu / cores
        info["efficiency"] = info["ideal_seconds"] / statistics.median(seconds)
    return info


class ResultsError(ValueError):
    """The file cannot be used; the message is one line saying why."""


@dataclass
class Run:
    path: Path
    rows: list[Row]
    machine: dict = field(default_factory=dict)
    context: dict = field(default_factory=dict)  # what bench/conftest.py adds: command, versions
    datetime: str = ""

    def groups(self) -> dict[str, list[Row]]:
        grouped: dict[str, list[Row]] = {}
        for row in self.rows:
            grouped.setdefault(row.group, []).append(row)
        return grouped


def load_run(path: str | Path) -> Run:
    path = Path(path)
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ResultsError(f"{path}: a directory, not a results file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsError(f"{path}: not JSON ({type(exc).__name__}: {str(exc).splitlines()[0]})") from None
    return parse_run(document, path)


def parse_run(document, path: Path) -> Run:
    """Rows of this suite from a pytest-benchmark document (a file's contents, or the live run's)."""
    if not isinstance(document, dict) or not isinstance(document.get("benchmarks"), list):
        raise ResultsError(f"{path}: not pytest-benchmark JSON (no 'benchmarks' list)")
    rows = []
    unmeasured = document.get(UNMEASURED_KEY) or []
    for bench in document["benchmarks"] + unmeasured:
        info = bench.get("extra_info") if isinstance(bench, dict) else None
        if not isinstance(info, dict) or "strategy" not in info:
            continue  # another suite's benchmark in the same file
        missing = [key for key in REQUIRED_KEYS if key not in info]
        if missing:
            raise ResultsError(f"{path}: row {bench.get('name')!r} lacks {', '.join(missing)}")
        seconds = (bench.get("stats") or {}).get("data") or info.get("round_seconds")
        if not seconds and info["valid"]:  # only an INVALID row may have no timed round
            raise ResultsError(f"{path}: row {bench.get('name')!r} has no round times")
        rows.append(Row(bench.get("group") or "", list(seconds), migrate(info, seconds)))
    if not rows:
        raise ResultsError(f"{path}: no rows of this suite (no extra_info with 'strategy')")
    return Run(
        path,
        rows,
        document.get("machine_info", {}),
        document.get("coroutine_bench", {}),
        document.get("datetime", ""),
    )


def newest_saved_run(results_dir: Path) -> Path:
    """The most recent run pytest-benchmark saved under results/ (by its run number, then time)."""
    candidates = [p for p in results_dir.glob("*/[0-9][0-9][0-9][0-9]_*.json") if p.parent.name != "baseline"]
    if not candidates:
        raise ResultsError(f"{results_dir}: no saved runs; run `pytest bench/` first or name a file")
    return max(candidates, key=lambda p: (p.stat().st_mtime, p.name))
