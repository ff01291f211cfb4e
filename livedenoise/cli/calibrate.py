"""``livedenoise calibrate``: how far averaging can be cut with this model, and the settings to use.

On the microscope (the simulated one, or ``--config``): R repeats of the current field at the fastest
value of the averaging property; offline (``--from-stack``): a recorded repeat stack. Writes
``calibration/NAME/`` with ``profile.json`` (for ``livedenoise acquire --calibration``), the plot and a
short report.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from livedenoise.acquisition import make_core
from livedenoise.calibration.analysis import ladder_for
from livedenoise.calibration.breaking import Tolerance
from livedenoise.calibration.choose import (
    Control,
    device_control,
    frames_control,
    reference_value,
)
from livedenoise.calibration.errors import CalibrationError
from livedenoise.calibration.profile import Profile, check_free
from livedenoise.calibration.repeats import Repeats, acquire_repeats, load_repeats
from livedenoise.calibration.report import COLUMNS, PLOT, REPORT, summary, table_rows
from livedenoise.calibration.residual import STRUCTURE_LIMIT
from livedenoise.calibration.run import DEFAULT_REFERENCE_AVERAGES, calibrate, save_calibration
from livedenoise.cli.common import Backend, console, fail
from livedenoise.inference import BackendError, Engine, InputError, load_engine
from livedenoise.model import ModelFileError
from livedenoise.pipeline.setup import SetupError, apply_assignments

CALIBRATION_DIR = Path("calibration")
FrameTime = Callable[[float], float | None]


def _progress() -> Progress:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    return Progress(*columns, TimeElapsedColumn(), console=console)


def parse_xy(text: str) -> tuple[float, float]:
    """``X,Y`` in micrometres."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise CalibrationError(f"--xy {text!r}: write X,Y in micrometres, e.g. 22.5,22.5") from None
    return x, y


def _from_microscope(
    config: Path | None,
    settings: list[str],
    xy: str | None,
    spec: str | None,
    count: int,
    model: Path,
    backend: str,
) -> tuple[Engine, Control, Callable[[], Repeats], FrameTime]:
    core = make_core(config)
    apply_assignments(core, settings)
    if xy is not None:
        if not core.getXYStageDevice():
            raise CalibrationError("--xy: this microscope has no XY stage.")
        core.setXYPosition(*parse_xy(xy))
        core.waitForDevice(core.getXYStageDevice())
    control = device_control(core, spec)
    size = (core.getImageHeight(), core.getImageWidth())
    engine = load_engine(model, backend, window=1, frame_size=size)

    def record() -> Repeats:
        with _progress() as progress:
            task = progress.add_task(
                f"repeats at {control.label}={control.text(control.base)}", total=count
            )
            return acquire_repeats(
                core, count, control, lambda done: progress.update(task, completed=done)
            )

    return engine, control, record, lambda value: control.frame_ms(core, value)


def _from_stack(
    stack: Path, frame_ms: float | None, model: Path, backend: str
) -> tuple[Engine, Control, Callable[[], Repeats], FrameTime]:
    repeats = load_repeats(stack)
    engine = load_engine(model, backend, window=1, frame_size=repeats.frames.shape[1:])
    return (
        engine,
        frames_control(),
        lambda: repeats,
        lambda n: None if frame_ms is None else n * frame_ms,
    )


def _show(profile: Profile, out: Path) -> None:
    table = Table(
        title=f"quality vs averages (mean ± 95% CI over {profile.measurement.crops} crops)"
    )
    shown = [i for i, column in enumerate(COLUMNS) if "NRMSE" not in column]  # fits a terminal
    for i in shown:
        table.add_column(COLUMNS[i], justify="right")
    for row in table_rows(profile):
        table.add_row(*(row[i] for i in shown))
    console.print(table)
    for note in profile.notes:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False)
    for line in summary(profile):
        console.print(line, highlight=False)
    console.print(f"wrote {out}/ (profile.json, {PLOT}, {REPORT})")


