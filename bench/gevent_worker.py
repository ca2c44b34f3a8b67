"""The worker for gevent strategies: patch first, then run the same worker as everyone else.

monkey.patch_all() must run before socket, ssl, threading or requests are imported, or
gevent warns and the patch may not take (design rule 1); the worker verifies it did.
"""

import gevent

# gevent's default resolver sends every getaddrinfo, even of the literal 127.0.0.1, to a
# pool of up to 10 native threads (measured: 11 OS threads in a joinall round instead of 1).
# c-ares resolves cooperatively on the hub, so the gevent rows show gevent's own footprint.
gevent.config.resolver = "ares"

from gevent import monkey  # noqa: E402

monkey.patch_all()

import sys  # noqa: E402  (everything after the patch on purpose)

from bench.worker import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
