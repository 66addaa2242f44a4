"""Seconds and peak memory of each stage of a batch: summary.md's "Stages" table, and
benchmarks/nightly.py's figures of how each stage grows with the city (issue 15).

The peak is the process's resident set size, the largest a thread of this module sees while the
stage runs, reading ``/proc/self/statm`` every :data:`INTERVAL` seconds (and at the stage's end): a
spike shorter than that may be missed. Not the kernel's own high-water mark reset at each stage:
resetting it (``/proc/self/clear_refs``) resets the whole process's peak too, the one
``/usr/bin/time -v`` and ``getrusage`` report and the benchmarks read. What else runs in the
process during a stage counts too: under `sentinel run`, the flow's code loading beside the
ingest (flows/launch.py); beside the lists, the outcome audit (casework/summary.py). Where there
is no ``/proc`` (not Linux) the peak is None.
"""
from __future__ import annotations

import os
import threading
import time
from contextlib import contextmanager

INTERVAL = 0.02  # seconds between two readings: 50 small reads a second, a few thousandths of a core
_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident() -> int | None:
    """This process's resident set size in bytes, or None without ``/proc``."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return None


class _Peak(threading.Thread):
    """The largest resident set size seen from its start until :meth:`stop`."""

    def __init__(self, first: int):
        super().__init__(name="stage memory", daemon=True)
        self.peak, self._done = first, threading.Event()
        self.start()

    def run(self) -> None:
        while not self._done.wait(INTERVAL):
            self.peak = max(self.peak, resident() or 0)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return max(self.peak, resident() or 0)


@contextmanager
def stage(name: str, into: dict):
    """``into[name] = {"seconds": ..., "peak_mb": ...}`` for the block (also when it raises)."""
    t0, first = time.perf_counter(), resident()
    watch = _Peak(first) if first is not None else None
    try:
        yield
    finally:
        peak = watch.stop() if watch is not None else None
        into[name] = {"seconds": round(time.perf_counter() - t0, 2),
                      "peak_mb": round(peak / 2**20) if peak is not None else None}
