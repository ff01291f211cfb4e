"""How many threads compute-bound CPU work (ONNX Runtime inference, torch training) runs on.

One rule for every engine and the training loop, so they never compete for cores by two heuristics:

* one thread per physical core this process may run on: SMT siblings share the FPUs these convolutions
  saturate, so a second thread per core only adds synchronisation;
* fewer when other processes keep cores busy (by the 1-minute load average): threads on busy cores wait
  on each other at every operation; on a 2-core machine under load, 2 torch threads trained 3-4x slower
  than 1;
* but not for threads of processes niced below this one (a training job, a batch run): the kernel
  gives their cores to this process's threads at once, so counting them would leave a core idle;
* ``OMP_NUM_THREADS``, when set to a positive integer, wins: the user knows the machine best.
"""

from __future__ import annotations

import glob
import os


def cpu_threads() -> int:
    """Threads for compute-bound work on the CPU: at least 1, at most the usable physical cores."""
    requested = os.environ.get("OMP_NUM_THREADS", "").strip()
    if requested.isdigit() and int(requested) > 0:
        return int(requested)
    allowed = _allowed_cpus()
    busy = max(0.0, os.getloadavg()[0] - _niced_running()) if hasattr(os, "getloadavg") else 0.0
    return max(1, min(_physical_cores(allowed), round(allowed - busy)))


def _niced_running() -> int:
    """Threads of other processes niced below this one that are running or waiting to run now
    (Linux's /proc; 0 elsewhere)."""
    mine = os.getpriority(os.PRIO_PROCESS, 0) if hasattr(os, "getpriority") else 0
    own = f"/proc/{os.getpid()}/"
    count = 0
    for stat in glob.glob("/proc/[0-9]*/task/[0-9]*/stat"):
        if stat.startswith(own):
            continue
        try:
            with open(stat) as f:
                text = f.read()
        except OSError:  # ended meanwhile
            continue
        fields = text[text.rfind(")") + 2 :].split()  # from the state on: the name may hold spaces
        if len(fields) > 16 and fields[0] == "R" and int(fields[16]) > mine:
            count += 1
    return count


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
