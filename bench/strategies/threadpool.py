"""A bounded pool of C OS threads: the threaded peer of gevent.pool.Pool(C)."""

from concurrent.futures import ThreadPoolExecutor


def run(fetch, urls, concurrency):
    # Always pass the size: the default, min(32, cpus + 4), would quietly change the comparison.
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(fetch, urls))
