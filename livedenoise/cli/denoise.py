"""``livedenoise denoise``: denoise an image file (2D, time series or z-stack) with a saved model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as Bar

from livedenoise.backends import AUTO
from livedenoise.cli.common import BackendOption, Threads, console, fail, use_threads
from livedenoise.errors import LivedenoiseError

if TYPE_CHECKING:
    from livedenoise.events import Events, Progress


class _Display:
    """The command's view of a denoising task's events: its lines, a spinner while a step of unknown
    length runs (a model's first use exports or builds it), then a progress bar; rich shows one of
    them at a time."""

    def __init__(self) -> None:
        self.spinner = console.status("")
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
        self.bar = Bar(*columns, TimeRemainingColumn(), console=console)
        self.task: TaskID | None = None

    def connect(self, events: Events) -> None:
        events.status.connect(self.line)
        events.progress.connect(self.advance)

    def line(self, text: str) -> None:
        self.spinner.stop()
        console.print(text)

    def advance(self, progress: Progress) -> None:
        if progress.total is None:
            self.spinner.update(progress.what)
            self.spinner.start()
            return
        self.spinner.stop()
        if self.task is None:
            self.bar.start()
            self.task = self.bar.add_task(progress.what, total=progress.total)
        self.bar.update(self.task, completed=progress.done)

    def __enter__(self) -> _Display:
        return self

    def __exit__(self, *exc: object) -> None:
        self.spinner.stop()
        if self.task is not None:
            self.bar.stop()


def denoise(
    model: Annotated[Path, typer.Argument(help="A model: NAME, NAME.safetensors or NAME.json.")],
    input: Annotated[
        Path,
        typer.Argument(help="Image to denoise: .tif, .ome.tif, .npy, OME-Zarr or a run store."),
    ],
    output: Annotated[
        Path,
        typer.Argument(help="Where to write: .tif (ImageJ), .ome.tif, .npy or .ome.zarr."),
    ],
    image: Annotated[
        str | None,
        typer.Option(
            help="The image inside an OME-Zarr collection or run store (e.g. raw/p0), or the "
            "series of a multi-series TIFF (its number from 0, or its name)."
        ),
    ] = None,
    backend: BackendOption = AUTO,
    window: Annotated[
        int,
        typer.Option("--window", "-t", min=1, metavar="T", help="Frames (or z-planes) per window."),
    ] = 8,
    stride: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help="Frames between overlapping windows, 1 to --window: smaller is closer to one "
            "window per frame, larger is faster (default: half the window).",
        ),
    ] = None,
    axes: Annotated[
        str | None,
        typer.Option(
            help="Axis letters of the input from TZCYX, e.g. ZYX (default: from the file)."
        ),
    ] = None,
    float32: Annotated[
        bool,
        typer.Option("--float32", metavar="", help="Write float32 instead of the input's dtype."),
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", metavar="", help="Replace OUTPUT if it exists.")
    ] = False,
    tta: Annotated[
        bool,
        typer.Option(
            "--tta",
            metavar="",
            help="Test-time augmentation: average each window over its 8 rotations and flips; "
            "8x the time for a small gain.",
        ),
    ] = False,
    threads: Threads = None,
    workers: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            rich_help_panel="Chunked (Dask)",
            help="Denoise OME-Zarr in blocks on a local Dask cluster of this many worker processes: "
            "memory bounded by the block, resumable by running the same command again.",
        ),
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            rich_help_panel="Chunked (Dask)",
            help="Address of a running dask.distributed scheduler (tcp://HOST:8786) to denoise on; "
            "INPUT and OUTPUT must be on storage its workers see.",
        ),
    ] = None,
    block_frames: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            rich_help_panel="Chunked (Dask)",
            help="Frames per block (a task), default 16: a worker holds about this plus twice "
            "--window frames.",
        ),
    ] = None,
) -> None:
    """Denoise a 2D image, time series or z-stack; in overlapping windows of T frames, all kept.

    The output keeps the input's pixel size, interval and position; a single-channel model denoises each channel on its own. A run store: --image raw/p0 denoises one image; without it, an OUTPUT ending .ome.zarr gets every raw image and its new denoised twin, as a run store.

    OME-Zarr too large for memory: --workers N (or --scheduler ADDRESS) denoises it block by block on Dask; a stopped run resumes where it was when the same command runs again.
    """
    chunked = workers is not None or scheduler is not None
    if workers is not None and scheduler is not None:
        raise fail(
            "--workers starts a local cluster and --scheduler uses a running one: give one of them."
        )
    if not chunked and block_frames is not None:
        raise fail(
            "--block-frames sizes the blocks of a chunked run: add --workers N or --scheduler."
        )
    if chunked and axes:
        raise fail("--axes is for files that do not name their axes; OME-Zarr does: drop --axes.")
    if chunked and tta:
        raise fail("--tta is not available for chunked runs: drop --tta, or --workers/--scheduler.")
    # loaded only now (torch, ONNX Runtime, zarr): --help and a mistaken option answer at once
    from livedenoise.app.chunked import ChunkedResult, denoise_chunked
    from livedenoise.app.denoising import DenoiseResult, denoise_file
    from livedenoise.events import Events

    use_threads(threads)
    result: DenoiseResult | ChunkedResult
    events = Events()
    try:
        with _Display() as display:
            display.connect(events)
            if chunked:
                result = denoise_chunked(
                    model,
                    input,
                    output,
                    image=image,
                    backend=backend,
                    window=window,
                    stride=stride,
                    float32=float32,
                    overwrite=overwrite,
                    workers=workers or 2,
                    scheduler=scheduler,
                    block_frames=16 if block_frames is None else block_frames,
                    events=events,
                )
            else:
                result = denoise_file(
                    model,
                    input,
                    output,
                    image=image,
                    backend=backend,
                    window=window,
                    stride=stride,
                    axes=axes,
                    float32=float32,
                    overwrite=overwrite,
                    tta=tta,
                    events=events,
                )
    except (LivedenoiseError, OSError) as err:
        raise fail(err) from None
    except KeyboardInterrupt:
        if chunked:
            console.print(
                f"stopped by Ctrl-C: every finished block of {output} is kept; "
                "run the same command again to resume."
            )
        else:
            existed = " (it may be incomplete: delete it)" if output.exists() else ""
            console.print(
                f"stopped by Ctrl-C: the input is untouched; {output} was not finished{existed}"
            )
        raise typer.Exit(130) from None
    if isinstance(result, ChunkedResult) and result.computed == 0:
        console.print(f"{output} was already complete: nothing to do (--overwrite redoes it)")
        return
    if isinstance(result, ChunkedResult) and result.computed < result.blocks:
        console.print(f"resumed: {result.blocks - result.computed} block(s) were done before")
    console.print(f"wrote {output}: {result.output}")
