"""``livedenoise calibrate``: how far averaging can be cut with this model, and the settings to use.

On the microscope (the simulated one, or ``--config``): R repeats of the current field (or of each
``--xy`` position) at the fastest value of the averaging property; offline (``--from-stack``, once per
field): recorded repeat stacks. Writes ``calibration/NAME/`` (or the ``--out`` path) with
``profile.json`` (for ``livedenoise acquire --calibration``), the plot and a short report.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from livedenoise.acquisition import ConfigError
from livedenoise.app import open_microscope, release_microscope
from livedenoise.app.calibration import (
    CalibrationRequest,
    RecordedStack,
    Recording,
    calibrate_from_stack,
    calibrate_on_core,
)
from livedenoise.backends import AUTO
from livedenoise.calibration.choose import DEFAULT_REFERENCE_AVERAGES
from livedenoise.calibration.criteria import CRITERIA, Tolerance, names
from livedenoise.calibration.errors import CalibrationError
from livedenoise.calibration.profile import Profile
from livedenoise.calibration.report import COLUMNS, PLOT, REPORT, summary, table_rows
from livedenoise.calibration.residual import STRUCTURE_LIMIT
from livedenoise.cli.common import BackendOption, Threads, console, fail, use_threads
from livedenoise.errors import LivedenoiseError
from livedenoise.events import Events
from livedenoise.events import Progress as TaskProgress
from livedenoise.pipeline.output import expected_frames
from livedenoise.pipeline.setup import SetupError, load_sequence

CALIBRATION_DIR = Path("calibration")
# typer's choice list: the criteria registered when the command line is loaded, the default first
CriterionName = Enum("CriterionName", {kind: kind for kind in CRITERIA}, type=str)  # type: ignore[misc]
DEFAULT_CRITERION = CriterionName(names()[0])
# the library's parameters whose flag is named otherwise (the rest: --name-of-it)
FLAGS = {"directory": "--out", "positions": "--xy", "settings": "--set"}


class _Bars:
    """The calibration as it goes: the engine line, then a bar for each stage (the repeats, the
    ladder), which starts with its ``progress`` at 0.

    The bars appear with the first of them, so an error before that prints alone; use as a context.
    """

    task: TaskID  # the bar of the current stage

    def __init__(self) -> None:
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        self.bars = Progress(*columns, TimeElapsedColumn(), console=console)
        self.events = Events()
        self.events.status.connect(self._status)
        self.events.progress.connect(self._progress)

    def __enter__(self) -> _Bars:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bars.live.is_started:
            self.bars.stop()

    def _status(self, text: str) -> None:
        console.print(text)

    def _progress(self, progress: TaskProgress) -> None:
        if progress.done == 0:
            self.bars.start()
            self.task = self.bars.add_task(progress.what, total=progress.total)
        else:
            self.bars.update(self.task, completed=progress.done)


def parse_xy(text: str) -> tuple[float, float]:
    """``X,Y`` in micrometres."""
    try:
        x, y = (float(v) for v in text.split(","))
    except ValueError:
        raise CalibrationError(f"--xy {text!r}: write X,Y in micrometres, e.g. 22.5,22.5") from None
    return x, y


def out_directory(out: str) -> Path:
    """``--out``: a plain name goes under ``calibration/``, anything with a folder in it is a path."""
    if out in ("", ".", ".."):
        raise CalibrationError(
            f"--out {out!r}: give a name (written to {CALIBRATION_DIR}/NAME/) or a path."
        )
    return CALIBRATION_DIR / out if Path(out).name == out else Path(out)


def _show(profile: Profile, out: Path) -> None:
    m = profile.measurement
    fields = f", {m.fields} fields pooled" if m.fields > 1 else ""
    table = Table(title=f"quality vs averages (mean ± 95% CI over {m.crops} crops{fields})")
    shown = [
        i for i, c in enumerate(COLUMNS) if c not in ("gain dB", "raw SSIM")
    ]  # fits a terminal
    for i in shown:
        table.add_column(COLUMNS[i], justify="right")
    for row in table_rows(m, profile.verdict):
        table.add_row(*(row[i] for i in shown))
    console.print(table)
    for note in profile.notes:
        console.print(f"[dim]note: {escape(note)}[/]", highlight=False)
    for line in summary(profile):
        console.print(line, highlight=False)
    console.print(f"wrote {out}/ (profile.json, {PLOT}, {REPORT})")


def calibrate_command(
    model: Annotated[Path, typer.Option(help="The model: NAME, NAME.safetensors or NAME.json.")],
    out: Annotated[
        str,
        typer.Option(help="NAME (writes calibration/NAME/) or a folder path (writes there)."),
    ],
    from_stack: Annotated[
        list[Path] | None,
        typer.Option(
            metavar="FILE",
            help="Calibrate offline on a recorded repeat stack (.tif, .npy, .ome.zarr); repeat the "
            "option for more fields.",
        ),
    ] = None,
    image: Annotated[
        str | None,
        typer.Option(
            help="Offline: the image inside each --from-stack file that holds several, e.g. raw/p0 "
            "of a run store or a multi-series TIFF's series number.",
        ),
    ] = None,
    config: Annotated[
        Path | None,
        typer.Option(help="Micro-Manager config file; none = the simulated microscope."),
    ] = None,
    xy: Annotated[
        list[str] | None,
        typer.Option(
            metavar="X,Y",
            help="Record a field at stage position X,Y (um); repeat for more fields. Default: the "
            "current field.",
        ),
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
            f"{DEFAULT_REFERENCE_AVERAGES} averages, or the most the repeats measure if fewer."
        ),
    ] = None,
    criterion: Annotated[
        CriterionName,
        typer.Option(help="; ".join(f"{kind}: {c.help}" for kind, c in CRITERIA.items()) + "."),
    ] = DEFAULT_CRITERION,
    frames: Annotated[
        int | None,
        typer.Option(min=1, help="Frames of your planned acquisition, to report the time saved."),
    ] = None,
    sequence: Annotated[
        Path | None,
        typer.Option(
            help="Your planned useq sequence (YAML/JSON): its frames give the time saved."
        ),
    ] = None,
    margin: Annotated[
        float, typer.Option(min=0, help="Safety margin added to the breaking point, in averages.")
    ] = 1.0,
    tolerance_psnr: Annotated[
        float,
        typer.Option(
            help="How far (dB) below its target (reference or plateau) the PSNR may fall."
        ),
    ] = 0.5,
    tolerance_ssim: Annotated[
        float,
        typer.Option(help="How far below its target (reference or plateau) the SSIM may fall."),
    ] = 0.01,
    tolerance_structure: Annotated[
        float,
        typer.Option(
            help="Share of the sample's contrast the model may remove or add (hallucination check)."
        ),
    ] = STRUCTURE_LIMIT,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="DEV.PROP=VALUE",
            help="Set a property, DEVICE.PROPERTY=VALUE, before recording (repeatable).",
        ),
    ] = None,
    backend: BackendOption = AUTO,
    frame_ms: Annotated[
        float | None,
        typer.Option(min=0, help="Offline: the stack's frame time in ms, to report frame times."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace an existing calibration.")
    ] = False,
    tta: Annotated[
        bool,
        typer.Option(
            "--tta",
            metavar="",
            help="Measure the model with test-time augmentation (8x the time), for data you will "
            "denoise with 'denoise --tta'; live mode never uses it.",
        ),
    ] = False,
    threads: Threads = None,
) -> None:
    """Find the fewest averages at which the model still delivers, and choose the fastest safe setting."""
    use_threads(threads)
    microscope_only = {"--config": config, "--set": set_, "--xy": xy, "--property": property_}
    try:
        directory = out_directory(out)
        _check_options(from_stack, {"--frame-ms": frame_ms, "--image": image}, microscope_only)
        if frames is not None and sequence is not None:
            raise CalibrationError("give --frames or --sequence, not both.")
        request = CalibrationRequest(
            model=model,
            backend=backend,
            reference=reference,
            criterion=criterion.value,
            margin=margin,
            tolerance=_tolerance(tolerance_psnr, tolerance_ssim, tolerance_structure),
            frames=expected_frames(load_sequence(sequence)) if sequence else frames,
            tta=tta,
        )
        with _Bars() as bars:
            if from_stack:
                stack = RecordedStack(paths=from_stack, frame_ms=frame_ms, image=image)
                profile = calibrate_from_stack(
                    stack, request, directory, overwrite=overwrite, events=bars.events
                )
            else:
                recording = Recording(
                    repeats=repeats, property=property_, positions=[parse_xy(p) for p in xy or []]
                )
                core = open_microscope(config, set_ or [])
                try:
                    profile = calibrate_on_core(
                        core, request, recording, directory, overwrite=overwrite, events=bars.events
                    )
                finally:
                    release_microscope(core)
    except (LivedenoiseError, ConfigError, SetupError, OSError) as err:
        raise fail(err, FLAGS) from None
    _show(profile, directory)


def _check_options(
    from_stack: list[Path] | None,
    stack_only: Mapping[str, object],
    microscope_only: Mapping[str, object],
) -> None:
    """Refuse options that do not apply to the source."""
    if from_stack:
        if given := [name for name, value in microscope_only.items() if value]:
            raise CalibrationError(
                f"{', '.join(given)}: only for the microscope, not for --from-stack files."
            )
    elif given := [name for name, value in stack_only.items() if value is not None]:
        raise CalibrationError(
            f"{', '.join(given)}: only for --from-stack files; the microscope reports its own "
            "frame time and records one field at a time."
        )


def _tolerance(psnr_db: float, ssim: float, structure: float) -> Tolerance:
    try:
        return Tolerance(psnr_db=psnr_db, ssim=ssim, structure=structure)
    except ValidationError as err:
        raise fail(f"tolerances must be positive:\n{err}") from None
