"""What N PostgreSQL connections cost here: the server's memory per connection, and opening them.

``python -m bench.targets.postgres_connections [N] [STRATEGY:CLIENT ...]`` starts a throwaway
cluster, and for each pair (default ``asyncio-gather:asyncpg threads:psycopg``) starts its
worker, which opens N connections (one per query in flight), then sums the PSS of every
process of the cluster (``/proc/PID/smaps_rollup``: a backend shares most of its pages with
the postmaster, so RSS would count them once per process), and runs one round of N queries
of 1 s, counted by the database's referee. Each PostgreSQL connection is a server process.
"""

from __future__ import annotations

import sys
import time

from bench.clients import CLIENTS
from bench.harness import process_tree
from bench.harness.rounds import RoundRecorder
from bench.harness.worker_process import WorkerProcess
from bench.strategies import STRATEGIES
from bench.targets.postgres import SPARE_CONNECTIONS, running_postgres
from bench.workload import Workload

DELAY_MS = 1000
MIB = 2**20


def cluster_pss_bytes(server) -> int:
    return process_tree.sample(server.process.pid, with_pss=True).pss_bytes


def measure(server, strategy: str, client: str, n: int) -> str:
    workload = Workload(server.base_url, n, DELAY_MS, n, timeout_s=60)
    idle = cluster_pss_bytes(server)
    referee = server.referee(DELAY_MS)
    started = time.perf_counter()
    try:
        with WorkerProcess(STRATEGIES[strategy], CLIENTS[client], workload, sample_interval_s=0.05) as worker:
            opening_s = time.perf_counter() - started
            connected = cluster_pss_bytes(server)
            recorder = RoundRecorder(worker, referee)
            recorder.warm_up()
            recorder.record_round()
    finally:
        referee.close()
    [r] = recorder.rounds
    return (
        f"{strategy}[{client}]: {n} connections opened in {opening_s:.1f} s (worker start included); "
        f"cluster PSS {idle / MIB:.0f} -> {connected / MIB:.0f} MiB, {(connected - idle) / n / 1024:.0f} KiB "
        f"per connection; a round of {n} x {DELAY_MS} ms: {r['wall_seconds']:.2f} s, ok {r['ok']}, "
        f"the database saw {r.get('server_requests')} queries, at most {r.get('server_max_in_flight')} "
        f"sleeping at once, client CPU {r['cpu_seconds'] * 1000 / n:.2f} ms per query"
    )


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    n = int(args[0]) if args else 1000
    pairs = [pair.split(":") for pair in args[1:]] or [("asyncio-gather", "asyncpg"), ("threads", "psycopg")]
    with running_postgres(n + SPARE_CONNECTIONS) as server:
        for strategy, client in pairs:
            print(measure(server, strategy, client, n), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
