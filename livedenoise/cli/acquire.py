"""Commands that acquire: `acquire` (a sequence or live mode) and `demo` (the built-in tiled demo)."""

from __future__ import annotations

import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
import useq
from pymmcore_plus import CMMCorePlus
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from livedenoise.acquisition import make_core
from livedenoise.calibration.errors import CalibrationError
from livedenoise.calibration.profile import apply_profile
from livedenoise.cli.common import console, fail
from livedenoise.inference import BackendError, Engine, load_engine
from livedenoise.model import ModelFileError
from livedenoise.pipeline.acquire import (
    AcquisitionRun,
    LiveAcquisition,
    RunSettings,
    expected_frames,
)
from livedenoise.pipeline.live import Policy
from livedenoise.pipeline.setup import (
    DEMO_SETTINGS,
    SetupError,
    apply_assignments,
    demo_sequence,
    load_sequence,
)

DEFAULT_MODEL = Path("engines/backbone-small")
DEMO_MODEL = Path("engines/sim-confocal-small")  # the backbone fine-tuned on the simulator's pairs


def default_out() -> Path:
    return Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}.ome.zarr"


def stats_table(summary: dict[str, Any], title: str = "run statistics") -> Table:
    """The numbers a microscopist checks after a run: rates, latency, skipped and lost frames."""
    table = Table(title=title, show_header=False)
    rows = [
        ("frames acquired / denoised", f"{summary['acquired']} / {summary['denoised']}"),
        (
            "acquired fps / denoised fps",
            f"{summary['acquired_fps']:.1f} / {summary['denoised_fps']:.1f}",
        ),
        (
            "latency p50 / p95 / p99 (ms)",
            f"{summary['latency_p50_ms']:.0f} / {summary['latency_p95_ms']:.0f} / "
            f"{summary['latency_p99_ms']:.0f}",
        ),
        ("skipped (live policy)", str(summary["skipped"])),
        ("raw frames lost", str(summary["dropped"])),
        ("frames not denoised (engine errors)", str(summary["failed"])),
    ]
    rows += [(f"{stage} (mean ms)", f"{ms:.1f}") for stage, ms in summary["stage_mean_ms"].items()]
    for label, value in rows:
        table.add_row(label, value)
    return table


