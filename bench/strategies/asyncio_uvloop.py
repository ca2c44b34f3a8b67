"""asyncio-gather on uvloop: the same snippet; only the event loop under it is uvloop's.

The worker builds the loop the registry names (``uvloop.new_event_loop()``), as
``uvloop.run(main())`` would: uvloop replaces the loop, never the asyncio code on top of it.
"""

import asyncio


async def run(fetch, urls, concurrency):
    return await asyncio.gather(*(fetch(url) for url in urls))
