"""The one thread rule (livedenoise/cpu.py): niced work does not take cores from an engine."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from livedenoise import cpu


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux's /proc")
def test_a_niced_busy_process_leaves_every_core_to_the_engine(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A training job at nice 19 keeps a core busy by the load average, but the kernel hands that
    core to a normal thread at once: the engine still gets every physical core."""
    cores = cpu._physical_cores(cpu._allowed_cpus())
    if cores < 2 or os.getpriority(os.PRIO_PROCESS, 0) >= 19:
        pytest.skip("needs two physical cores and a process not niced to the end already")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    # the load average as the niced job alone would make it (one core busy), the machine else idle
    monkeypatch.setattr(os, "getloadavg", lambda: (1.0, 1.0, 1.0))
    monkeypatch.setattr(cpu, "_allowed_cpus", lambda: cores)
    job = subprocess.Popen(["nice", "-n", "19", sys.executable, "-c", "while True: pass"])
    try:
        deadline = time.monotonic() + 10
        while cpu._niced_running() < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert cpu.cpu_threads() == cores
    finally:
        job.kill()
        job.wait()
