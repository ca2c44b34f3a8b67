"""The delay server's counters, shared by all its worker processes: one exact view in /stats.

Every worker owns a slot (its counters and a lateness histogram) in one anonymous shared
mapping that the parent creates before it forks them. Every update and every read takes one
process-shared lock (a POSIX semaphore), so the figures are exact, not eventually consistent
(a reset cannot lose a concurrent increment, a read sees one instant): ``in_flight`` is a
single total, and ``max_in_flight`` is the peak of that total, not a sum of per-worker peaks
(which would overstate it whenever the workers peak at different moments). The lock costs
~0.4 us uncontended, twice per request; a worker holds it for a few attribute updates.

Lateness (how much later than asked a response left, measured from the request's arrival)
goes into fixed log-spaced buckets, so percentiles over all workers come from the summed
histograms, never from averaged percentiles. Bucket 0 holds everything under 10 us; bucket i
covers [0.01 * 1.02**(i-1), 0.01 * 1.02**i) ms, and a percentile is reported as its bucket's
geometric midpoint: within 1% of the true value. The top bucket starts at 600 s (10 min).
``max`` is kept exactly.
"""

from __future__ import annotations

import ctypes
import math
import mmap
import multiprocessing
import os

from servers import host_counters

LATENESS_FLOOR_MS = 0.01
LATENESS_RATIO = 1.02
LATENESS_CEILING_MS = 600_000.0
LATENESS_BUCKETS = 2 + math.ceil(math.log(LATENESS_CEILING_MS / LATENESS_FLOOR_MS) / math.log(LATENESS_RATIO))
_INVERSE_LOG_RATIO = 1 / math.log(LATENESS_RATIO)

# The counters /stats has always shown, in this order; each worker keeps its own, /stats sums them.
OUTCOMES = ("served", "rejected", "failed_on_purpose", "dropped_on_purpose", "stalled")
SERVED, REJECTED, FAILED_ON_PURPOSE, DROPPED_ON_PURPOSE, STALLED = range(len(OUTCOMES))


class _Totals(ctypes.Structure):
    _fields_ = (
        ("in_flight", ctypes.c_int64),
        ("max_in_flight", ctypes.c_int64),
        ("open_connections", ctypes.c_int64),
        ("parent_pid", ctypes.c_int64),
        ("listen_overflows_at_reset", ctypes.c_int64),
        ("cpu_ticks_at_reset", ctypes.c_int64),
    )


class _WorkerSlot(ctypes.Structure):
    _fields_ = (
        ("pid", ctypes.c_int64),
        ("outcomes", ctypes.c_int64 * len(OUTCOMES)),
        ("lateness_max_ms", ctypes.c_double),
        ("lateness_buckets", ctypes.c_int64 * LATENESS_BUCKETS),
    )


def lateness_bucket(lateness_ms: float) -> int:
    if lateness_ms < LATENESS_FLOOR_MS:
        return 0
    return min(LATENESS_BUCKETS - 1, 1 + int(math.log(lateness_ms / LATENESS_FLOOR_MS) * _INVERSE_LOG_RATIO))


def bucket_midpoint_ms(bucket: int) -> float:
    """The value a bucket stands for: its geometric midpoint (0 for the under-10-us bucket)."""
    if bucket == 0:
        return 0.0
    return LATENESS_FLOOR_MS * LATENESS_RATIO ** (bucket - 1) * math.sqrt(LATENESS_RATIO)


