"""The seed's second snippet: gevent.pool.Pool(C).map caps how many greenlets run at once."""

from gevent.pool import Pool


def run(fetch, urls, concurrency):
    pool = Pool(concurrency)
    return pool.map(fetch, urls)
