"""asyncio's spawn + joinall: one task per URL, awaited together with asyncio.gather."""

import asyncio


async def run(fetch, urls, concurrency):
    return await asyncio.gather(*(fetch(url) for url in urls))
