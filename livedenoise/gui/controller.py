"""What the viewer drives: one run at a time on one core, in a background thread.

Plain Python (no Qt), so the GUI only observes: it reads the newest frames from ``latest`` on its own
timer, and the acquisition never waits for a repaint.
"""

from __future__ import annotations

import threading
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import useq
from psygnal import Signal
from pymmcore_plus import CMMCorePlus

from livedenoise.inference import Engine, load_engine
from livedenoise.pipeline.acquire import AcquisitionRun, LiveAcquisition, RunSettings
from livedenoise.pipeline.live import LivePipeline, Policy
from livedenoise.pipeline.mosaic import Mosaic
from livedenoise.pipeline.ring import FrameInfo


class Latest:
    """The newest raw and denoised frames; writers replace, the display reads (newest wins)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.raw: np.ndarray | None = None
        self.denoised: np.ndarray | None = None
        self.version = 0  # bumps on every change, so the display redraws only what is new

    def set_raw(self, raw: np.ndarray, info: FrameInfo) -> None:
        with self._lock:
            self.raw = raw
            self.version += 1

    def set_denoised(self, raw: np.ndarray, denoised: np.ndarray, info: FrameInfo) -> None:
        with self._lock:
            self.denoised = denoised
            self.version += 1


class RunController:
    runStarted = Signal(object)  # the LivePipeline of the new run
    runFinished = Signal(dict)  # the run's summary (with "error" when it failed)

    def __init__(
        self,
        core: CMMCorePlus,
        model: Path,
        backend: str = "auto",
        out_dir: Path = Path("runs"),
        window: int = 4,
        engine: Engine | None = None,
    ) -> None:
        """``engine``, when given, is the already loaded engine for ``model`` on ``backend``."""
        self.core = core
        self.model = Path(model)
        self.backend = backend
        self.out_dir = Path(out_dir)
        self.window = window
        self.latest = Latest()
        self.mosaic: Mosaic | None = None
        self.pipeline: LivePipeline | None = None
        self.last_summary: dict[str, Any] | None = None
        self._engine = engine
        self._engine_key = (self.model, backend) if engine else None
        self._live: LiveAcquisition | None = None
        self._run: AcquisitionRun | None = None
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._live is not None or (self._thread is not None and self._thread.is_alive())

    @property
    def loaded_engine(self) -> Engine | None:
        """The engine in use, if one was loaded (for display; never loads one)."""
        return self._engine

    def engine(self) -> Engine:
        """The engine for the current model and backend, loaded once per choice."""
        key = (self.model, self.backend)
        if self._engine is None or self._engine_key != key:
            size = (self.core.getImageHeight(), self.core.getImageWidth())
            self._engine = load_engine(
                self.model, self.backend, window=self.window, frame_size=size
            )
            self._engine_key = key
        return self._engine

    def _settings(self, policy: Policy) -> RunSettings:
        out = self.out_dir / f"{datetime.now():%Y%m%d-%H%M%S-%f}.ome.zarr"
        return RunSettings(out=out, policy=policy, window=self.window)

    def _attrs(self, engine: Engine) -> dict[str, Any]:
        return {"model": engine.card.model_dump(mode="json"), "backend": engine.describe()}

    def _observe(self, pipeline: LivePipeline) -> None:
        pipeline.frameAcquired.connect(self.latest.set_raw)
        pipeline.frameDenoised.connect(self.latest.set_denoised)
        self.pipeline = pipeline
        self.runStarted.emit(pipeline)

    def start_live(self) -> None:
        """Continuous acquisition, newest frame wins, until ``stop``."""
        self._check_idle()
        engine = self.engine()
        self._live = LiveAcquisition(
            self.core, engine, self._settings(Policy.live), self._attrs(engine)
        )
        self._observe(self._live.pipeline)
        self._live.start()

    def run_sequence(self, sequence: useq.MDASequence) -> None:
        """An MDA sequence in the background, every frame denoised; tiles fill the mosaic."""
        self._check_idle()
        engine = self.engine()
        run = AcquisitionRun(
            self.core, sequence, engine, self._settings(Policy.record), self._attrs(engine)
        )
        self._run, self.mosaic = run, run.mosaic
        self._observe(run.pipeline)
        self._thread = threading.Thread(target=self._sequence_thread, args=(run,), daemon=True)
        self._thread.start()

    def _sequence_thread(self, run: AcquisitionRun) -> None:
        self.last_summary = run.run()
        self.runFinished.emit(self.last_summary)

    def stop(self, timeout: float | None = 60) -> dict[str, Any] | None:
        """Stop whatever runs and wait until its store is closed; returns its summary."""
        if self._live is not None:
            self.last_summary = self._live.stop()
            self._live = None
            self.runFinished.emit(self.last_summary)
        elif self._run is not None:
            self._run.cancel()
        if self._thread is not None:
            self._thread.join(timeout)
        self._run = None
        return self.last_summary

    def _check_idle(self) -> None:
        if self.running:
            raise RuntimeError("a run is in progress: stop it first")
