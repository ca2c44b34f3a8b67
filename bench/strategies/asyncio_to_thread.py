"""asyncio tasks that hand a blocking client to threads: asyncio.to_thread, one call per URL.

to_thread runs on the loop's default executor, which nobody sized: ThreadPoolExecutor's
default of min(32, cpus + 4) threads (6 on a 2-core machine), so at most that many requests
are in flight however many tasks wait. That cap is what users get, so it is kept, and the
registry says so (Fanout.DEFAULT_EXECUTOR); sizing the executor to C would make this
threadpool with a loop in front.
"""

import asyncio


async def run(fetch, urls, concurrency):
    return await asyncio.gather(*(asyncio.to_thread(fetch, url) for url in urls))