def calibrate_command(
    model: Annotated[Path, typer.Option(help="The model: NAME, NAME.safetensors or NAME.json.")],
    out: Annotated[str, typer.Option(help="Name of the calibration: writes calibration/NAME/.")],
    from_stack: Annotated[
        Path | None,
        typer.Option(help="Calibrate offline on a recorded repeat stack (.tif, .npy, .ome.zarr)."),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Micro-Manager config file; none = the simulated microscope."),
    ] = None,
    xy: Annotated[
        str | None, typer.Option(help="Move the XY stage to X,Y (um) first; default: stay.")
    ] = None,
    repeats: Annotated[int, typer.Option(help="Repeated frames to record (R).")] = 64,
    property_: Annotated[
        str | None,
        typer.Option(
            "--property",
            help="[DEVICE.]PROPERTY that sets averaging; default: the camera's LineAverage, "
            "else its Exposure.",
        ),
    ] = None,
    reference: Annotated[
        float | None,
        typer.Option(
            help="Your usual protocol, as a value of the property (frames offline); default: "
            f"{DEFAULT_REFERENCE_AVERAGES} averages."
        ),
    ] = None,
    margin: Annotated[
        float, typer.Option(min=0, help="Safety margin added to the breaking point, in averages.")
    ] = 1.0,
    tolerance_psnr: Annotated[
        float, typer.Option(help="How far (dB) below its plateau the PSNR may fall.")
    ] = 0.5,
    tolerance_ssim: Annotated[
        float, typer.Option(help="How far below its plateau the SSIM may fall.")
    ] = 0.01,
    tolerance_structure: Annotated[
        float,
        typer.Option(
            help="Share of the sample's contrast the model may remove or add (hallucination check)."
        ),
    ] = STRUCTURE_LIMIT,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="DEVICE.PROPERTY=VALUE before recording (repeatable)."),
    ] = None,
    backend: Annotated[Backend, typer.Option(help="Inference engine.")] = Backend.auto,  # type: ignore[valid-type]
    frame_ms: Annotated[
        float | None,
        typer.Option(help="Offline: the stack's frame time in ms, to report frame times."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing calibration NAME.")] = False,
) -> None:
    """Find the model's breaking point and choose the fastest safe averaging setting."""
    directory = CALIBRATION_DIR / out
    microscope_only = {"--config": config, "--set": set_, "--xy": xy, "--property": property_}
    try:
        if Path(out).name != out or out in ("", ".", ".."):
            raise CalibrationError(
                f"--out {out!r}: give a plain name; it is written to {directory}/."
            )
        check_free(directory, overwrite)
        tolerance = Tolerance(
            psnr_db=tolerance_psnr, ssim=tolerance_ssim, structure=tolerance_structure
        )
        if from_stack is not None:
            if given := [name for name, value in microscope_only.items() if value]:
                raise CalibrationError(
                    f"{', '.join(given)} apply to the microscope, not --from-stack."
                )
            engine, control, record, frame_time = _from_stack(
                from_stack, frame_ms, model, backend.value
            )
        else:
            if frame_ms is not None:
                raise CalibrationError(
                    "--frame-ms is for --from-stack; the microscope reports its own."
                )
            engine, control, record, frame_time = _from_microscope(
                config, set_ or [], xy, property_, repeats, model, backend.value
            )
        ref = reference_value(control, reference, DEFAULT_REFERENCE_AVERAGES)
    except ValidationError as err:
        raise fail(f"tolerances must be positive:\n{err}") from None
    except (CalibrationError, SetupError, ModelFileError, BackendError, FileNotFoundError) as err:
        raise fail(str(err)) from None
    console.print(f"engine: {engine.describe()}")
    try:
        data = record()
    except CalibrationError as err:
        raise fail(str(err)) from None
    except Exception as err:  # a device fault: MMCore and device adapters raise their own types
        raise fail(f"recording the repeats failed ({err}); nothing was written.") from None
    try:
        with _progress() as progress:
            task = progress.add_task(
                "denoising the ladder", total=len(ladder_for(data.frames.shape[0]))
            )
            profile = calibrate(
                engine,
                str(model),
                data,
                control,
                ref,
                tolerance,
                margin,
                frame_time,
                lambda rung: progress.advance(task),
            )
        save_calibration(directory, profile, overwrite)
    except (CalibrationError, InputError) as err:
        raise fail(str(err)) from None
    _show(profile, directory)


def register(app: typer.Typer) -> None:
    app.command("calibrate", rich_help_panel="Acquisition")(calibrate_command)
