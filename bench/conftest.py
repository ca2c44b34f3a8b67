"""Benchmark-only wiring: where runs are saved, which cases run, the tables at the end."""

from pathlib import Path

import pytest
from pytest_benchmark.utils import get_tag

from bench import private_hooks, report
from bench.analysis import story, summary
from bench.analysis.results import UNMEASURED_KEY, ResultsError, parse_run, unmeasured_rows
from bench.analysis.summary import row_label
from bench.harness import atomic_results, file_limits, priority, process_tree
from bench.harness.cpu_task import calibrate_spin
from bench.harness.interleave import RowRecord, run_interleaved
from bench.harness.preflight import ATTEMPTS, Capacity, measure_capacity
from bench.options import BenchOptions
from bench.reporting import provenance
from bench.reporting.context import SERVER_INFO, run_context
from bench.scenarios import CPU_TASK_MS, SCENARIOS, Ladder, Shape
from bench.targets import DELAY, OWN, POSTGRES
from bench.workload import HOST_NAME, Workload, by_name, fault_query

RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"
PYTEST_BENCHMARK_DEFAULT_STORAGE = "file://./.benchmarks"
SAVED_RUN = pytest.StashKey[dict]()
LADDER = pytest.StashKey[Ladder]()
# The work tree at the session's start and before saving (bench/reporting/provenance.py).
TREE_AT = pytest.StashKey[dict]()


def pytest_configure(config):
    # Under pytest-xdist pytest-benchmark switches itself off with a warning and every row would
    # be run but timed by nobody: the rows interleave their own worker processes instead.
    if config.getoption("numprocesses", None) or config.getoption("dist", "no") != "no":
        raise pytest.UsageError(
            "pytest bench/ runs its rows in worker processes of its own, taking turns: "
            "run it without pytest-xdist's -n/--dist (pytest-benchmark times nothing under xdist)"
        )
    # Runs before pytest-benchmark reads its options (its pytest_configure is trylast), so
    # `pytest bench/` saves every run under results/ unless the user chose a storage.
    if config.getoption("benchmark_storage") == PYTEST_BENCHMARK_DEFAULT_STORAGE:
        config.option.benchmark_storage = f"file://{RESULTS_DIR}"
    if not config.getoption("benchmark_save") and not config.getoption("benchmark_autosave"):
        config.option.benchmark_autosave = get_tag()
    # Keep every round's time, not only the summary: the verdicts and the gate need them.
    config.option.benchmark_save_data = True
    atomic_results.install()


def pytest_sessionstart(session):
    """Record the tree the run starts from; stop before anything runs if a library lacks a
    private attribute the suite relies on."""
    session.config.stash[TREE_AT] = {"start": provenance.tree_state(RESULTS_DIR.parent)}
    if absent := private_hooks.missing(session.config):
        pytest.exit(private_hooks.message(absent), returncode=pytest.ExitCode.USAGE_ERROR)


def pytest_report_header(config):
    """Said once, at start: what this machine lacks to measure a pool of processes (issue 19, item 5)."""
    return [f"coroutine-bench: {missing}" for missing in process_tree.missing_facilities()]


@pytest.hookimpl(hookwrapper=True, tryfirst=True)  # outside pytest-benchmark's, which saves
def pytest_sessionfinish(session, exitstatus):
    """Ctrl-C: save nothing. A half-finished run would look like a whole one to the gate."""
    benchmarks = getattr(session.config, "_benchmarksession", None)
    if exitstatus == pytest.ExitCode.INTERRUPTED and benchmarks is not None:
        benchmarks.save = benchmarks.autosave = benchmarks.json = None
    # Before pytest-benchmark writes anything: a run saved into a tracked file (the baseline)
    # would otherwise make its own end look dirty.
    session.config.stash.setdefault(TREE_AT, {})["end"] = provenance.tree_state(RESULTS_DIR.parent)
    yield


def pytest_generate_tests(metafunc):
    """One test per (workload shape, strategy, client), in scenario order, then registry order."""
    if "shape" in metafunc.fixturenames:
        options = BenchOptions.from_config(metafunc.config)
        # everything and quick are one workload: asked for both, it runs once.
        shapes = dict.fromkeys(
            shape for name in options.scenarios for shape in SCENARIOS[name].shapes(options)
        )
        cases = [
            pytest.param(shape, strategy, client, id=f"{shape.test_id}-{row_label(strategy.name, client)}")
            for shape in shapes
            for strategy, client in shape.pairs(options)
        ]
        metafunc.parametrize(("shape", "strategy", "client"), cases)


