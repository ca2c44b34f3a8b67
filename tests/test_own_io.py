"""--bench-fetch: a user's own IO under every model, with no referee (issue 25).

The rows count what the fetch returned and what it raised; the worked examples are real IO:
a Redis BLPOP that waits out its timeout (Redis counts the calls itself, so the example has
a referee after all) and a child process that sleeps.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest
from redis_server import INSTALL_HINT, available, running_redis_server

from bench.analysis.row_info import row_info
from bench.clients import CLIENTS, OWN_CLIENT
from bench.clients.byo import FetchSpecError, parse_spec, provided_kinds
from bench.harness.rounds import RoundRecorder
from bench.harness.worker_process import WorkerProcess
from bench.options import BenchOptions
from bench.scenarios import SCENARIOS
from bench.strategies import STRATEGIES
from bench.workload import Workload

TESTS = Path(__file__).resolve().parent
OWN = CLIENTS[OWN_CLIENT]
# One model of each kind and family: the blocking models (threads, a pool of threads, greenlets,
# a pool of processes), asyncio's loop and uvloop's, trio's.
MODELS = (
    "threads",
    "threadpool",
    "gevent-joinall",
    "processpool",
    "asyncio-gather",
    "asyncio-uvloop",
    "trio-nursery",
)
N, DELAY_MS, C = 6, 100, 3


@pytest.fixture
def tests_importable(monkeypatch):
    """The workers import a spec's module from their path: put this folder on it."""
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, (str(TESTS), os.environ.get("PYTHONPATH"))))
    )


def own_row(strategy_name: str, spec: str, requests: int = N, rounds: int = 1) -> dict:
    """A row of --bench-fetch as the benchmark records it: one worker, its warm-up, its rounds, no server."""
    strategy = STRATEGIES[strategy_name]
    workload = Workload(
        "", requests=requests, delay_ms=DELAY_MS, concurrency=C, timeout_s=10, fetch_spec=spec
    )
    with WorkerProcess(strategy, OWN, workload, sample_interval_s=0.02) as worker:
        recorder = RoundRecorder(worker, None)
        recorder.warm_up()
        for _ in range(rounds):
            recorder.record_round()
    return row_info(strategy, OWN, workload, worker.monkey_patched, recorder.warmups, recorder.rounds)


@pytest.mark.parametrize("strategy_name", ["threads", "asyncio-gather", "trio-nursery"])
def test_a_fetch_that_raises_once_makes_its_row_invalid_with_the_exceptions_text(
    tests_importable, strategy_name
):
    info = own_row(strategy_name, "own_fetches:raises_once")
    assert (info["ok"], info["errors"], info["valid"]) == (N - 1, 1, False)
    assert "FailedOnPurpose: the round's first call failed on purpose (x1)" in info["invalid_reason"]
    assert info["fetch"] == "own_fetches:raises_once"


@pytest.mark.parametrize("strategy_name", MODELS)
def test_a_sleeping_child_process_under_every_model(strategy_name):
    """Exactly N calls returned; every model that can keep them all waiting at once did, gevent
    included: its patched subprocess waits in the hub."""
    info = own_row(strategy_name, "examples.sleep_subprocess:make_fetch")
    assert (info["ok"], info["errors"], info["valid"]) == (N, 0, True), info["invalid_reason"]
    assert info["client_max_in_flight"] == STRATEGIES[strategy_name].fanout.max_in_flight(N, C)
    assert info["serialized"] is None


@pytest.mark.skipif(not available(), reason=INSTALL_HINT)
@pytest.mark.parametrize("strategy_name", [m for m in MODELS if m != "trio-nursery"])
def test_a_redis_blpop_under_every_model_it_has_a_form_for(monkeypatch, strategy_name):
    """Redis counts the BLPOPs (its command statistics): the warm-up's and the round's, no more."""
    import redis

    with running_redis_server() as url:
        monkeypatch.setenv("BENCH_REDIS_URL", url)
        server = redis.Redis.from_url(url)
        server.config_resetstat()
        info = own_row(strategy_name, "examples.redis_blpop:make_fetch")
        blpops = server.info("commandstats")["cmdstat_blpop"]["calls"]
        server.close()
    allowed = STRATEGIES[strategy_name].fanout.max_in_flight(N, C)
    assert (info["ok"], info["errors"], info["valid"]) == (N, 0, True), info["invalid_reason"]
    assert blpops == min(N, allowed) + N  # the warm-up's call for each request in flight, then the round
    assert info["client_max_in_flight"] == allowed


def test_a_kind_the_factory_lacks_skips_its_models_with_one_line(tests_importable):
    assert provided_kinds("examples.redis_blpop:make_fetch", 0.1, 4) == ("blocking", "asyncio")
    assert provided_kinds("examples.sleep_subprocess:make_fetch", 0.1, 4) == ("blocking", "asyncio", "trio")
    options = BenchOptions(
        requests=N,
        delay_ms=DELAY_MS,
        concurrency=C,
        strategies=tuple(STRATEGIES),
        rounds=1,
        scenarios=("quick",),
        fetch="own_fetches:blocking_only",
    )
    [shape] = SCENARIOS["quick"].shapes(options)
    reasons = {
        strategy.name: shape.skip_reason(strategy, client, options)
        for strategy, client in shape.pairs(options)
    }
    assert reasons["threads"] is None and reasons["gevent-pool"] is None
    assert reasons["asyncio-gather"] == "own_fetches:blocking_only provides no asyncio fetch"
    assert reasons["trio-nursery"] == "own_fetches:blocking_only provides no trio fetch"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("examples.redis_blpop", "is not package.module:name"),
        ("examples.redis_blpop:", "is not package.module:name"),
        ("no_such_module_here:make_fetch", "no module named no_such_module_here"),
        ("no_such_package.module:make_fetch", "cannot find module no_such_package.module"),
    ],
)
def test_a_bad_spec_is_refused_with_its_reason(spec, message):
    with pytest.raises(FetchSpecError, match=message):
        parse_spec(spec)


def test_bench_fetch_replaces_the_client_in_quicks_shape_only():
    options = BenchOptions(
        requests=N, delay_ms=DELAY_MS, concurrency=C, strategies=("threads",), rounds=1, scenarios=("quick",)
    )
    for changes, refused in [
        ({"fetch": "examples.sleep_subprocess:make_fetch", "scenarios": ("story",)}, "--bench-fetch"),
        ({"fetch": "examples.sleep_subprocess:make_fetch", "clients": ("raw",)}, "--bench-fetch"),
        ({"clients": (OWN_CLIENT,)}, "name your factory with --bench-fetch"),
    ]:
        with pytest.raises(ValueError, match=refused):
            replace(options, **changes).check()
    ok = replace(options, fetch="examples.sleep_subprocess:make_fetch")
    ok.check()
    [shape] = SCENARIOS["quick"].shapes(ok)
    assert [row[1].name for row in shape.pairs(ok)] == [OWN_CLIENT]
