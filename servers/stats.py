"""The delay server's counters, shared by all its worker processes: one exact view in /stats.

Every worker owns a slot (its counters and a lateness histogram) in one anonymous shared
mapping that the parent creates before it forks them, and only that worker ever writes it:
no lock per request (issue 15: the per-request semaphore of the first design cost ~1 us a
request and serialized the workers). A counter is an aligned 64-bit integer, which its owner
updates and any reader loads whole, so /stats, summing the slots when read, sees exact totals.

A reset never writes another worker's slot (a read-modify-write racing its owner would lose an
increment). It copies the counters into a baseline instead, and /stats reports counters minus
baseline; maxima (the lateness max, the in-flight peak) belong to the reset's epoch, which each
worker checks when it updates them. Resets and reads of the whole mapping take the one
process-shared lock, so two of them never interleave; requests never take it.

``in_flight`` is a single total, and ``max_in_flight`` is the peak of that total, not a sum of
per-worker peaks (which would overstate it whenever the workers peak at different moments). A
total only peaks when a request enters, so a worker entering a request reads every slot's
in_flight and keeps the largest total it has seen in its own slot; /stats reports the largest
over the workers. With two workers that total is exact at the instant of the read (the worker's
own count cannot change while it reads the other's); the peak is missed only if another worker
finished a request in the ~100 ns between the increment and the read, by one request. With more
workers the reads of different slots are ~50 ns apart and can be off by a request that entered
or left meanwhile. An atomic add on one shared counter would be exact, but Python has none
(ctypes' call into libatomic costs as much as the lock it replaces).

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


class _Control(ctypes.Structure):
    """Written by reset (under the lock) only, but for ``release_generation``."""

    _fields_ = (
        ("epoch", ctypes.c_int64),
        ("max_in_flight_at_reset", ctypes.c_int64),
        ("parent_pid", ctypes.c_int64),
        ("listen_overflows_at_reset", ctypes.c_int64),
        ("parent_cpu_ns_at_reset", ctypes.c_int64),
        ("parent_wait_ns_at_reset", ctypes.c_int64),
        # Bumped by any worker that sees a gather request's K waiting (servers.app, Gathering):
        # the others release their waiting gather requests when it moves. Two workers bumping at
        # once may write the same value; the generation still moves, which is all a waiter asks.
        ("release_generation", ctypes.c_int64),
    )


class _Counters(ctypes.Structure):
    """What only ever grows: reset copies these into a baseline rather than zeroing them."""

    _fields_ = (
        ("connections_accepted", ctypes.c_int64),
        ("outcomes", ctypes.c_int64 * len(OUTCOMES)),
        ("lateness_buckets", ctypes.c_int64 * LATENESS_BUCKETS),
    )


class _WorkerSlot(ctypes.Structure):
    """Written by its worker only."""

    _fields_ = (
        ("pid", ctypes.c_int64),
        ("in_flight", ctypes.c_int64),
        ("open_connections", ctypes.c_int64),
        # The reset epoch the two maxima belong to; a slot of an older epoch counts as 0.
        ("epoch", ctypes.c_int64),
        ("max_in_flight", ctypes.c_int64),
        ("lateness_max_ms", ctypes.c_double),
        # Its gather=K requests not yet answered: the warm-up barrier counts these, not in_flight.
        ("gathering", ctypes.c_int64),
        ("counters", _Counters),
    )


class _Baseline(ctypes.Structure):
    """A worker's counters and CPU time (ns) at the last reset. Written by reset (under the lock) only."""

    _fields_ = (("counters", _Counters), ("cpu_ns", ctypes.c_int64), ("wait_ns", ctypes.c_int64))


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
            {
                "_fields_": (
                    ("control", _Control),
                    ("workers", _WorkerSlot * workers),
                    ("baselines", _Baseline * workers),
                )
            },
        )
        # An anonymous MAP_SHARED mapping: inherited across fork, nothing to name or unlink.
        self._memory = mmap.mmap(-1, ctypes.sizeof(layout))
        self._shared = layout.from_buffer(self._memory)
        self._control = self._shared.control  # views into the mapping, kept to save a lookup per use
        # fork context: the semaphore is unlinked at once, so no resource-tracker process is started.
        # Taken by resets and reads only, never per request.
        self._lock = multiprocessing.get_context("fork").Lock()
        self._slot: _WorkerSlot | None = None
        self.worker_index: int | None = None
        self.workers = workers
        self._control.parent_pid = os.getpid()
        self._control.listen_overflows_at_reset = host_counters.listen_overflows()

    def attach(self, index: int) -> None:
        """Make this process worker ``index``: its updates go to that slot, and only there."""
        self.worker_index = index
        slot = self._slot = self._shared.workers[index]
        self._others = [other for i, other in enumerate(self._shared.workers) if i != index]
        self._outcomes = slot.counters.outcomes
        self._buckets = slot.counters.lateness_buckets
        slot.pid = os.getpid()

    # -- updates, from the worker that owns the slot --------------------------------------

    def _sync_epoch(self, slot: _WorkerSlot) -> None:
        """Start this slot's maxima afresh if a reset happened since they were last updated."""
        epoch = self._control.epoch
        if slot.epoch != epoch:
            slot.max_in_flight = 0
            slot.lateness_max_ms = 0.0
            slot.epoch = epoch

    def enter(self) -> None:
        """A delayed request starts: the total in flight goes up, and its peak with it."""
        slot = self._slot
        total = slot.in_flight = slot.in_flight + 1
        for other in self._others:
            total += other.in_flight
        self._sync_epoch(slot)
        if total > slot.max_in_flight:
            slot.max_in_flight = total

    def leave(self) -> None:
        slot = self._slot
        slot.in_flight = slot.in_flight - 1

    def finish(self, outcome: int, lateness_ms: float) -> None:
        """A delayed request ends with this outcome."""
        slot = self._slot
        slot.in_flight = slot.in_flight - 1
        self.record(outcome, lateness_ms)

    def record(self, outcome: int, lateness_ms: float) -> None:
        """Count an outcome whose request stays in flight a while (a drop, a stall)."""
        self._outcomes[outcome] += 1
        self._buckets[lateness_bucket(lateness_ms)] += 1
        slot = self._slot
        self._sync_epoch(slot)
        if lateness_ms > slot.lateness_max_ms:
            slot.lateness_max_ms = lateness_ms

    def gathering_total(self) -> int:
        """gather=K requests waiting for their barrier over all workers (``Gathering``)."""
        total = self._slot.gathering
        for other in self._others:
            total += other.gathering
        return total

    def gathering_changed(self, by: int) -> None:
        self._slot.gathering = self._slot.gathering + by

    @property
    def release_generation(self) -> int:
        return self._control.release_generation

    def release(self) -> None:
        """Move the release generation: every worker answers the gather requests waiting from before."""
        self._control.release_generation += 1

    def count(self, outcome: int) -> None:
        self._outcomes[outcome] += 1

    def connection_accepted(self) -> None:
        """Count a connection the kernel handed over, before any TLS handshake (it may fail)."""
        self._slot.counters.connections_accepted += 1

    def connection_opened(self) -> int:
        """Count an open connection (past its TLS handshake); return how many are open over all workers."""
        slot = self._slot
        total = slot.open_connections = slot.open_connections + 1
        for other in self._others:
            total += other.open_connections
        return total

    def connection_closed(self) -> None:
        slot = self._slot
        slot.open_connections = slot.open_connections - 1

    # -- reads and reset, from whichever worker answers /stats -----------------------------

    def as_dict(self) -> dict:
        with self._lock:
            control = self._control
            epoch = control.epoch
            rows = [
                _worker_row(slot, baseline, epoch)
                for slot, baseline in zip(self._shared.workers, self._shared.baselines, strict=True)
            ]
            max_in_flight = max(
                [control.max_in_flight_at_reset] + [row.pop("_max_in_flight") for row in rows]
            )
            parent_ns = host_counters.cpu_ns([control.parent_pid]) - control.parent_cpu_ns_at_reset
            parent_wait = host_counters.run_queue_wait_ns([control.parent_pid])
            overflows = host_counters.listen_overflows() - control.listen_overflows_at_reset
        lateness_max = max(row.pop("_lateness_max_ms") for row in rows)
        buckets = [row.pop("_buckets") for row in rows]
        waits = [parent_wait] + [row.pop("_wait_ns") for row in rows]
        merged = [sum(column) for column in zip(*buckets, strict=True)]
        figures = {name: sum(row[name] for row in rows) for name in OUTCOMES}
        return figures | {
            "in_flight": sum(row["in_flight"] for row in rows),
            "max_in_flight": max_in_flight,
            "lateness_ms": lateness_summary(merged, lateness_max),
            "workers": len(rows),
            "worker_pids": [row["pid"] for row in rows],
            "served_per_worker": [row["served"] for row in rows],
            "open_connections": sum(row["open_connections"] for row in rows),
            "connections_accepted": sum(row["connections_accepted"] for row in rows),
            "listen_overflows": overflows,
            "cpu_seconds": round(
                (parent_ns + sum(row.pop("_cpu_ns") for row in rows)) / host_counters.NS_PER_SECOND,
                6,
            ),
            # How long the server's threads waited, runnable, for a CPU since the reset (issue 22,
            # item 2): null where the kernel keeps no schedstat.
            "run_queue_wait_seconds": _wait_seconds(
                None if None in waits else waits[0] - control.parent_wait_ns_at_reset + sum(waits[1:])
            ),
            "per_worker": rows,
        }

    def reset(self) -> None:
        """Start a new observation window for every worker; live state (in flight, open
        connections) is kept, and the peak restarts from what is in flight now."""
        with self._lock:
            control = self._control
            for slot, baseline in zip(self._shared.workers, self._shared.baselines, strict=True):
                _copy_counters(slot.counters, baseline.counters)
                baseline.cpu_ns = host_counters.cpu_ns([slot.pid])
                baseline.wait_ns = host_counters.run_queue_wait_ns([slot.pid]) or 0
            control.max_in_flight_at_reset = sum(slot.in_flight for slot in self._shared.workers)
            control.parent_cpu_ns_at_reset = host_counters.cpu_ns([control.parent_pid])
            control.parent_wait_ns_at_reset = host_counters.run_queue_wait_ns([control.parent_pid]) or 0
            control.listen_overflows_at_reset = host_counters.listen_overflows()
            control.epoch += 1


