"""The live pipeline: acquisition -> ring buffer -> denoise worker -> sinks (OME-Zarr, viewer, mosaic).

Three threads and one rule: the acquisition thread only copies a frame into the ring and returns. The
writer thread puts every raw frame on disk as it arrives, and every denoised frame after it. The denoise
worker assembles each frame's window and runs the engine, under one of two policies:

- ``live``: the newest frame wins; older waiting frames are skipped for denoising (and counted), so the
  display stays current however slow the engine is.
- ``record``: every frame is denoised, even if it lags; the run ends when the backlog is done. A frame
  that already left the ring is read back from the store.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from enum import Enum
from typing import Any, Protocol

import numpy as np

from livedenoise.errors import LivedenoiseError
from livedenoise.events import Events
from livedenoise.frames import FrameIndex, FrameInfo
from livedenoise.pipeline.ring import FrameRing
from livedenoise.pipeline.stats import PipelineStats, RunSummary
from livedenoise.pipeline.windows import WindowAssembler
from livedenoise.storage import RunStore
from livedenoise.storage.run_store import FrameMismatch

log = logging.getLogger(__name__)


class RunError(LivedenoiseError, RuntimeError):
    """Why a run failed (a device, the engine, the disk); every raw frame acquired before it is on
    disk, in ``path``."""


# what a pipeline's owner (an MDA output, an acquisition) re-emits as its own; started and finished
# it emits itself, with its own subject and result
RELAYED = ("frameAcquired", "frameDenoised", "frameSkipped", "frameLost", "warning", "failed")


def relay(source: Events, target: Events) -> None:
    """Re-emit ``source``'s frame, warning and failure signals on ``target``."""
    for name in RELAYED:
        getattr(source, name).connect(getattr(target, name))


class Policy(str, Enum):
    live = "live"
    record = "record"


class Denoiser(Protocol):
    """What the pipeline needs of an inference engine."""

    def denoise(self, window: np.ndarray) -> np.ndarray:
        """``[T, H, W]`` raw intensities in, float32 ``[T, H, W]`` in the same units out."""
        ...


# Writer job priorities: raw frames first (a raw frame that waits can be lost from the ring), then
# denoised frames (they wait safely in the queue), then the stop marker once both are done.
_RAW, _DENOISED, _STOP = 0, 1, 2