@pytest.fixture(scope="session")
def cpu_iterations() -> int:
    """The CPU task's size, calibrated once here so every strategy's worker does the same work."""
    return calibrate_spin(CPU_TASK_MS)


class Workloads:
    """Each workload's rows, run together and interleaved the first time one of its tests asks."""

    def __init__(self, options: BenchOptions, server, request) -> None:
        self.options = options
        self.server = server
        self.request = request
        self._records: dict[Shape, dict] = {}
        self.capacities: dict[Shape, Capacity] = {}
        self.round_trip_ms = {server.base_url: server.round_trip_ms()}
        # What --bench-server-priority applied to the server (conftest.py records it), for every row.
        self.server_priority = request.config.stash.get(SERVER_INFO, {}).get("priority")
        self.file_limit = file_limits.for_run(server)
        self._file_limit_told: set[Shape] = set()
        self.ladder = request.config.stash[LADDER] = Ladder(self._certify)

    def target(self, shape: Shape):
        """What a workload's requests go to: PostgreSQL (started the first time a workload asks for
        it), or the session's delay server, or for a connections cell that differs in TLS, the other one."""
        if shape.target == POSTGRES:
            target = self.request.getfixturevalue("postgres_server")
        elif (tls := shape.connecting(self.options).tls) == bool(self.server.ca_file):
            target = self.server
        else:
            target = self.request.getfixturevalue("tls_delay_server" if tls else "plain_delay_server")
        if target.base_url not in self.round_trip_ms:
            self.round_trip_ms[target.base_url] = target.round_trip_ms()
        return target

    def server_priority_for(self, shape: Shape) -> dict | None:
        """The priority the row's target ran at: the delay server's as --bench-server-priority
        set it, or PostgreSQL's as it was (that option never touches the database)."""
        if shape.target == POSTGRES:
            return self.target(shape).priority()
        return self.server_priority

    def workload(self, shape: Shape) -> Workload:
        if shape.target == OWN:  # the user's own IO: no server, no URL it reads (bench/clients/byo.py)
            return Workload(
                base_url="",
                requests=shape.requests,
                delay_ms=shape.delay_ms,
                concurrency=shape.concurrency,
                timeout_s=self.options.timeout_s,
                fetch_spec=shape.fetch,
                worker_nice=priority.worker_nice_increment(self.options.server_priority),
            )
        cpu = shape.kind == "cpu"
        database = shape.target == POSTGRES
        cell = shape.connecting(self.options)
        target = self.target(shape)
        return Workload(
            base_url=by_name(target.base_url) if cell.host == HOST_NAME and not database else target.base_url,
            requests=shape.requests,
            delay_ms=shape.delay_ms,
            concurrency=shape.concurrency,
            kind=shape.kind,
            cpu_iterations=self.request.getfixturevalue("cpu_iterations") if cpu else 0,
            timeout_s=self.options.timeout_s,
            # The faults are the delay server's; a database is only ever asked to sleep.
            fault_query="" if database else fault_query(self.options.fail_rate, self.options.drop_rate),
            round_trip_ms=0.0 if cpu else self.round_trip_ms[target.base_url],
            connection=cell.connection,
            ca_file="" if database else target.ca_file,
            worker_nice=priority.worker_nice_increment(self.options.server_priority),
        )

    def skip_reason(self, shape: Shape, strategy, client) -> str | None:
        """Why a row will not run: too long for --bench-max-seconds, or more in flight than open files allow."""
        self._tell_file_limit(shape)
        return shape.skip_reason(strategy, client, self.options) or self._beyond_file_limit(shape, strategy)

    def _beyond_file_limit(self, shape: Shape, strategy) -> str | None:
        if shape.kind != "io":
            return None
        return self.file_limit.skip_reason(strategy.fanout.max_in_flight(shape.requests, shape.concurrency))

    def _tell_file_limit(self, shape: Shape) -> None:
        """Once per workload, before its first row runs or is skipped: the one line saying that
        open files cap it (issue 15, item 4)."""
        if shape not in self._file_limit_told:
            self._file_limit_told.add(shape)
            if any(self._beyond_file_limit(shape, s) for s, _ in shape.pairs(self.options)):
                self._say(shape, self.file_limit.describe())

    def record(self, shape: Shape, strategy, client) -> RowRecord:
        if shape not in self._records:
            rows = [(s, c) for s, c in shape.pairs(self.options) if not self.skip_reason(shape, s, c)]
            if shape.kind == "io" and shape.target == DELAY and rows:
                self._preflight(shape, rows)
            # The database's referee reads its own statistics; each workload has its own.
            referee = self.target(shape).referee(shape.delay_ms) if shape.target == POSTGRES else None
            try:
                self._records[shape] = run_interleaved(
                    rows,
                    self.workload(shape),
                    referee or (self.target(shape) if shape.kind == "io" and shape.target != OWN else None),
                    rounds=shape.rounds or self.options.rounds,
                    processes=shape.processes or self.options.processes,
                )
            finally:
                if referee:
                    referee.close()
        return self._records[shape][row_label(strategy.name, client)]

    def _certify(self, shape: Shape) -> Capacity | None:
        """A ladder's rung is held or not: its preflight is one burst, not halved."""
        rows = shape.pairs(self.options)
        return self._preflight(shape, rows, attempts=1) if rows else None

    def _preflight(self, shape: Shape, rows, attempts: int = ATTEMPTS) -> Capacity:
        if shape in self.capacities:
            return self.capacities[shape]
        in_flight = max(s.fanout.max_in_flight(shape.requests, shape.concurrency) for s, _ in rows)
        capacity = measure_capacity(self.target(shape), self.workload(shape), in_flight, attempts)
        self.capacities[shape] = capacity
        self._say(shape, capacity.describe())
        return capacity

    def _say(self, shape: Shape, text: str) -> None:
        """A line about the instrument, printed before the workload runs, whatever the capture."""
        plugins = self.request.config.pluginmanager
        reporter, capture = plugins.get_plugin("terminalreporter"), plugins.get_plugin("capturemanager")
        if reporter and capture:
            with capture.global_and_fixture_disabled():
                reporter.ensure_newline()
                reporter.write_line(f"instrument, {shape.group}: {text}")