def histogram_percentile(buckets: list[int], pct: float, max_ms: float) -> float:
    """Nearest-rank percentile of a bucketed distribution (as ``servers.percentile`` defines it),
    at bucket resolution and never above the exact maximum. 0 when there are no samples."""
    samples = sum(buckets)
    if not samples:
        return 0.0
    rank = max(1, -(-samples * pct // 100))
    seen = 0
    for bucket, count in enumerate(buckets):
        seen += count
        if seen >= rank:
            return min(bucket_midpoint_ms(bucket), max_ms)
    raise AssertionError("unreachable: the rank is at most the number of samples")


def lateness_summary(buckets: list[int], max_ms: float) -> dict:
    return {
        "samples": sum(buckets),
        "p50": round(histogram_percentile(buckets, 50, max_ms), 3),
        "p99": round(histogram_percentile(buckets, 99, max_ms), 3),
        "max": round(max_ms, 3),
    }


class SharedStats:
    """Created once by the parent; each forked worker then calls ``attach(index)``."""

    def __init__(self, workers: int) -> None:
        layout = type(
            "_Shared",
            (ctypes.Structure,),
            {"_fields_": (("totals", _Totals), ("workers", _WorkerSlot * workers))},
        )
        self._layout = layout
        # An anonymous MAP_SHARED mapping: inherited across fork, nothing to name or unlink.
        self._memory = mmap.mmap(-1, ctypes.sizeof(layout))
        self._shared = layout.from_buffer(self._memory)
        self._totals = self._shared.totals  # a view into the mapping, kept to save a lookup per use
        # fork context: the semaphore is unlinked at once, so no resource-tracker process is started.
        lock = multiprocessing.get_context("fork").Lock()
        # The semaphore's own C methods: `with lock` adds two Python-level calls per use.
        self._acquire, self._release = lock.acquire, lock.release
        self._slot: _WorkerSlot | None = None
        self.worker_index: int | None = None
        self.workers = workers
        self._totals.parent_pid = os.getpid()
        self._totals.listen_overflows_at_reset = host_counters.listen_overflows()

    def attach(self, index: int) -> None:
        """Make this process worker ``index``: its updates go to that slot."""
        self.worker_index = index
        self._slot = self._shared.workers[index]
        self._acquire()
        try:
            self._slot.pid = os.getpid()
        finally:
            self._release()

    # -- updates, from the worker that owns the slot --------------------------------------

    def enter(self) -> None:
        """A delayed request starts: the total in flight, and its peak, go up."""
        totals = self._totals
        self._acquire()
        try:
            totals.in_flight += 1
            if totals.in_flight > totals.max_in_flight:
                totals.max_in_flight = totals.in_flight
        finally:
            self._release()

    def leave(self) -> None:
        self._acquire()
        try:
            self._totals.in_flight -= 1
        finally:
            self._release()

    def finish(self, outcome: int, lateness_ms: float) -> None:
        """A delayed request ends with this outcome: one lock for all three updates."""
        bucket = lateness_bucket(lateness_ms)
        slot = self._slot
        self._acquire()
        try:
            self._totals.in_flight -= 1
            self._record(slot, outcome, lateness_ms, bucket)
        finally:
            self._release()

    def record(self, outcome: int, lateness_ms: float) -> None:
        """Count an outcome whose request stays in flight a while (a drop, a stall)."""
        bucket = lateness_bucket(lateness_ms)
        slot = self._slot
        self._acquire()
        try:
            self._record(slot, outcome, lateness_ms, bucket)
        finally:
            self._release()

    @staticmethod
    def _record(slot: _WorkerSlot, outcome: int, lateness_ms: float, bucket: int) -> None:
        slot.outcomes[outcome] += 1
        slot.lateness_buckets[bucket] += 1
        if lateness_ms > slot.lateness_max_ms:
            slot.lateness_max_ms = lateness_ms

    def count(self, outcome: int) -> None:
        self._acquire()
        try:
            self._slot.outcomes[outcome] += 1
        finally:
            self._release()

    def connection_opened(self) -> int:
        """Count a new connection; return how many are open over all workers."""
        totals = self._totals
        self._acquire()
        try:
            totals.open_connections += 1
            return totals.open_connections
        finally:
            self._release()

    def connection_closed(self) -> None:
        self._acquire()
        try:
            self._totals.open_connections -= 1
        finally:
            self._release()

    # -- reads and reset, from whichever worker answers /stats -----------------------------

    def _copy(self):
        self._acquire()
        try:
            return self._layout.from_buffer_copy(self._memory)
        finally:
            self._release()

    def as_dict(self) -> dict:
        shared = self._copy()
        totals, slots = shared.totals, list(shared.workers)
        pids = [slot.pid for slot in slots]
        merged = [sum(column) for column in zip(*(slot.lateness_buckets for slot in slots), strict=True)]
        figures = {name: sum(slot.outcomes[i] for slot in slots) for i, name in enumerate(OUTCOMES)}
        cpu_ticks = host_counters.cpu_ticks([totals.parent_pid, *pids])
        return figures | {
            "in_flight": totals.in_flight,
            "max_in_flight": totals.max_in_flight,
            "lateness_ms": lateness_summary(merged, max(slot.lateness_max_ms for slot in slots)),
            "workers": len(slots),
            "worker_pids": pids,
            "served_per_worker": [slot.outcomes[SERVED] for slot in slots],
            "open_connections": totals.open_connections,
            "listen_overflows": host_counters.listen_overflows() - totals.listen_overflows_at_reset,
            "cpu_seconds": round((cpu_ticks - totals.cpu_ticks_at_reset) / host_counters.TICKS_PER_SECOND, 3),
        }

    def reset(self) -> None:
        """Start a new observation window for every worker; live state (in flight, open
        connections) is kept, and the peak restarts from what is in flight now."""
        self._acquire()
        try:
            totals = self._shared.totals
            totals.max_in_flight = totals.in_flight
            for slot in self._shared.workers:
                ctypes.memset(slot.outcomes, 0, ctypes.sizeof(slot.outcomes))
                ctypes.memset(slot.lateness_buckets, 0, ctypes.sizeof(slot.lateness_buckets))
                slot.lateness_max_ms = 0.0
            pids = [totals.parent_pid, *(slot.pid for slot in self._shared.workers)]
            totals.listen_overflows_at_reset = host_counters.listen_overflows()
            totals.cpu_ticks_at_reset = host_counters.cpu_ticks(pids)
        finally:
            self._release()
