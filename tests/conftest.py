"""Test-suite wiring: the README's ``pytest`` on two xdist workers, and no process left behind."""

import os
from pathlib import Path

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config):
    """The whole suite (``pytest``, its paths from testpaths) runs on pytest-xdist, one worker a
    core, each test file on one worker (its module-scoped servers start once). Most of its time
    is waiting on other processes (servers, workers, ``pytest bench/`` runs), so two files at
    once overlap their waits. Set here, not in addopts, because a ``pytest bench/`` run must
    never be distributed (pytest-benchmark disables itself under xdist). Named paths, ``-n``,
    ``-p no:xdist`` and ``--pdb`` run as asked."""
    if (
        config.args_source is pytest.Config.ArgsSource.TESTPATHS
        # An xdist worker is handed numprocesses=None too: it must not start workers of its own.
        and not hasattr(config, "workerinput")
        and config.pluginmanager.hasplugin("xdist")
        and config.option.numprocesses is None
        and not config.option.usepdb
        and not config.option.collectonly
    ):
        config.option.numprocesses = "auto"
        config.option.dist = "loadfile"
        # A crashed worker (a segfault in a C extension) fails the run, and is not replaced: a
        # replacement re-runs what was left of the crashed file, and once left the run waiting
        # forever instead of ending.
        if config.option.maxworkerrestart is None:
            config.option.maxworkerrestart = 0


# Workers that went down with an error. A crash after a worker's last test (a leftover thread
# waking on freed memory) fails no test, and xdist would end the run green.
WORKERS_DOWN: list[str] = []


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    if error:
        WORKERS_DOWN.append(f"{node.gateway.id}: {error}".strip())


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session):
    if WORKERS_DOWN and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    for down in WORKERS_DOWN:
        terminalreporter.write_line(f"an xdist worker went down: {down}", red=True)


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


# Plugins of the test extra that a ``pytest bench/`` never uses: hypothesis's alone imports all of
# hypothesis for its terminal summary, doubling the start-up CPU of every run a test starts
# (measured: 2.7 s -> 1.3 s for ``pytest bench/ --collect-only``).
TEST_ONLY_PLUGINS = ("hypothesispytest", "pytest_httpserver")


@pytest.fixture(scope="session", autouse=True)
def child_runs_are_users_runs():
    """A ``pytest`` a test starts (``pytest bench/`` mostly) runs as a user's would: not as an
    xdist worker (pytest-benchmark takes an inherited PYTEST_XDIST_WORKER for a sign it runs
    under xdist, and would time nothing), and without the suite's own plugins."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("PYTEST_XDIST_")]:
            patch.delenv(name)
        blocked = " ".join(f"-p no:{plugin}" for plugin in TEST_ONLY_PLUGINS)
        patch.setenv("PYTEST_ADDOPTS", f"{os.environ.get('PYTEST_ADDOPTS', '')} {blocked}".strip())
        yield
