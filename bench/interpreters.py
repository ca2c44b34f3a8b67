"""Find a Python interpreter by version (``3.12``) or path, and say where we looked when we can't.

The order: ``python3.12`` on PATH, then pyenv's installed versions, then uv's managed Pythons.
Every candidate is run once and must report the asked version: pyenv's shims sit on PATH under
every name and refuse (exit 127) a version that is not selected, so a name on PATH proves nothing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

VERSION_SPEC = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?$")
# Starting an interpreter takes ~20 ms; a cold one on a loaded machine, far less than this.
PROBE_TIMEOUT_S = 20.0
# The executable reported is the base interpreter: a venv's python (an activated .venv is on
# PATH too) names its base, and a shim that runs names the interpreter it ran.
PROBE = (
    "import json, platform, sys; venv = sys.prefix != sys.base_prefix; "
    "print(json.dumps({'version': platform.python_version(), "
    "'executable': getattr(sys, '_base_executable', sys.executable) if venv else sys.executable, "
    "'sys_version': sys.version, 'implementation': platform.python_implementation()}))"
)


@dataclass(frozen=True)
class Interpreter:
    asked: str
    executable: str  # the real interpreter (a shim resolves to it), as it reports itself
    version: str  # platform.python_version(), e.g. "3.12.1"
    sys_version: str  # sys.version: the build too, for the venv cache key
    implementation: str
    found_by: str  # "PATH", "pyenv", "uv" or "path given"

    @property
    def feature_version(self) -> str:
        return ".".join(self.version.split(".")[:2])


@dataclass
class NotFound:
    asked: str
    looked: list[str] = field(default_factory=list)

    def message(self) -> str:
        return f"Python {self.asked}: not found. Looked at:\n" + "\n".join(f"  - {w}" for w in self.looked)


def probe(executable: str | Path, environ: Mapping[str, str] | None = None) -> dict | str:
    """What the interpreter says about itself, or why it could not say it (a one-line reason)."""
    try:
        done = subprocess.run(
            [str(executable), "-c", PROBE],
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            env=dict(environ) if environ is not None else None,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"{type(exc).__name__}: {exc}"
    if done.returncode != 0:
        first = (done.stderr.strip().splitlines() or ["no message"])[0]
        return f"exit status {done.returncode} ({first})"
    try:
        facts = json.loads(done.stdout.strip().splitlines()[-1])
        if not (isinstance(facts, dict) and facts.get("version") and facts.get("executable")):
            raise ValueError("no version or executable")
    except (ValueError, IndexError):
        return f"did not answer like a Python interpreter: {done.stdout.strip()[:80]!r}"
    return facts


def matches(version: str, spec: str) -> bool:
    return version == spec or version.startswith(spec + ".")


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in re.split(r"[.-]", name))


def pyenv_root(environ: Mapping[str, str]) -> tuple[Path, str]:
    """pyenv's root and how we learnt it: `pyenv root`, else $PYENV_ROOT, else ~/.pyenv."""
    pyenv = shutil.which("pyenv", path=environ.get("PATH", ""))
    if pyenv:
        try:
            done = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, env=dict(environ)
            )
            if done.returncode == 0 and done.stdout.strip():
                return Path(done.stdout.strip()), "`pyenv root`"
        except (OSError, subprocess.SubprocessError):
            pass
    if environ.get("PYENV_ROOT"):
        return Path(environ["PYENV_ROOT"]), "$PYENV_ROOT"
    return Path(environ.get("HOME", str(Path.home()))) / ".pyenv", "~/.pyenv"


def _path_candidates(name: str, environ: Mapping[str, str]) -> list[Path]:
    found = []
    for folder in environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / name
        if candidate.is_file() and os.access(candidate, os.X_OK) and candidate not in found:
            found.append(candidate)
    return found


