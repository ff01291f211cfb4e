"""Denoise the MDA runs someone else starts on a core: napari-micromanager, pymmcore-gui, a script.

Those front ends run their sequences on the process's core (``CMMCorePlus.instance()``) without our
output, so ``attach`` listens to the core's own runner signals (``core.mda.events``), as any
pymmcore-plus output does, and hands each run to a ``DenoisingOutput`` under the live policy: the
newest frame wins, so a slow engine never holds up the acquisition::

    attached = attach(core, "sim-confocal-small", window=4, backend="auto", store=Path("run.ome.zarr"))
    attached.events.frameDenoised.connect(show)       # any front end: (raw, denoised, info)
    core.mda.run(sequence)                            # started by anyone, from any thread
    attached.detach()

Every raw frame of a run is written to a run store (the pipeline writes raw frames first, so a failing
engine or detector loses none): ``store`` for the first run and timestamped stores beside it for the
next; without ``store``, a temporary store removed once its run ends.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import useq
from psygnal import SignalInstance
from pymmcore_plus import CMMCorePlus

from livedenoise.app.microscope import check_camera
from livedenoise.app.session import Latest, default_store_name, engine_attrs
from livedenoise.errors import LivedenoiseError
from livedenoise.events import Events
from livedenoise.inference import Engine, load_engine
from livedenoise.model import shipped_models
from livedenoise.pipeline.live import Denoiser, Policy, RunError, relay
from livedenoise.pipeline.output import DenoisingOutput, RunSettings
from livedenoise.pipeline.stats import RunSummary
from livedenoise.storage import check_new_store

DETACHED = "detached mid-run"  # how a store says its run ended when we stopped listening


class Attached:
    """Denoises every MDA run on ``core`` until ``detach``; one run at a time, as the core runs them.

    ``events`` (see ``livedenoise.events``), for each run in turn, from the runner's and the
    pipeline's threads: started(LivePipeline), frameAcquired, frameDenoised, frameSkipped,
    frameLost, failed(RunError) (the engine, a detector that stopped delivering, the disk; the raw
    frames are stored), finished(RunSummary). ``latest`` holds the newest raw and denoised frames.
    """

    def __init__(
        self,
        core: CMMCorePlus,
        engine: Denoiser,
        *,
        window: int,
        store: Path | None = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> None:
        """``store``: the first run's store (refused if it exists); None: temporary stores."""
        _check_store(store)
        self.core = core
        self.engine = engine
        self.window = window
        self.attrs = dict(attrs or {})
        self.stores: list[Path] = []  # the stores kept, one per run
        self.output: DenoisingOutput | None = None  # the run in progress
        self.last_summary: RunSummary | None = None
        self.latest = Latest()
        self.events = Events()
        self.events.frameAcquired.connect(self.latest.set_raw)
        self.events.frameDenoised.connect(self.latest.set_denoised)
        self._next_store = store
        self._out_dir = store.parent if store is not None else None
        self._temporary: Path | None = None  # the running run's temporary folder
        signals = core.mda.events
        self._connections: list[tuple[Any, Callable[..., Any]]] = [
            (signals.sequenceStarted, self._sequence_started),
            (signals.frameReady, self._frame_ready),
            (signals.sequenceCanceled, self._sequence_canceled),
            (signals.sequenceFinished, self._sequence_finished),
        ]
        for signal, slot in self._connections:
            _connect_direct(signal, slot)

    @property
    def attached(self) -> bool:
        return bool(self._connections)

    @property
    def summary(self) -> RunSummary | None:
        """The running run's statistics so far, else the last run's (None before the first)."""
        output = self.output
        if output is not None and output.pipeline is not None:
            return output.pipeline.stats.summary()
        return self.last_summary

    def _out(self) -> Path:
        """Where the next run is written: the store asked for, then beside it; else a temporary."""
        if self._next_store is not None:
            out, self._next_store = self._next_store, None
        elif self._out_dir is not None:
            out = self._out_dir / default_store_name()
        else:
            self._temporary = Path(tempfile.mkdtemp(prefix="livedenoise-attached-"))
            out = self._temporary / "run.ome.zarr"
        return out

    # -- the core's runner signals (its thread) -----------------------------------------------------

    def _sequence_started(self, sequence: useq.MDASequence, meta: Mapping[str, Any]) -> None:
        """A new run: its own output and store. A failure to start is reported, never raised into
        the runner (the acquisition goes on without denoising)."""
        self._end_run(DETACHED)  # a previous run whose end we never heard of
        out = self._out()
        try:
            settings = RunSettings(out=out, policy=Policy.live, window=self.window)
            output = DenoisingOutput(settings, self.engine, self.attrs)
            output.finish_on_sequence_finished = False  # we finish it, then tidy up
            relay(output.events, self.events)
            output.events.started.connect(self.events.started)
            output.events.finished.connect(self._remember)
            output.sequenceStarted(sequence, meta)
        except Exception as err:
            self._remove_temporary()
            self.events.failed.emit(
                RunError(f"denoising this run could not start: {err}", path=out)
            )
            return
        if self._temporary is None:
            self.stores.append(out)
        self.output = output

    def _frame_ready(self, img: np.ndarray, event: useq.MDAEvent, meta: Mapping[str, Any]) -> None:
        output = self.output
        if output is None:
            return
        try:
            output.frameReady(img, event, meta)
        except Exception:  # already reported (failed); the runner's acquisition goes on
            return

    def _sequence_canceled(self, sequence: useq.MDASequence) -> None:
        if self.output is not None:
            self.output.canceled = True

    def _sequence_finished(self, sequence: useq.MDASequence) -> None:
        self._end_run()

    # -- ending ---------------------------------------------------------------------------------------

    def _remember(self, summary: RunSummary) -> None:
        self.last_summary = summary
        self.events.finished.emit(summary)

    def _end_run(self, stopped: str | None = None) -> None:
        """Denoise what waits, close the run's store (a temporary one is removed)."""
        output, self.output = self.output, None
        if output is None:
            return
        if stopped is not None and output.stopped is None:
            output.stopped = stopped
        try:
            output.finish()
        finally:
            self._remove_temporary()

    def _remove_temporary(self) -> None:
        folder, self._temporary = self._temporary, None
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)

    def detach(self) -> RunSummary | None:
        """Stop listening to the core; a run in progress has its store closed with what it acquired
        (the run itself goes on). Returns the last run's summary."""
        connections, self._connections = self._connections, []
        for signal, slot in connections:
            signal.disconnect(slot)
        self._end_run(DETACHED)
        return self.last_summary


