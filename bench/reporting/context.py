"""What a saved run records about where it ran, so that a report can say how to reproduce it."""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import ssl
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

# bench.versions runs the suite under several Pythons; each run starts its own delay server, all
# under the interpreter named here, so that only the client's Python changes between the runs.
SERVER_PYTHON_VARIABLE = "COROUTINE_BENCH_SERVER_PYTHON"

# Which delay server the run used, set by the delay_server fixture (conftest.py).
SERVER_INFO = pytest.StashKey[dict]()

PACKAGES = (
    "gevent",
    "greenlet",
    "uvloop",
    "trio",
    "anyio",  # the AsyncClient of httpx2 runs on trio through it
    "requests",
    "urllib3",
    "httpx2",
    "httpcore2",
    "geventhttpclient",
    "aiohttp",
    "pytest",
    "pytest-benchmark",
)


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def server_python_executable() -> str:
    """The interpreter that runs the delay server: $COROUTINE_BENCH_SERVER_PYTHON, else this one."""
    return os.environ.get(SERVER_PYTHON_VARIABLE) or sys.executable


def python_of(executable: str) -> dict:
    """sys.version and sys.executable of an interpreter (this one, or asked in a subprocess)."""
    if executable == sys.executable:
        return {"version": sys.version, "executable": sys.executable}
    probe = "import json, sys; print(json.dumps({'version': sys.version, 'executable': sys.executable}))"
    try:
        done = subprocess.run(
            [executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True
        )
        return json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return {"version": f"unknown ({type(exc).__name__})", "executable": executable}


# An absolute path's folders, at the start of a word or of an option's value (file:// too).
_FOLDERS = re.compile(r"(?:(?<=[\s=])|^)(file://)?/(?:[^\s'\"/]+/)+")


def _portable_python(python: dict) -> dict:
    return python | {"executable": portable(python["executable"])}


def portable(command: str) -> str:
    """The command with every absolute path cut to its last part (``…/run.json``).

    Where the files of one run went on one machine reproduces nothing elsewhere, and a
    committed report must not carry a machine's paths (issue 16).
    """
    return _FOLDERS.sub(lambda match: (match.group(1) or "") + "…/", command)


def run_context(config) -> dict:
    """What a saved run records of its machine and command: versions, never the machine's paths
    (a saved run may be committed, as the baseline is; issue 16)."""
    args = [str(arg) for arg in config.invocation_params.args]
    return {
        "command": portable(shlex.join(["pytest", *args])),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": package_versions(),
        "client_python": _portable_python(python_of(sys.executable)),
        "server_python": _portable_python(python_of(server_python_executable())),
        "server": config.stash.get(SERVER_INFO, {}),
        "openssl": ssl.OPENSSL_VERSION,
        # New connections (--bench-connection new) meet these (issue 17).
        "tcp_tw_reuse": _read_sysctl("net/ipv4/tcp_tw_reuse"),
        "ephemeral_ports": _read_sysctl("net/ipv4/ip_local_port_range"),
    }


def _read_sysctl(name: str) -> str | None:
    try:
        return " ".join(Path("/proc/sys", name).read_text().split())
    except OSError:
        return None
