"""A pool of C processes, each with its own client: concurrent.futures.ProcessPoolExecutor.

The textbook snippet, with the client made once per process by the pool's initializer::

    with ProcessPoolExecutor(max_workers=C, initializer=start_client) as pool:
        results = list(pool.map(fetch, urls))

Here the pool outlives a round, as every pooled strategy's does (``Strategy.pooled``): the
worker opens it once, in its untimed warm-up, and shuts it down at the end, so a round
measures sending requests through C processes, not starting them.
"""

import multiprocessing
from concurrent.futures import ProcessPoolExecutor

_fetch = None  # in each pool process: its own client's fetch, made by the initializer


def _start_client(make_fetch):
    global _fetch
    _fetch = make_fetch()


def _send(url):
    return _fetch(url)  # an Outcome, a NamedTuple: pickled back to the worker


def open_pool(make_fetch, concurrency):
    # fork, Linux's default before Python 3.14: the processes share the worker's imported code
    # (copy-on-write), and with fork the pool starts all C of them at its first submit, before
    # its own threads, so no process is forked from a multi-threaded one.
    return ProcessPoolExecutor(
        max_workers=concurrency,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_start_client,
        initargs=(make_fetch,),
    )


def run(pool, fetch, urls):
    # Each process calls its own client, made from ``fetch`` by the initializer.
    return list(pool.map(_send, urls))
