"""How many torch threads a CPU run uses: the cores actually free, not the cores the machine has.

torch's default (one thread per core) collapses when other processes load the machine: on 2 shared cores two
threads per process measured 8-10x slower than one. The harness takes the cores this process may run on, minus the
load other processes put on them (the 1-minute load average), at least one; ``HARNESS_THREADS`` overrides it.
"""

from __future__ import annotations

import os


def free_cores() -> int:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(cores, int(cores - load + 0.5)))


def cpu_threads() -> int:
    override = os.environ.get("HARNESS_THREADS")
    if override:
        try:
            return max(1, int(override))
        except ValueError:
            raise SystemExit(f"harness: HARNESS_THREADS must be a whole number, got {override!r}") from None
    return free_cores()


def use_cpu_threads() -> int:
    """Set torch's intra-op thread count for this process from ``cpu_threads``; returns it."""
    import torch

    threads = cpu_threads()
    torch.set_num_threads(threads)
    return threads
