"""trio's spawn + joinall: one task per URL, started in a nursery, which waits for all of them."""

import trio


async def run(fetch, urls, concurrency):
    results = [None] * len(urls)

    async def task(i, url):
        results[i] = await fetch(url)

    async with trio.open_nursery() as nursery:
        for i, url in enumerate(urls):
            nursery.start_soon(task, i, url)
    return results