def _check_store(store: Path | None) -> None:
    """Refuse a store that exists or cannot be written, as a run would, naming ``store``."""
    if store is None:
        return
    try:
        check_new_store(store)
    except LivedenoiseError as err:
        err.option = "store"
        raise


def _connect_direct(signal: Any, slot: Callable[..., Any]) -> None:
    """Connect ``slot`` to be called in the emitting thread (the runner's), as pymmcore-plus
    connects its outputs: with Qt installed ``core.mda.events`` are Qt signals, whose default
    connection would queue each frame onto the Qt thread instead."""
    if isinstance(signal, SignalInstance):
        signal.connect(slot)
    else:
        from qtpy.QtCore import Qt

        signal.connect(slot, Qt.ConnectionType.DirectConnection)


def attach(
    core: CMMCorePlus,
    model: str | Path,
    *,
    window: int = 4,
    backend: str = "auto",
    store: Path | None = None,
) -> Attached:
    """Denoise every MDA run on ``core`` from now on (see ``Attached``); the engine is loaded and
    warmed up here, for the core's frame size, so the first frame does not wait for it.

    Raises ``SetupError`` for a core without a usable camera, ``StoreExists`` when ``store``
    exists, ``ModelFileError`` and ``BackendError`` as ``load_engine`` does.
    """
    check_camera(core)
    _check_store(store)
    size = (core.getImageHeight(), core.getImageWidth())
    engine: Engine = load_engine(model, backend, window=window, frame_size=size)
    engine.warmup(window, *size)
    return Attached(core, engine, window=window, store=store, attrs=engine_attrs(engine))


def status_line(summary: RunSummary | None) -> str:
    """The statistics line our viewer shows: denoised fps, latency, skipped and lost frames."""
    if summary is None:
        return "waiting for a run"
    return (
        f"acquired {summary.acquired} · denoised {summary.denoised} "
        f"({summary.denoised_fps:.1f} fps) · latency p50 {summary.latency_p50_ms:.0f} ms "
        f"p99 {summary.latency_p99_ms:.0f} ms · skipped {summary.skipped} · lost {summary.dropped}"
    )


__all__ = ["DETACHED", "Attached", "attach", "shipped_models", "status_line"]
