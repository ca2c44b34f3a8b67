"""The worker for gevent strategies: patch first, then run the same worker as everyone else.

monkey.patch_all() must run before socket, ssl, threading or requests are imported, or
gevent warns and the patch may not take (design rule 1); the worker verifies it did. Only a
trap row imports something first, on purpose.
The parent sets GEVENT_RESOLVER=ares in this process's environment (see worker_process.py).
"""

import os

# The trap row of issue 18: a driver imported before the patch, as a program importing it at
# the top would (the parent names it for such a client, bench/clients/__init__.py).
if early := os.environ.get("COROUTINE_BENCH_IMPORT_BEFORE_PATCH"):
    __import__(early)

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402  (everything after the patch on purpose)

from bench.harness.worker import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
