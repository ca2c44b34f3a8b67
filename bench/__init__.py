"""The benchmark suite: the workload, the strategies, the worker processes and the benchmarks.

This file stays empty: ``python -m bench.harness.gevent_worker`` imports this package (and
``bench.harness``) before it can monkey-patch, so nothing here may import socket, threading or ssl.
"""