@pytest.fixture(scope="session")
def workloads(bench_options, delay_server, request) -> Workloads:
    return Workloads(bench_options, delay_server, request)


def pytest_benchmark_update_json(config, benchmarks, output_json):
    """Record what a reader of the saved run needs to trust and reproduce it."""
    output_json["coroutine_bench"] = run_context(config) | {provenance.KEY: config.stash.get(TREE_AT, {})}
    output_json[UNMEASURED_KEY] = unmeasured_rows(benchmarks)
    config.stash[SAVED_RUN] = output_json


@pytest.hookimpl(trylast=True)  # after pytest-benchmark's own table
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    session = getattr(config, "_benchmarksession", None)
    rows = summary.rows_from_session(session.benchmarks if session else [])
    for line in summary.render(rows):
        terminalreporter.write_line(line)
    ladder = config.stash.get(LADDER, None)
    skipped = [
        story.Skipped(shape.scenario, shape.requests, label, reason)
        for shape, labels in (ladder.skipped.items() if ladder else [])
        for label, reason in labels.items()
    ]
    if closing := story.story_lines(
        rows, [shape.requests for shape in ladder.stops] if ladder else [], skipped
    ):
        terminalreporter.write_line("")
        for line in closing:
            terminalreporter.write_line(line)
    if config.getoption("bench_report") and exitstatus == pytest.ExitCode.INTERRUPTED:
        terminalreporter.write_line("no report written: the run was interrupted")
    elif config.getoption("bench_report"):
        try:
            run = parse_run(config.stash.get(SAVED_RUN, {"benchmarks": []}), Path("this run"))
        except ResultsError as exc:
            terminalreporter.write_line(f"no report written: {exc}")
        else:
            written = report.write_report([run], report.DEFAULT_OUT)
            terminalreporter.write_line(
                f"report written to {report.DEFAULT_OUT}: {', '.join(p.name for p in written)}"
            )