def _wait_seconds(wait_ns: int | None) -> float | None:
    return None if wait_ns is None else round(wait_ns / host_counters.NS_PER_SECOND, 6)


def _copy_counters(source: _Counters, target: _Counters) -> None:
    # Element by element (each one aligned 64-bit load), never a memmove of a live slot.
    target.connections_accepted = source.connections_accepted
    target.outcomes[:] = source.outcomes[:]
    target.lateness_buckets[:] = source.lateness_buckets[:]


def _worker_row(slot: _WorkerSlot, baseline: _Baseline, epoch: int) -> dict:
    """One worker's figures since the last reset; keys with a leading _ are for merging only."""
    counters, at_reset = slot.counters, baseline.counters
    current_epoch = slot.epoch == epoch
    cpu_ns = host_counters.cpu_ns([slot.pid]) - baseline.cpu_ns
    wait = host_counters.run_queue_wait_ns([slot.pid])
    wait_ns = None if wait is None else wait - baseline.wait_ns
    outcomes = [now - then for now, then in zip(counters.outcomes[:], at_reset.outcomes[:], strict=True)]
    buckets = [
        now - then
        for now, then in zip(counters.lateness_buckets[:], at_reset.lateness_buckets[:], strict=True)
    ]
    return dict(zip(OUTCOMES, outcomes, strict=True)) | {
        "pid": slot.pid,
        "in_flight": slot.in_flight,
        "open_connections": slot.open_connections,
        "connections_accepted": counters.connections_accepted - at_reset.connections_accepted,
        "cpu_seconds": round(cpu_ns / host_counters.NS_PER_SECOND, 6),
        "_cpu_ns": cpu_ns,
        "run_queue_wait_seconds": _wait_seconds(wait_ns),
        "_wait_ns": wait_ns,
        "_max_in_flight": slot.max_in_flight if current_epoch else 0,
        "_lateness_max_ms": slot.lateness_max_ms if current_epoch else 0.0,
        "_buckets": buckets,
    }
