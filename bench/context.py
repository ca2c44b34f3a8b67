"""What a saved run records about where it ran, so that a report can say how to reproduce it."""

from __future__ import annotations

import os
import platform
import shlex
from importlib import metadata

PACKAGES = (
    "gevent",
    "greenlet",
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


def run_context(config) -> dict:
    args = [str(arg) for arg in config.invocation_params.args]
    return {
        "command": shlex.join(["pytest", *args]),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": package_versions(),
    }
