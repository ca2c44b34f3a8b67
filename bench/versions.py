"""Python versions side by side: ``python -m bench.versions PYTHON [PYTHON...] [--out DIR] [-- ARGS...]``.

For each PYTHON (a version such as ``3.12``, or a path to an interpreter) it finds the
interpreter (bench/interpreters.py), builds or reuses a virtual environment for it under
``.venvs/``, and runs ``pytest bench/ ARGS`` with that environment's python, one interpreter
after the other, never at once. Each run is saved as ``DIR/<version>.json`` (default
``results/versions/``); none autosaves into results/<machine>/. The delay server runs under
the interpreter running this command for every run, so only the client's Python changes.
At the end the report on all the runs is written to ``DIR/report/`` and the versions tables
to ``DIR/versions.md``. Exit status: 0 when every Python was found and its run passed, 1
otherwise (the others still run), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import report
from bench.analysis.results import ResultsError, load_run
from bench.interpreters import Interpreter, NotFound, find_interpreter
from bench.reporting import versions_report
from bench.reporting.context import SERVER_PYTHON_VARIABLE

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENVS_DIR = PROJECT_ROOT / ".venvs"
DEFAULT_OUT = PROJECT_ROOT / "results" / "versions"
COMPLETE_MARKER = ".coroutine-bench-complete"
# bench.versions chooses where each run is saved; a user's own choice would be overridden.
RESERVED_OPTIONS = ("--benchmark-json", "--benchmark-storage", "--benchmark-save", "--benchmark-autosave")


def cache_key(interpreter: Interpreter, pyproject: Path = PROJECT_ROOT / "pyproject.toml") -> str:
    """A new key, hence a new environment, when the dependencies or the interpreter's build change."""
    digest = hashlib.sha256(pyproject.read_bytes())
    digest.update(f"\0{interpreter.sys_version}\0{interpreter.executable}".encode())
    return digest.hexdigest()[:12]


def venv_dir(interpreter: Interpreter, venvs_dir: Path = VENVS_DIR) -> Path:
    return venvs_dir / f"py{interpreter.feature_version}-{cache_key(interpreter)}"


def venv_python(target: Path) -> Path:
    return target / "bin" / "python"


def ensure_venv(interpreter: Interpreter, venvs_dir: Path = VENVS_DIR) -> Path:
    """The environment's python, built (project installed, editable) only when the cache has none."""
    target = venv_dir(interpreter, venvs_dir)
    if (target / COMPLETE_MARKER).exists():
        print(f"bench.versions: reusing {target}", flush=True)
        return venv_python(target)
    # Environments built for this interpreter from an older pyproject.toml are of no further use.
    for stale in venvs_dir.glob(f"py{interpreter.feature_version}-*"):
        marker = stale / COMPLETE_MARKER
        if stale != target and (
            not marker.exists() or json.loads(marker.read_text()).get("executable") == interpreter.executable
        ):
            shutil.rmtree(stale, ignore_errors=True)
    shutil.rmtree(target, ignore_errors=True)  # a build that did not finish
    print(f"bench.versions: building {target} (Python {interpreter.version})", flush=True)
    subprocess.run([interpreter.executable, "-m", "venv", str(target)], check=True)
    python = venv_python(target)
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-e",
            str(PROJECT_ROOT),
        ],
        check=True,
    )
    (target / COMPLETE_MARKER).write_text(
        json.dumps({"executable": interpreter.executable, "sys_version": interpreter.sys_version})
    )
    return python


def pytest_command(python: Path, pytest_args: list[str], json_path: Path, storage: Path) -> list[str]:
    return [
        str(python),
        "-m",
        "pytest",
        "bench/",
        *pytest_args,
        f"--benchmark-storage=file://{storage}",
        f"--benchmark-json={json_path}",
    ]


