"""The benchmark suite: the workload, the strategies, the worker processes and the benchmarks.

This file stays empty: ``python -m bench.gevent_worker`` imports this package before it can
monkey-patch, so nothing here may import socket, threading or ssl.
"""
