"""How many threads compute-bound CPU work (ONNX Runtime inference, torch training) runs on.

One rule for every engine and the training loop, so they never compete for cores by two heuristics:

* one thread per physical core this process may run on: SMT siblings share the FPUs these convolutions
  saturate, so a second thread per core only adds synchronisation;
* fewer when other processes keep cores busy (by the 1-minute load average): threads on busy cores wait
  on each other at every operation; on a 2-core machine under load, 2 torch threads trained 3-4x slower
  than 1;
* ``OMP_NUM_THREADS``, when set to a positive integer, wins: the user knows the machine best.
"""

from __future__ import annotations

import os


def cpu_threads() -> int:
    """Threads for compute-bound work on the CPU: at least 1, at most the usable physical cores."""
    requested = os.environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    allowed = _allowed_cpus()
    idle = round(allowed - os.getloadavg()[0]) if hasattr(os, "getloadavg") else allowed
    return max(1, min(_physical_cores(allowed), idle))


def _allowed_cpus() -> int:
    """Logical CPUs this process may run on (its affinity mask, where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _physical_cores(allowed: int) -> int:
    """Physical cores (distinct physical id and core id in /proc/cpuinfo), at most ``allowed``."""
    cores: set[tuple[str, str]] = set()
    try:
        with open("/proc/cpuinfo") as f:
            physical = ""
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "physical id":
                    physical = value.strip()
                elif key.strip() == "core id":
                    cores.add((physical, value.strip()))
    except OSError:
        pass
    return max(1, min(allowed, len(cores) or allowed))


def threads_text(n: int) -> str:
    """``1 thread``, ``2 threads``: for engine descriptions."""
    return f"{n} thread{'s' if n != 1 else ''}"
