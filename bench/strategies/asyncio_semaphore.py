"""asyncio's Pool(C): one task per URL, but an asyncio.Semaphore(C) lets only C fetch at once."""

import asyncio


async def run(fetch, urls, concurrency):
    semaphore = asyncio.Semaphore(concurrency)

    async def bounded(url):
        async with semaphore:
            return await fetch(url)

    return await asyncio.gather(*(bounded(url) for url in urls))
