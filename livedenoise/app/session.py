"""Runs on a core (live mode, MDA sequences): the one implementation the command line and the viewer
drive.

    core = open_microscope(None, ["Detector.LineAverage=2"])       # the simulated microscope
    acquisition = Acquisition(core, RunRequest(model="sim-confocal-small"))
    summary = acquisition.run_sequence(sequence)                     # or start_sequence / start_live

The command line calls these and prints; the viewer calls them on clicks and connects to
``Acquisition.events``, emitted from worker threads (a Qt receiver queues them onto its own thread),
and draws ``latest``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import useq
from pydantic import BaseModel, ConfigDict, Field
from pymmcore_plus import CMMCorePlus

from livedenoise.app.microscope import check_camera, release_microscope
from livedenoise.calibration.choose import Control, device_control, set_number
from livedenoise.calibration.errors import CalibrationError
from livedenoise.calibration.profile import Profile, apply_profile
from livedenoise.errors import LivedenoiseError
from livedenoise.events import Events
from livedenoise.frames import FrameInfo
from livedenoise.inference import Engine, load_engine
from livedenoise.pipeline.live import LivePipeline, Policy, RunError, relay
from livedenoise.pipeline.mosaic import Mosaic
from livedenoise.pipeline.output import DenoisingOutput, RunSettings
from livedenoise.pipeline.runs import AcquisitionRun, LiveAcquisition
from livedenoise.pipeline.setup import check_presets, check_sequence
from livedenoise.pipeline.stats import STOPPED_BY_USER, RunSummary
from livedenoise.storage import check_new_store


class RunInProgress(LivedenoiseError, RuntimeError):
    """A run was asked for while another runs on the same core."""


def default_store_name() -> str:
    return f"{datetime.now():%Y%m%d-%H%M%S-%f}.ome.zarr"


SEQUENCE_WINDOW = 4  # a sequence: every frame is denoised, so the window is chosen for quality
# live mode: a frame's latency is one engine call, whose cost grows with the window (on a CPU about
# in proportion: 512x512 at window 4 took 3x window 1), and focusing needs the newest frame soon
LIVE_WINDOW = 1


class RunRequest(BaseModel):
    """What the user asked of the runs on one core."""

    model_config = ConfigDict(extra="forbid")

    model: Path = Field(
        description="NAME, NAME.safetensors or NAME.json, or a shipped model's name"
    )
    backend: str = "auto"
    window: int | None = Field(
        None,
        ge=1,
        le=64,
        description=f"frames per denoising window (T); None: {LIVE_WINDOW} in live mode, "
        f"{SEQUENCE_WINDOW} for sequences",
    )
    policy: Policy | None = Field(
        None, description="None: newest frame wins in live mode, every frame in sequences"
    )
    out: Path | None = Field(None, description="the first run's store; later runs go beside it")
    out_dir: Path = Field(Path("runs"), description="where runs without a name are written")
    calibration: Path | None = Field(None, description="a profile.json applied to the core first")
    accept_calibration: bool = Field(
        False, description="apply it even if made with another model or at other camera settings"
    )


def engine_attrs(engine: Engine) -> dict[str, Any]:
    """What a store records of the engine: the model card and the backend, as described."""
    return {"model": engine.card.model_dump(mode="json"), "backend": engine.describe()}


def denoising_output(
    out: str | Path,
    model: str | Path,
    *,
    backend: str = "auto",
    window: int = 4,
    policy: Policy = Policy.record,
    frame_size: tuple[int, int] = (512, 512),
) -> DenoisingOutput:
    """An output for ``core.mda.run(sequence, output=...)``: raw and denoised frames to ``out``.

    ``frame_size`` (height, width in pixels) is what the engine is prepared for (TensorRT's profile,
    ``auto``'s timing); other sizes still work. Raises ``FileExistsError`` if ``out`` exists,
    ``ModelFileError`` and ``BackendError`` as ``load_engine`` does.
    """
    engine = load_engine(model, backend, window=window, frame_size=frame_size)
    settings = RunSettings(out=Path(out), policy=policy, window=window)
    return DenoisingOutput(settings, engine, engine_attrs(engine))


class Latest:
    """The newest raw and denoised frames; writers replace, the display reads (newest wins)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.raw: np.ndarray | None = None
        self.denoised: np.ndarray | None = None
        self.denoised_s = 0.0  # when the denoised frame came (perf_counter): the display's start
        self.version = 0  # bumps on every change, so the display redraws only what is new

    def set_raw(self, raw: np.ndarray, info: FrameInfo) -> None:
        with self._lock:
            self.raw = raw
            self.version += 1

    def set_denoised(self, raw: np.ndarray, denoised: np.ndarray, info: FrameInfo) -> None:
        with self._lock:
            self.denoised = denoised
            self.denoised_s = time.perf_counter()
            self.version += 1


class Acquisition:
    """One run at a time on one core: live mode or MDA sequences, every frame saved and denoised.

    ``model``, ``backend`` and ``window`` may be changed between runs (the viewer's controls); the
    engine is reloaded for the next run when they or the frame size change. ``window`` None picks
    one per run (``window_for``). A calibration profile in
    the request is applied to the core once, here, and recorded in every run's store.

    ``events`` (see ``livedenoise.events``), for every run in turn: started(LivePipeline), the
    pipeline's frame signals, failed(RunError) (a device, the engine, the disk; the frames stay on
    disk), finished(RunSummary). ``last_error`` and ``last_summary`` are set before they are emitted.
    """

    def __init__(self, core: CMMCorePlus, request: RunRequest, engine: Engine | None = None):
        """``engine``, when given, is the engine already loaded for the request's model and backend
        (it serves every window until they or the frame size change).

        Raises ``CalibrationError`` when the request's calibration profile cannot be applied, or was
        made with another model or at other camera settings (unless ``accept_calibration``).
        """
        self.core = core
        self.model = Path(request.model)
        self.backend = request.backend
        self.window = request.window
        self.policy = request.policy
        self.out_dir = request.out.parent if request.out else request.out_dir
        self.profile: Profile | None = (
            apply_profile(
                core, request.calibration, model=self.model, accept=request.accept_calibration
            )
            if request.calibration
            else None
        )
        self.latest = Latest()
        self.pipeline: LivePipeline | None = None
        self.last_out: Path | None = None
        self.last_summary: RunSummary | None = None
        self.last_error: str | None = None
        self._next_out = request.out
        self._engine = engine
        self._engine_key = self._key(None) if engine else None
        self._last_run: AcquisitionRun | None = None  # the latest sequence run, running or not
        self._live: LiveAcquisition | None = None
        self._live_ending = False
        self._run: AcquisitionRun | None = None
        # set while no background run is going; waited on, never Thread.join, since a join that
        # Ctrl-C interrupts can leave its thread marked as stopped while it still runs
        self._idle = threading.Event()
        self._idle.set()
        self.events = Events()
        # connected first, so every other receiver finds them already updated
        self.events.failed.connect(self._remember_failure)
        self.events.frameAcquired.connect(self.latest.set_raw)
        self.events.frameDenoised.connect(self.latest.set_denoised)

    # -- state ---------------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._live is not None or not self._idle.is_set()

    @property
    def live(self) -> bool:
        """Whether live mode is on and not ending (as opposed to a sequence, or nothing)."""
        return self._live is not None and not self._live_ending

    @property
    def loaded_engine(self) -> Engine | None:
        """The engine in use, if one was loaded (for display; never loads one)."""
        return self._engine

    @property
    def mosaic(self) -> Mosaic | None:
        """The last tiled run's mosaic, filling in while it runs."""
        return self._last_run.output.mosaic if self._last_run else None

    @property
    def averaging(self) -> Control | None:
        """The property that sets averaging (line average, else exposure), if the camera has one."""
        try:
            return device_control(self.core)
        except CalibrationError:
            return None

    def set_averaging(self, value: float) -> None:
        control = self.averaging
        if control is None or control.device is None:
            raise CalibrationError("this camera has no averaging property")
        set_number(self.core, control.device, control.name, control.text(value))

    # -- engine --------------------------------------------------------------------------------------

    def window_for(self, live: bool) -> int:
        """The window of a run: the one asked for, else ``LIVE_WINDOW`` in live mode and
        ``SEQUENCE_WINDOW`` for a sequence."""
        return self.window or (LIVE_WINDOW if live else SEQUENCE_WINDOW)

    def _key(self, window: int | None) -> tuple[Any, ...]:
        size = (self.core.getImageHeight(), self.core.getImageWidth())
        return (self.model, self.backend, window, size)

    def engine(self, live: bool = False) -> Engine:
        """The engine for the current model, backend, frame size and the window of a live run
        (``live``) or a sequence, loaded once per choice.

        Raises ``ModelFileError`` for a missing or broken model, ``BackendError`` for a backend that
        cannot run here.
        """
        window = self.window_for(live)
        key = self._key(window)
        if self._engine is None or self._engine_key not in (key, self._key(None)):
            self._engine = load_engine(self.model, self.backend, window=window, frame_size=key[3])
            # the first frame should not pay for set-up (GPU graphs, plans)
            self._engine.warmup(window, *key[3])
            self._engine_key = key
        return self._engine

    def _settings(self, live: bool) -> RunSettings:
        out, self._next_out = self._next_out, None
        self.last_out = out or self.out_dir / default_store_name()
        policy = self.policy or (Policy.live if live else Policy.record)
        return RunSettings(out=self.last_out, policy=policy, window=self.window_for(live))

    def _attrs(self, engine: Engine) -> dict[str, Any]:
        attrs = engine_attrs(engine)
        if self.profile is not None:
            attrs["calibration"] = self.profile.model_dump(mode="json")
        return attrs

    # -- runs ----------------------------------------------------------------------------------------

    def check(self, sequence: useq.MDASequence | None = None) -> None:
        """Refuse what would fail, before anything is acquired or written: no camera or frames too
        small (``check_camera``), a sequence with no events or a zero-size plan, a channel preset
        this microscope lacks, an output that exists or cannot be written. Raises SetupError,
        FileExistsError or OutputPathError."""
        check_camera(self.core)
        if sequence is not None:
            check_sequence(sequence)
            check_presets(self.core, sequence)
        if self._next_out is not None:
            check_new_store(self._next_out)

    def _observe(self, pipeline: LivePipeline) -> None:
        relay(pipeline.events, self.events)
        self.pipeline = pipeline
        self.events.started.emit(pipeline)

    def _remember_failure(self, error: Exception) -> None:
        self.last_error = str(error)

    def _finished(self, summary: RunSummary) -> None:
        self.last_summary = summary
        self.events.finished.emit(summary)

    def start_live(self) -> None:
        """Continuous acquisition until ``stop``; raises RunInProgress if a run is in progress,
        SetupError for a camera ``check_camera`` refuses."""
        self._check_idle()
        check_camera(self.core)
        engine = self.engine(live=True)
        self.last_error = None
        self._live = LiveAcquisition(self.core, engine, self._settings(True), self._attrs(engine))
        self._observe(self._live.pipeline)
        self._live.start()

    def _prepare(self, sequence: useq.MDASequence) -> AcquisitionRun:
        self._check_idle()
        self.check(sequence)
        engine = self.engine()
        self.last_error = None
        run = AcquisitionRun(
            self.core, sequence, engine, self._settings(False), self._attrs(engine)
        )
        run.output.events.started.connect(self._observe)
        self._run = self._last_run = run
        return run

    def run_sequence(self, sequence: useq.MDASequence) -> RunSummary:
        """Run an MDA sequence in this thread (it becomes the acquisition thread) to its end."""
        run = self._prepare(sequence)
        try:
            summary = run.run()
        finally:
            self._run = None
        self._finished(summary)
        return summary

    def start_sequence(self, sequence: useq.MDASequence) -> None:
        """Run an MDA sequence in a background thread; ``events.finished`` tells when it is done."""
        run = self._prepare(sequence)
        self._background(run.run, "the run failed", "livedenoise-mda", self._sequence_ended)

    def _sequence_ended(self) -> None:
        self._run = None

    def _background(
        self, work: Callable[[], RunSummary], failure: str, name: str, ended: Callable[[], None]
    ) -> None:
        """``work`` in a thread: its summary ends the run, an exception fails it (no thread dies
        quietly: the front end shows why); ``ended`` then clears the run's state."""
        self._idle.clear()

        def run() -> None:
            try:
                self._finished(work())
            except Exception as err:
                self.events.failed.emit(RunError(f"{failure}: {err}", path=self.last_out))
            finally:
                ended()
                self._idle.set()

        threading.Thread(target=run, name=name).start()

    @property
    def expected(self) -> int:
        """Frames the running sequence will deliver (0 in live mode or before it starts)."""
        return self._last_run.output.expected if self._last_run and self._live is None else 0

    @property
    def backlog(self) -> int:
        """Frames of the current run acquired but not yet denoised."""
        return self.pipeline.backlog if self.pipeline is not None and self.running else 0

    def stop_acquiring(self, ended: str | None = None) -> None:
        """Stop acquiring now, without waiting: acquired frames are still saved and, under the
        record policy, denoised (``skip_backlog`` leaves them raw-only). ``wait`` for the end.

        ``ended``: how the store says the run ended (``TERMINATED`` for a SIGTERM); by default a
        sequence was stopped by the user and live mode completed."""
        if self._live is not None and not self._live_ending:
            self._live_ending = True
            self._live.stop_acquiring(ended)
            self._background(
                self._live.stop, "ending live mode failed", "livedenoise-live-end", self._live_ended
            )
        elif self._run is not None:
            self._run.cancel(ended or STOPPED_BY_USER)

    def _live_ended(self) -> None:
        self._live, self._live_ending = None, False

    def skip_backlog(self) -> None:
        """Leave the frames still waiting for the engine raw-only; the run then closes at once."""
        if self.pipeline is not None:
            self.pipeline.skip_backlog()

    def close(self) -> None:
        """Stop any run and release the core (see ``release_microscope``)."""
        self.stop()
        release_microscope(self.core)

    def stop(self, timeout: float | None = 60) -> RunSummary | None:
        """Stop whatever runs and wait until its store is closed; returns its summary."""
        self.stop_acquiring()
        self.wait(timeout)
        return self.last_summary

    def wait(self, timeout: float | None = None) -> RunSummary | None:
        """Wait for a background run (or the end of live mode) to end; returns the last summary."""
        self._idle.wait(timeout)
        return self.last_summary

    def _check_idle(self) -> None:
        if self.running:
            raise RunInProgress("a run is in progress: stop it first")
