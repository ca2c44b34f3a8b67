"""Under CI a missing PostgreSQL fails the database tests; elsewhere it skips them (issue 24)."""

import os
import subprocess
import sys

import pytest

from servers.process import PROJECT_ROOT

# Loaded into a pytest run in a subprocess: a machine where no PostgreSQL is found.
NO_POSTGRES_PLUGIN = """
from bench.targets import postgres, postgres_cluster
postgres_cluster.find_bindir = lambda: None
postgres.find_bindir = lambda: None
"""


@pytest.mark.parametrize("ci, outcome", [("true", "1 error"), ("", "1 skipped")])
def test_a_missing_postgresql_fails_in_ci_and_skips_elsewhere(tmp_path, ci, outcome):
    (tmp_path / "no_postgres.py").write_text(NO_POSTGRES_PLUGIN)
    env = os.environ | {"CI": ci, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(PROJECT_ROOT)])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no_postgres",
            "-p",
            "no:cacheprovider",
            "-q",
            "tests/test_db.py::test_the_cluster_logs_in_english_and_records_its_own_priority",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert outcome in done.stdout and done.returncode == (1 if ci else 0), done.stdout[-3000:]
    if ci:
        assert "CI=true, and PostgreSQL is not installed" in done.stdout