class LivePipeline:
    """Owns the ring, the writer and the denoise worker of one run; sinks subscribe to ``events``.

    ``events`` (see ``livedenoise.events``): frameAcquired once a raw frame is on disk (writer
    thread), frameDenoised (worker thread), frameSkipped (live policy), frameLost, started(self),
    failed(RunError) once, with the first reason; finished(RunSummary) when the store is closed.
    """

    def __init__(
        self,
        engine: Denoiser,
        store: RunStore,
        ring: FrameRing,
        windows: WindowAssembler,
        policy: Policy = Policy.record,
    ) -> None:
        self.engine = engine
        self.store = store
        self.ring = ring
        self.windows = windows
        self.policy = Policy(policy)
        self.stats = PipelineStats()
        # infos of frames the worker has not passed yet, to read them back from disk (record policy)
        self._infos: dict[int, FrameInfo] = {}
        self._skip_backlog = threading.Event()
        self._written = -1  # highest seq the writer has dealt with
        self._lost: set[int] = set()  # seqs that left the ring before reaching disk
        self._written_cond = threading.Condition()
        self._jobs: queue.PriorityQueue[tuple[int, int, Any]] = queue.PriorityQueue()
        self._job_order = itertools.count()  # FIFO within a priority
        self._writer = threading.Thread(target=self._write_loop, name="livedenoise-writer")
        self._worker = threading.Thread(target=self._denoise_loop, name="livedenoise-denoise")
        self._error: str | None = None
        self.events = Events()

    # -- acquisition thread ------------------------------------------------------------------------

    def put_frame(
        self,
        frame: np.ndarray,
        index: FrameIndex,
        stage_um: tuple[float, float, float] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        """Hand a frame over; returns at once (a copy into a preallocated slot and a queue entry)."""
        start = time.perf_counter()
        info = self.ring.put(frame, index, start, stage_um, metadata)
        self._infos[info.seq] = info
        self._jobs.put_nowait((_RAW, info.seq, info))
        self.stats.frame_acquired(start, time.perf_counter() - start)

    # -- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._writer.start()
        self._worker.start()
        self.events.started.emit(self)

    def skip_backlog(self) -> None:
        """Stop denoising frames that wait (any thread): their raw frames are still all written."""
        self._skip_backlog.set()

    @property
    def backlog(self) -> int:
        """Frames acquired and not yet denoised, skipped or failed."""
        s = self.stats
        return max(0, s.acquired - s.denoised - s.skipped - s.failed - s.dropped)

    def drain(self) -> None:
        """No more frames: let the worker finish (record: the whole backlog) and the writer flush."""
        self.ring.close()
        self._worker.join()
        self._jobs.put((_STOP, 0, None))
        self._writer.join()

    def close(self, extra: dict[str, Any] | None = None) -> RunSummary:
        """Record the statistics (with ``extra``, fields of ``RunSummary`` such as the mosaic's path)
        in the store and close it; after ``drain``."""
        summary = self.stats.summary()
        raw_only = summary.acquired - summary.dropped - summary.denoised
        summary = summary.model_copy(
            update={"error": self._error, "raw_only": raw_only, **(extra or {})}
        )
        if self._error is not None:
            summary.ended = "failed"
        try:
            self.store.close(summary.model_dump(mode="json"))
        except OSError as err:  # a full disk: the frames on it stay readable, the run says why
            self.report_error(
                f"closing {self.store.path} failed ({err}); the frames written are readable, the "
                "run's statistics are not saved"
            )
            summary = summary.model_copy(update={"error": self._error})
        self.events.finished.emit(summary)
        return summary

    def finish(self) -> RunSummary:
        """``drain`` then ``close``: the end of a run."""
        self.drain()
        return self.close()

    # -- writer thread -----------------------------------------------------------------------------

    def _write_loop(self) -> None:
        while (job := self._jobs.get())[0] != _STOP:
            start = time.perf_counter()
            if job[0] == _RAW:
                self._write_raw(job[2])
            else:
                info, denoised, latency = job[2]
                try:
                    self.store.write_denoised(info.index, denoised, time.perf_counter(), latency)
                except Exception as err:  # a full or vanished disk: say so, keep the thread alive
                    self.report_error(self._write_failure(info, err))
            self.stats.stage("write", time.perf_counter() - start)

    def _write_failure(self, info: FrameInfo, err: Exception) -> str:
        if isinstance(err, FrameMismatch):
            return f"{err}. Stop the run before changing them; the frames before it are saved."
        return (
            f"writing frame {info.index} to {self.store.path} failed ({err}); free disk space or "
            "write to another disk. The frames written before it are readable."
        )

    def _write_raw(self, info: FrameInfo) -> None:
        seq = info.seq
        got = self.ring.get(seq)
        if got is None:
            self._lose(
                info,
                f"frame {seq} left the ring before it reached disk: the disk is too slow for this "
                "frame rate; reduce the rate or write to a faster disk",
            )
        else:
            frame, info = got
            try:
                self.store.write_raw(frame, info)
            except Exception as err:  # a full disk, a frame of another shape: lost, never silent
                self._lose(info, self._write_failure(info, err))
            else:
                self.events.frameAcquired.emit(frame, info)
        with self._written_cond:
            self._written = seq
            self._written_cond.notify_all()

    def _lose(self, info: FrameInfo, message: str) -> None:
        self._lost.add(info.seq)
        self.stats.add("dropped")
        self.events.frameLost.emit(info)
        self.report_error(message)

    # -- denoise worker ----------------------------------------------------------------------------

    def _raw(self, seq: int) -> tuple[np.ndarray, FrameInfo] | None:
        """Frame ``seq`` from the ring, or (record policy) from disk once the writer has it there."""
        got = self.ring.get(seq)
        if got is not None or self.policy is Policy.live:
            return got
        with self._written_cond:
            self._written_cond.wait_for(lambda: self._written >= seq)
        info = self._infos.get(seq)
        if seq in self._lost or info is None:
            return None
        return self.store.read_raw(info.index), info

    def _denoise_loop(self) -> None:
        try:
            self._denoise_all()
        except Exception as err:  # no thread dies quietly: the run fails with the reason
            log.exception("the denoise worker failed")
            self.report_error(f"the denoise worker failed: {err!r}; the raw frames are saved")

    def _denoise_all(self) -> None:
        seq = 0
        while self.ring.wait(seq) and not self._skip_backlog.is_set():
            target = self.ring.newest() if self.policy is Policy.live else seq
            for s in self._usable(seq, target):
                got = self._raw(s)
                if got is not None:
                    self.windows.add(got[1].index, got[0])
            if got is None:  # overwritten meanwhile (live) or lost before disk (record, counted)
                if self.policy is Policy.live:
                    self._skip(seq, target + 1)
            else:
                self._skip(seq, target)
                self._denoise(*got)
            for s in range(seq, target + 1):
                self._infos.pop(s, None)
            seq = target + 1

    def _usable(self, first: int, last: int) -> list[int]:
        """Frames ``first`` to ``last`` that a window can still hold (live policy: the many that
        came during an engine call are not copied for nothing); ``last`` always, to denoise."""
        seqs = list(range(first, last + 1))
        if len(seqs) == 1:  # the record policy's one frame
            return seqs
        infos = [self.ring.info(s) for s in seqs]
        if any(info is None for info in infos):  # some already gone: every one is looked at
            return seqs
        usable = self.windows.usable([info.index for info in infos if info is not None])
        return [s for s, keep in zip(seqs, usable, strict=True) if keep]

    def _skip(self, first: int, end: int) -> None:
        """Frames ``first`` to ``end - 1`` are passed over for newer ones (their raw frames stay)."""
        self.stats.add("skipped", end - first)
        for seq in range(first, end):
            if (info := self._infos.get(seq)) is not None:
                self.events.frameSkipped.emit(info)

    def _denoise(self, frame: np.ndarray, info: FrameInfo) -> None:
        start = time.perf_counter()
        window = self.windows.window(info.index)
        assembled = time.perf_counter()
        try:
            denoised = np.asarray(self.engine.denoise(window))[-1]
        except Exception as err:  # the engine must never take the raw data down with it
            self.stats.add("failed")
            self.report_error(f"denoising frame {info.index} failed: {err}")
            return
        done = time.perf_counter()
        latency = done - info.arrived_s
        self.stats.stage("wait", start - info.arrived_s)  # in the ring, behind the engine's call
        self.stats.stage("window", assembled - start)
        self.stats.stage("engine", done - assembled)
        self.stats.frame_denoised(latency, done)
        self._jobs.put((_DENOISED, next(self._job_order), (info, denoised, latency)))
        self.events.frameDenoised.emit(frame, denoised, info)

    def report_error(self, message: str) -> None:
        """Record why the run failed (the first reason is kept) and emit ``failed`` with it as a
        ``RunError``; any thread."""
        if self._error is None:
            self._error = message
            log.error(message)
            self.events.failed.emit(RunError(message, path=self.store.path))