def _pyenv_candidates(spec: str, root: Path, name: str) -> list[Path]:
    versions = sorted(
        (d for d in (root / "versions").glob(f"{spec}*") if matches(d.name, spec)),
        key=lambda d: _version_key(d.name),
        reverse=True,  # the newest patch release first
    )
    return [
        binary for d in versions for binary in (d / "bin" / name, d / "bin" / "python3") if binary.is_file()
    ]


def _uv_candidates(spec: str, name: str, environ: Mapping[str, str]) -> tuple[list[Path], str]:
    uv = shutil.which("uv", path=environ.get("PATH", ""))
    if uv:
        try:
            done = subprocess.run(
                [uv, "python", "find", spec],
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_S,
                env=dict(environ),
            )
            if done.returncode == 0 and done.stdout.strip():
                return [Path(done.stdout.strip())], f"`uv python find {spec}`"
            where = f"`uv python find {spec}` (found none)"
        except (OSError, subprocess.SubprocessError) as exc:
            where = f"`uv python find {spec}` ({type(exc).__name__})"
    else:
        where = "uv (not on PATH)"
    data = environ.get("XDG_DATA_HOME") or str(
        Path(environ.get("HOME", str(Path.home()))) / ".local" / "share"
    )
    managed = Path(data) / "uv" / "python"
    folders = sorted(managed.glob(f"cpython-{spec}*"), key=lambda d: _version_key(d.name[8:]), reverse=True)
    binaries = [d / "bin" / name for d in folders if (d / "bin" / name).is_file()]
    return binaries, f"{where}; {managed}/cpython-{spec}.*/bin/{name}"


def find_interpreter(spec: str, environ: Mapping[str, str] | None = None) -> Interpreter | NotFound:
    """The first interpreter that really runs and reports version ``spec``, or where we looked."""
    environ = os.environ if environ is None else environ
    if not VERSION_SPEC.match(spec):
        return _given_path(spec, environ)
    major, minor = VERSION_SPEC.match(spec).groups()[:2]
    name = f"python{major}.{minor}"
    result = NotFound(spec)

    def first_that_runs(candidates: list[Path], source: str, where: str) -> Interpreter | None:
        refused = []
        for candidate in candidates:
            facts = probe(candidate, environ)
            if isinstance(facts, str):
                refused.append(f"{candidate}: {facts}")
            elif not matches(facts["version"], spec):
                refused.append(f"{candidate}: reports Python {facts['version']}")
            else:
                return Interpreter(
                    spec,
                    facts["executable"],
                    facts["version"],
                    facts.get("sys_version", facts["version"]),
                    facts.get("implementation", "CPython"),
                    source,
                )
        result.looked.append(f"{where}: " + ("; ".join(refused) if refused else "none"))
        return None

    found = first_that_runs(_path_candidates(name, environ), "PATH", f"{name} on PATH")
    if found:
        return found
    root, how = pyenv_root(environ)
    found = first_that_runs(
        _pyenv_candidates(spec, root, name), "pyenv", f"pyenv ({how}): {root}/versions/{spec}*/bin/{name}"
    )
    if found:
        return found
    candidates, where = _uv_candidates(spec, name, environ)
    return first_that_runs(candidates, "uv", where) or result


def _given_path(spec: str, environ: Mapping[str, str]) -> Interpreter | NotFound:
    path = Path(spec).expanduser()
    if not path.exists():
        resolved = shutil.which(spec, path=environ.get("PATH", ""))
        if not resolved:
            return NotFound(
                spec, [f"{spec}: no such file, and not a command on PATH (a version looks like 3.12)"]
            )
        path = Path(resolved)
    facts = probe(path, environ)
    if isinstance(facts, str):
        return NotFound(spec, [f"{path}: {facts}"])
    return Interpreter(
        spec,
        facts["executable"],
        facts["version"],
        facts.get("sys_version", facts["version"]),
        facts.get("implementation", "CPython"),
        "path given",
    )
