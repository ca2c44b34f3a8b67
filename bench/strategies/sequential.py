"""The baseline: each request waits for the one before it."""


def run(fetch, urls, concurrency):
    return [fetch(url) for url in urls]
