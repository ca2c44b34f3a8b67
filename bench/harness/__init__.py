"""The harness: the machinery that runs and measures. Worker processes and the parent's handle
on them, warm-up and rounds, the interleaving of a workload's rows, the instrument's pre-flight
capacity, memory, the process tree, kernel counters, event loops, a round's timeline, the
CPU-bound control's task, and results written whole or not at all.

This file stays empty: ``python -m bench.harness.gevent_worker`` imports this package before it
can monkey-patch, so nothing here may import socket, threading or ssl.
"""