def _run_with_progress(run: AcquisitionRun, total: int) -> dict[str, Any]:
    """Acquire in this thread while a rich bar follows acquisition and denoising."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=True) as progress:
        acquired = progress.add_task("acquired", total=total)
        denoised = progress.add_task("denoised", total=total)
        stats = run.pipeline.stats
        done = threading.Event()

        def follow() -> None:
            while not done.wait(0.1):
                progress.update(acquired, completed=stats.acquired)
                progress.update(denoised, completed=stats.denoised)

        follower = threading.Thread(target=follow, daemon=True)
        follower.start()
        try:
            return run.run()
        finally:
            done.set()
            follower.join()


def _acquire(
    sequence: useq.MDASequence | None,
    config: Path | None,
    settings: list[str],
    model: Path,
    backend: str,
    out: Path,
    policy: Policy,
    window: int,
    duration: float,
    headless: bool,
    calibration: Path | None = None,
) -> None:
    try:
        core = make_core(config)
        apply_assignments(core, settings)
        profile = apply_profile(core, calibration) if calibration else None
        frame_size = (core.getImageHeight(), core.getImageWidth())
        engine = load_engine(model, backend, window=window, frame_size=frame_size)
    except (SetupError, CalibrationError, ModelFileError, BackendError, FileNotFoundError) as err:
        raise fail(str(err)) from None
    console.print(f"engine: {engine.describe()}")
    if profile is not None:
        console.print(
            f"calibration: {profile.control_label} = {profile.chosen.text} ({calibration})"
        )
    if not headless:
        _view(core, sequence, engine, model, backend, out.parent, window)
        return
    attrs = {"model": engine.card.model_dump(mode="json"), "backend": engine.describe()}
    if profile is not None:
        attrs["calibration"] = profile.model_dump(mode="json")
    run_settings = RunSettings(out=out, policy=policy, window=window)
    try:
        if sequence is None:
            live = LiveAcquisition(core, engine, run_settings, attrs)
            live.start()
            with console.status(f"live for {duration:g} s"):
                time.sleep(duration)
            summary = live.stop()
        else:
            run = AcquisitionRun(core, sequence, engine, run_settings, attrs)
            summary = _run_with_progress(run, expected_frames(sequence))
    except FileExistsError as err:
        raise fail(str(err)) from None
    console.print(stats_table(summary))
    console.print(
        f"saved: {out}" + (f"; mosaic: {summary['mosaic']}" if "mosaic" in summary else "")
    )
    if "error" in summary:
        raise fail(summary["error"])


def _view(
    core: CMMCorePlus,
    sequence: useq.MDASequence | None,
    engine: Engine,
    model: Path,
    backend: str,
    out_dir: Path,
    window: int,
) -> None:
    """Open the viewer on the core: it runs the sequence (or live mode) and saves as it goes."""
    from qtpy.QtWidgets import QApplication

    from livedenoise.gui.controller import RunController
    from livedenoise.gui.main_window import LiveWindow

    app = QApplication.instance() or QApplication([])
    controller = RunController(core, model, backend, out_dir, window, engine)
    viewer = LiveWindow(controller)
    viewer.show()
    if sequence is None:
        viewer.live_button.setChecked(True)
    else:
        viewer.run_sequence(sequence)
    app.exec()
    if controller.last_summary:
        console.print(stats_table(controller.last_summary))


def acquire(
    sequence: Annotated[
        Path | None, typer.Argument(help="A useq MDA sequence (YAML/JSON); none = live mode.")
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Micro-Manager config file; none = the simulated microscope."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="DEVICE.PROPERTY=VALUE before the run (repeatable)."),
    ] = None,
    model: Annotated[Path, typer.Option(help="The denoising model.")] = DEFAULT_MODEL,
    backend: Annotated[str, typer.Option(help="tensorrt, onnxruntime, torch or auto.")] = "auto",
    out: Annotated[Path | None, typer.Option(help="The OME-Zarr store to write.")] = None,
    policy: Annotated[
        Policy, typer.Option(help="record: denoise every frame; live: newest frame wins.")
    ] = Policy.record,
    window: Annotated[int, typer.Option(help="Frames per denoising window (T).")] = 4,
    duration: Annotated[float, typer.Option(help="Live mode, headless: seconds to run.")] = 10.0,
    headless: Annotated[
        bool, typer.Option(help="No viewer: print the statistics table at the end.")
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(help="A calibration profile.json to apply (sets its averaging property)."),
    ] = None,
) -> None:
    """Acquire a sequence (or live), denoising every frame as it arrives; raw and denoised are saved."""
    try:
        seq = load_sequence(sequence) if sequence else None
    except SetupError as err:
        raise fail(str(err)) from None
    out = out or default_out()
    _acquire(
        seq,
        config,
        set_ or [],
        model,
        backend,
        out,
        policy,
        window,
        duration,
        headless,
        calibration,
    )


def demo(
    model: Annotated[Path, typer.Option(help="The denoising model.")] = DEMO_MODEL,
    backend: Annotated[str, typer.Option(help="tensorrt, onnxruntime, torch or auto.")] = "auto",
    out: Annotated[Path | None, typer.Option(help="The OME-Zarr store to write.")] = None,
    headless: Annotated[
        bool, typer.Option(help="No viewer: print the statistics table at the end.")
    ] = False,
) -> None:
    """The built-in demo on the simulated microscope: a 2x2 tiled, two-channel z-stack, twice."""
    out = out or default_out()
    sequence, settings = demo_sequence(), DEMO_SETTINGS
    _acquire(sequence, None, settings, model, backend, out, Policy.record, 3, 0, headless)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel="Acquisition")(acquire)
    app.command(rich_help_panel="Acquisition")(demo)
