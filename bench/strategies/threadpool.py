"""A bounded pool of C OS threads: the threaded peer of gevent.pool.Pool(C).

The textbook snippet::

    with ThreadPoolExecutor(max_workers=C) as pool:
        results = list(pool.map(fetch, urls))

Here the pool outlives a round, as every pooled strategy's does (``Strategy.pooled``): the
worker opens it once, in its untimed warm-up, and shuts it down at the end, so a round
measures sending requests through C threads, not starting them.
"""

from concurrent.futures import ThreadPoolExecutor


def open_pool(fetch, concurrency):
    # Always pass the size: the default, min(32, cpus + 4), would quietly change the comparison.
    return ThreadPoolExecutor(max_workers=concurrency)


def run(pool, fetch, urls):
    return list(pool.map(fetch, urls))
