"""The seed's first snippet: one greenlet per URL with gevent.spawn, then gevent.joinall."""

import gevent


def run(fetch, urls, concurrency):
    greenlets = [gevent.spawn(fetch, url) for url in urls]
    gevent.joinall(greenlets)
    # joinall does not raise (raise_error=False): a greenlet that died has value None,
    # which the worker counts as an error.
    return [greenlet.value for greenlet in greenlets]
