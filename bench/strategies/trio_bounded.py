"""trio's Pool(C): one task per URL in a nursery, but a trio.CapacityLimiter(C) lets only C fetch at once."""

import trio


async def run(fetch, urls, concurrency):
    limiter = trio.CapacityLimiter(concurrency)
    results = [None] * len(urls)

    async def task(i, url):
        async with limiter:
            results[i] = await fetch(url)

    async with trio.open_nursery() as nursery:
        for i, url in enumerate(urls):
            nursery.start_soon(task, i, url)
    return results
