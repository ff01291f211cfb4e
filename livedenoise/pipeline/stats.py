"""Run statistics: rates, latency percentiles, skipped and dropped frames, per-stage timings."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque

import numpy as np
from pydantic import BaseModel

STOPPED_BY_USER = "stopped by the user"  # Ctrl-C, the viewer's stop, ``Acquisition.stop``
TERMINATED = "terminated by SIGTERM"  # a job scheduler, systemd or ``kill``: a clean stop too


class AutofocusFailure(BaseModel):
    """An autofocus step that failed; the run acquired on, so the frames after it may be out of
    focus. ``t``, ``p`` and ``z`` are the step's place in the sequence (None: not on that axis)."""

    t: int | None = None
    p: int | None = None
    z: int | None = None
    message: str

    def where(self) -> str:
        """``p1 t0``: the axes the step was on, as the sequence numbers them."""
        axes = {"p": self.p, "t": self.t, "z": self.z}
        return " ".join(f"{a}{i}" for a, i in axes.items() if i is not None) or "start"


class RunSummary(BaseModel):
    """What a run did: the numbers the status line, the statistics table and the store record.

    Rates are frames per second over the last 30 frames; latencies are from a frame's arrival to its
    denoised result, in ms, over the last 10,000 frames (NaN before the first denoised frame).
    """

    acquired: int = 0
    denoised: int = 0
    skipped: int = 0  # live policy: passed over for a newer frame (their raw frames are saved)
    dropped: int = 0  # raw frames lost before reaching disk (should stay 0)
    failed: int = 0  # frames the engine could not denoise (their raw frames are saved)
    acquired_fps: float = 0.0
    denoised_fps: float = 0.0
    latency_p50_ms: float = float("nan")
    latency_p95_ms: float = float("nan")
    latency_p99_ms: float = float("nan")
    stage_mean_ms: dict[str, float] = {}
    elapsed_s: float = 0.0
    raw_only: int = 0  # frames saved raw but never denoised (skipped, failed, or a skipped backlog)
    missing: int = 0  # image frames the sequence asked for that never arrived
    ended: str = "completed"  # or STOPPED_BY_USER, TERMINATED, "canceled" (a script), "failed"
    autofocus_failures: list[AutofocusFailure] = []  # the run went on; frames may be out of focus
    mosaic: str | None = None  # the stitched preview of a tiled run
    error: str | None = None  # why the run failed, for the user; None when it did not


LATENCY_FRAMES = 10_000  # latency percentiles are over the most recent frames
RATE_FRAMES = 30  # rates are over the most recent frames


class PipelineStats:
    """Thread-safe counters in fixed-size memory, however long the run (the store keeps every frame's
    timings); ``summary()`` is what the status line, the table and the store show."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.started_s = time.perf_counter()
        self.acquired = 0
        self.denoised = 0
        self.skipped = 0  # live policy: frames passed over because a newer one was waiting
        self.dropped = 0  # raw frames lost before reaching disk (should stay 0)
        self.failed = 0  # frames the engine could not denoise (their raw frames are on disk)
        self.latencies_s: deque[float] = deque(maxlen=LATENCY_FRAMES)
        self._stage_sum: dict[str, float] = defaultdict(float)
        self._stage_count: dict[str, int] = defaultdict(int)
        self._acquired_at: deque[float] = deque(maxlen=RATE_FRAMES)
        self._denoised_at: deque[float] = deque(maxlen=RATE_FRAMES)

    def frame_acquired(self, at_s: float, copy_s: float) -> None:
        """One lock for everything the acquisition thread records (it is the hot path)."""
        with self._lock:
            self.acquired += 1
            self._acquired_at.append(at_s)
            self._stage_sum["copy_in"] += copy_s
            self._stage_count["copy_in"] += 1

    def frame_denoised(self, latency_s: float, at_s: float) -> None:
        with self._lock:
            self.denoised += 1
            self.latencies_s.append(latency_s)
            self._denoised_at.append(at_s)

    def add(self, counter: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, counter, getattr(self, counter) + n)

    def stage(self, name: str, seconds: float) -> None:
        with self._lock:
            self._stage_sum[name] += seconds
            self._stage_count[name] += 1

    @staticmethod
    def _rate(times: deque[float]) -> float:
        if len(times) < 2 or times[-1] <= times[0]:
            return 0.0
        return (len(times) - 1) / (times[-1] - times[0])

    def summary(self) -> RunSummary:
        with self._lock:
            lat = np.asarray(self.latencies_s) * 1e3
            p50, p95, p99 = np.percentile(lat, [50, 95, 99]) if lat.size else (np.nan,) * 3
            return RunSummary(
                acquired=self.acquired,
                denoised=self.denoised,
                skipped=self.skipped,
                dropped=self.dropped,
                failed=self.failed,
                acquired_fps=self._rate(self._acquired_at),
                denoised_fps=self._rate(self._denoised_at),
                latency_p50_ms=float(p50),
                latency_p95_ms=float(p95),
                latency_p99_ms=float(p99),
                stage_mean_ms={
                    k: 1e3 * total / self._stage_count[k] for k, total in self._stage_sum.items()
                },
                elapsed_s=time.perf_counter() - self.started_s,
            )
