"""A row with no timed round is saved INVALID with null timings, and every reader shows why (issue 19, item 1)."""

import copy
import json
import subprocess
import sys
from pathlib import Path

from bench import compare, report
from bench.analysis.results import NULL_STATS, UNMEASURED_KEY, load_run

BASELINE = Path(__file__).resolve().parent.parent / "results" / "baseline" / "baseline.json"
REASON = "worker process 1 failed: threads worker exited (status -9) mid-conversation"


def without_rounds(document: dict, strategy: str) -> dict:
    """The run as bench/conftest.py saves it when ``strategy``'s worker died before any round ended."""
    changed = copy.deepcopy(document)
    row = next(
        b
        for b in changed["benchmarks"]
        if b["extra_info"]["strategy"] == strategy and b["extra_info"]["kind"] == "io"
    )
    changed["benchmarks"].remove(row)
    row["stats"] = dict(NULL_STATS)
    row["extra_info"].update(valid=False, invalid_reason=REASON, round_seconds=[], rounds_by_process=[])
    changed[UNMEASURED_KEY] = [row]
    return changed


def saved(tmp_path, document: dict) -> Path:
    path = tmp_path / "0001_run.json"
    path.write_text(json.dumps(document))
    return path


def test_the_gate_says_why_not_missing(tmp_path, capsys):
    current = saved(tmp_path, without_rounds(json.loads(BASELINE.read_text()), "threads"))
    assert compare.main([str(BASELINE), str(current)]) == 1
    out = capsys.readouterr().out
    assert f"threads[requests]: INVALID in the current run: {REASON}" in out
    assert "missing" not in out


def test_the_report_shows_the_row_invalid_with_its_reason(tmp_path):
    current = saved(tmp_path, without_rounds(json.loads(BASELINE.read_text()), "threads"))
    row = next(r for r in load_run(current).rows if r.info.get("invalid_reason") == REASON)
    assert row.strategy == "threads"
    assert not row.valid and row.round_seconds == [] and row.median_seconds is None
    assert report.main([str(current), "--out", str(tmp_path / "report")]) == 0
    assert f"INVALID: {REASON}" in (tmp_path / "report" / "report.md").read_text()


def test_pytest_benchmark_compare_still_reads_the_file(tmp_path):
    current = saved(tmp_path, without_rounds(json.loads(BASELINE.read_text()), "threads"))
    shown = subprocess.run(
        [sys.executable, "-m", "pytest_benchmark", "compare", str(current)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "gevent-joinall" in shown.stdout
