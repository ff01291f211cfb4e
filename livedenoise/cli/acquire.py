"""Commands that acquire: `acquire` (a sequence or live mode) and `demo` (the built-in tiled demo)."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated

import typer
import useq
from rich.table import Table

from livedenoise.app import Acquisition, RunRequest, RunSummary, open_microscope, release_microscope
from livedenoise.backends import AUTO
from livedenoise.cli.common import BackendOption, Threads, console, fail, use_threads
from livedenoise.cli.headless import follow
from livedenoise.errors import LivedenoiseError
from livedenoise.gui.display import check_display
from livedenoise.pipeline.live import Policy
from livedenoise.pipeline.setup import DEMO_SETTINGS, demo_sequence, load_sequence
from livedenoise.pipeline.stats import STOPPED_BY_USER, TERMINATED

DEFAULT_MODEL = Path("backbone-small")
DEMO_MODEL = Path("sim-confocal-small")  # the backbone fine-tuned on the simulator's pairs
StoreOption = Annotated[
    Path | None,
    typer.Option(
        help="The OME-Zarr store to write (default: "
        f"{RunRequest.model_fields['out_dir'].default}/DATE-TIME.ome.zarr)."
    ),
]
FLAGS = {"settings": "--set"}  # the library's parameters these commands call otherwise


def stats_table(summary: RunSummary, title: str = "run statistics") -> Table:
    """The numbers a microscopist checks after a run: rates, latency, skipped and lost frames."""
    table = Table(title=title, show_header=False)
    s = summary
    rows = [
        ("frames acquired / denoised", f"{s.acquired} / {s.denoised}"),
        ("acquired fps / denoised fps", f"{s.acquired_fps:.1f} / {s.denoised_fps:.1f}"),
        (
            "latency p50 / p95 / p99 (ms)",
            f"{s.latency_p50_ms:.0f} / {s.latency_p95_ms:.0f} / {s.latency_p99_ms:.0f}",
        ),
        ("skipped (live policy)", str(s.skipped)),
        ("raw frames lost", str(s.dropped)),
        ("frames not denoised (engine errors)", str(s.failed)),
        ("frames saved raw-only", str(s.raw_only)),
    ]
    rows += [(f"{stage} (mean ms)", f"{ms:.1f}") for stage, ms in s.stage_mean_ms.items()]
    for label, value in rows:
        table.add_row(label, value)
    return table


def _prepare(
    config: Path | None,
    settings: list[str],
    request: RunRequest,
    sequence: useq.MDASequence | None,
) -> Acquisition:
    """The core, the calibration and the engine, or a clear error before anything runs."""
    try:
        core = open_microscope(config, settings)
    except (LivedenoiseError, FileNotFoundError) as err:
        raise fail(err, FLAGS) from None
    try:
        acquisition = Acquisition(core, request)
        acquisition.check(sequence)
        with console.status("loading the engine (a model's first use exports it once)"):
            engine = acquisition.engine(live=sequence is None)
    except (LivedenoiseError, OSError) as err:  # calibration, model, output: one line each
        release_microscope(core)  # a process that exits with devices loaded can abort
        raise fail(err, FLAGS) from None
    console.print(f"engine: {engine.describe()}")
    if (profile := acquisition.profile) is not None:
        console.print(
            f"calibration: {profile.control_label} = {profile.chosen.text} ({request.calibration})"
        )
    return acquisition


def _headless(acquisition: Acquisition, sequence: useq.MDASequence | None, duration: float) -> None:
    try:
        if sequence is None:
            follow(acquisition, acquisition.start_live, duration)
        else:
            follow(acquisition, lambda: acquisition.start_sequence(sequence), None)
    except LivedenoiseError as err:
        raise fail(err, FLAGS) from None
    except FileExistsError as err:
        raise fail(str(err)) from None
    _report(acquisition, acquisition.last_summary)


def _report(acquisition: Acquisition, summary: RunSummary | None) -> None:
    """The statistics, where the run is saved and how it ended; a non-zero exit if it failed."""
    if summary is None:
        if acquisition.last_error:
            raise fail(acquisition.last_error)
        return
    console.print(stats_table(summary))
    mosaic = f"; mosaic: {summary.mosaic}" if summary.mosaic else ""
    console.print(f"saved: {acquisition.last_out}{mosaic} ({summary.ended})")
    for failure in summary.autofocus_failures:
        console.print(f"autofocus failed at {failure.where()}: {failure.message}", soft_wrap=True)
    if error := summary.error or acquisition.last_error:
        raise fail(error)
    if summary.ended == TERMINATED:
        raise typer.Exit(143)  # 128 + SIGTERM, as a shell reports a process it terminated
    if summary.ended == STOPPED_BY_USER:
        raise typer.Exit(130)  # the shell's code for Ctrl-C: the run did not do all it was asked
    if failures := len(summary.autofocus_failures):
        raise fail(
            f"autofocus failed {failures} time(s) (listed above and in the store's summary): "
            "frames after a failed autofocus may be out of focus"
        )


def _view(acquisition: Acquisition, sequence: useq.MDASequence | None) -> None:
    """Open the viewer on the acquisition: it runs the sequence (or live mode) and saves as it goes.

    Ctrl-C in the terminal closes the window, which stops the run and closes its store.
    """
    from qtpy.QtCore import QTimer
    from qtpy.QtWidgets import QApplication

    from livedenoise.gui.main_window import LiveWindow

    app = QApplication.instance() or QApplication([])
    viewer = LiveWindow(acquisition)
    viewer.show()

    def interrupt(*_: object) -> None:  # as closing the window; the store: the user stopped it
        acquisition.stop_acquiring(STOPPED_BY_USER)
        viewer.close()

    previous = signal.signal(signal.SIGINT, interrupt)

    def terminate(*_: object) -> None:  # as closing the window, the store saying SIGTERM ended it
        acquisition.stop_acquiring(TERMINATED)
        viewer.close()

    previous_term = signal.signal(signal.SIGTERM, terminate)
    wake = QTimer()  # Qt's loop runs in C++: return to Python now and then so Ctrl-C is seen
    wake.timeout.connect(lambda: None)
    wake.start(200)
    if sequence is None:
        viewer.live_button.setChecked(True)
    else:
        viewer.run_sequence(sequence)
    try:
        app.exec()
    finally:
        signal.signal(signal.SIGINT, previous)
        signal.signal(signal.SIGTERM, previous_term)
    _report(acquisition, acquisition.last_summary)


def _acquire(
    sequence: useq.MDASequence | None,
    config: Path | None,
    settings: list[str],
    request: RunRequest,
    duration: float,
    headless: bool,
) -> None:
    if not headless:
        try:
            check_display()  # before anything loads: Qt aborts the process without a window
        except LivedenoiseError as err:
            raise fail(err) from None
    acquisition = _prepare(config, settings, request, sequence)
    try:
        if headless:
            _headless(acquisition, sequence, duration)
        else:
            _view(acquisition, sequence)
    finally:
        acquisition.close()


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
        typer.Option(
            "--set",
            metavar="DEV.PROP=VALUE",
            help="Set a property, DEVICE.PROPERTY=VALUE, before the run (repeatable).",
        ),
    ] = None,
    model: Annotated[Path, typer.Option(help="The denoising model.")] = DEFAULT_MODEL,
    backend: BackendOption = AUTO,
    out: StoreOption = None,
    policy: Annotated[
        Policy | None,
        typer.Option(
            help="record: denoise every frame; live: newest frame wins. Default: live in live "
            "mode, record for a sequence."
        ),
    ] = None,
    window: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=64,
            metavar="T",
            help="Frames per denoising window (T). Default: 1 in live mode (latency), 4 for a "
            "sequence.",
        ),
    ] = None,
    duration: Annotated[
        float,
        typer.Option(min=0.1, metavar="SECONDS", help="Live mode, headless: seconds to acquire."),
    ] = 10.0,
    headless: Annotated[
        bool,
        typer.Option(
            "--headless", metavar="", help="No viewer: print the statistics table at the end."
        ),
    ] = False,
    calibration: Annotated[
        Path | None,
        typer.Option(help="A calibration profile.json to apply (sets its averaging property)."),
    ] = None,
    accept_calibration: Annotated[
        bool,
        typer.Option(
            "--accept-calibration",
            metavar="",
            help="Apply --calibration even if it was made with another model or at other camera "
            "settings (pixel size, frame size, binning, bit depth).",
        ),
    ] = False,
    threads: Threads = None,
) -> None:
    """Acquire a sequence (or live), denoising every frame as it arrives; raw and denoised are saved."""
    use_threads(threads)
    try:
        seq = load_sequence(sequence) if sequence else None
    except LivedenoiseError as err:
        raise fail(err) from None
    request = RunRequest(
        model=model,
        backend=backend,
        window=window,
        policy=policy,
        out=out,
        calibration=calibration,
        accept_calibration=accept_calibration,
    )
    _acquire(seq, config, set_ or [], request, duration, headless)


SIZE_NAMES = {
    "t": "timepoints",
    "p": "positions",
    "g": "grid tiles",
    "c": "channels",
    "z": "z-slices",
}


def demo(
    model: Annotated[Path, typer.Option(help="The denoising model.")] = DEMO_MODEL,
    backend: BackendOption = AUTO,
    out: StoreOption = None,
    headless: Annotated[
        bool,
        typer.Option(
            "--headless", metavar="", help="No viewer: print the statistics table at the end."
        ),
    ] = False,
) -> None:
    """The built-in demo on the simulated microscope: a 2x2 tiled, two-channel z-stack, twice."""
    request = RunRequest(model=model, backend=backend, window=3, policy=Policy.record, out=out)
    sequence = demo_sequence()
    sizes = ", ".join(f"{n} {SIZE_NAMES[axis]}" for axis, n in sequence.sizes.items() if n > 1)
    console.print(
        f"demo on the simulated microscope: {sizes} ({len(list(sequence))} frames; "
        f"{', '.join(DEMO_SETTINGS)}), denoised by {model} in windows of {request.window}"
    )
    _acquire(sequence, None, DEMO_SETTINGS, request, 0, headless)