def run_name(interpreter: Interpreter, taken: set[str]) -> str:
    """``3.12``; the full version when two interpreters share a feature version; then a suffix."""
    for name in (interpreter.feature_version, interpreter.version):
        if name not in taken:
            return name
    number = 2
    while f"{interpreter.version}-{number}" in taken:
        number += 1
    return f"{interpreter.version}-{number}"


def run_one(interpreter: Interpreter, python: Path, pytest_args: list[str], json_path: Path) -> int:
    """One ``pytest bench/`` under ``python``; its autosave goes to a temporary storage, then away."""
    json_path.unlink(missing_ok=True)  # never report a previous invocation's file as this one's
    env = os.environ | {SERVER_PYTHON_VARIABLE: sys.executable}
    with tempfile.TemporaryDirectory(prefix="bench-versions-") as storage:
        command = pytest_command(python, pytest_args, json_path, Path(storage))
        print(f"bench.versions: {' '.join(command)}", flush=True)
        return subprocess.run(command, cwd=PROJECT_ROOT, env=env, stdin=subprocess.DEVNULL).returncode


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    own, pytest_args = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    parser = argparse.ArgumentParser(
        prog="python -m bench.versions",
        description="Run pytest bench/ under several Pythons, one after the other, each run's delay "
        "server under this interpreter, and write the report on the runs. Arguments after -- go to "
        "pytest bench/.",
    )
    parser.add_argument(
        "pythons", nargs="+", metavar="PYTHON", help="a version such as 3.12, or an interpreter's path"
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_OUT,
        help=f"where the runs and the report go (default {DEFAULT_OUT})",
    )
    args = parser.parse_args(own)
    reserved = [arg for arg in pytest_args if arg.split("=")[0] in RESERVED_OPTIONS]
    if reserved:
        parser.error(f"{', '.join(reserved)}: bench.versions chooses where each run is saved (--out)")
    return args, pytest_args


def main(argv: list[str] | None = None) -> int:
    args, pytest_args = parse_args(sys.argv[1:] if argv is None else argv)
    out: Path = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    saved: list[Path] = []
    found: list[Interpreter] = []
    for spec in args.pythons:
        result = find_interpreter(spec)
        if isinstance(result, NotFound):
            print(f"bench.versions: {result.message()}", file=sys.stderr, flush=True)
            problems.append(f"Python {spec}: not found")
        else:
            print(
                f"bench.versions: Python {spec} -> {result.executable} ({result.version}, found by {result.found_by})"
            )
            found.append(result)
    names: set[str] = set()
    for interpreter in found:
        name = run_name(interpreter, names)
        names.add(name)
        print(f"\n===== Python {interpreter.version} ({interpreter.executable}) =====", flush=True)
        try:
            python = ensure_venv(interpreter)
        except subprocess.CalledProcessError as exc:
            problems.append(f"Python {interpreter.version}: building its environment failed ({exc})")
            continue
        status = run_one(interpreter, python, pytest_args, out / f"{name}.json")
        if status != 0:
            problems.append(f"Python {interpreter.version}: pytest bench/ exited with status {status}")
        if (out / f"{name}.json").exists():
            saved.append(out / f"{name}.json")
    if saved:
        try:
            runs = [load_run(path) for path in saved]
        except ResultsError as exc:
            problems.append(f"report: {exc}")
        else:
            written = report.write_report(runs, out / "report")
            (out / "versions.md").write_text(versions_report.markdown(runs))
            print("\n".join(versions_report.text(runs)))
            print(f"\nbench.versions: runs {', '.join(str(p) for p in saved)}")
            print(f"bench.versions: report {out / 'report'} ({', '.join(p.name for p in written)})")
            if not versions_report.several_pythons(runs):
                print("bench.versions: only one Python ran, so the report has no versions table")
    else:
        problems.append("no run was saved: nothing to report")
    for problem in problems:
        print(f"bench.versions: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("bench.versions: interrupted", file=sys.stderr)
        sys.exit(130)
