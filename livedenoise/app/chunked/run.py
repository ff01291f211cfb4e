"""A chunked run from start to end: checks, the block plan, the cluster, the blocks still to do,
the finished output (see the package's docstring)."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from livedenoise.app.chunked.blocks import plan_blocks
from livedenoise.app.chunked.cluster import Cluster, compute
from livedenoise.app.chunked.output import (
    create_output,
    done_rows,
    finish,
    progress_group,
    resumed_backend,
)
from livedenoise.app.chunked.task import BlockResult, Job, ModelFiles, resolve_backend
from livedenoise.app.denoising import (
    DenoiseError,
    check_channels,
    check_output,
    check_stride,
    loading_engine,
    reported,
    show_engine,
)
from livedenoise.events import Events, events_or_new
from livedenoise.imageio import ImageFileError, describe, image_format
from livedenoise.inference import used_stride


@dataclass(frozen=True)
class ChunkedResult:
    """One line each for people, and the counts a resumed run is judged by."""

    input: str
    engine: str
    output: str
    blocks: int
    computed: int  # blocks computed by this run; the rest were done before
    peak_rss: dict[str, int]  # worker -> bytes


def denoise_chunked(
    model: Path | str,
    input: Path | str,
    output: Path | str,
    *,
    image: str | None = None,
    backend: str = "auto",
    window: int = 8,
    stride: int | None = None,
    float32: bool = False,
    overwrite: bool = False,
    workers: int = 2,
    scheduler: str | None = None,
    block_frames: int = 16,
    events: Events | None = None,
) -> ChunkedResult:
    """Denoise the OME-Zarr ``input`` into the OME-Zarr ``output`` as a Dask computation.

    ``input`` is an NGFF image (``image`` chooses one inside a collection) or a livedenoise run store,
    which becomes a run store of the same layout with every raw image and its denoised twin, as
    ``denoise_file`` writes it. Blocks hold ``block_frames`` frames (a worker's memory is about
    ``block_frames + 2 * window`` frames, whatever the recording's size); ``stride`` as
    ``denoise_file``. ``scheduler`` is the
    address of a running ``dask.distributed`` scheduler; without it, a local cluster of ``workers``
    processes.
    An unfinished output of the same command is resumed (``overwrite`` starts afresh).
    ``events`` as ``denoise_file``'s, and ``status`` with the cluster's line; ``progress`` counts
    blocks (``what`` "blocks"), those done before included. Raises DenoiseError, ImageFileError,
    ModelFileError, BackendError, InputError or OSError with a message for people; an error in a
    task stops the run and is recorded in the output's progress.
    """

    def run(events: Events) -> ChunkedResult:
        options = (image, backend, window, stride, float32, overwrite)
        cluster = Cluster(workers, scheduler)
        return _run(model, Path(input), Path(output), options, cluster, block_frames, events)

    return reported(events_or_new(events), Path(input), run)


def _run(
    model: Path | str,
    given: Path,
    output: Path,
    options: tuple[str | None, str, int, int | None, bool, bool],
    cluster: Cluster,
    block_frames: int,
    events: Events,
) -> ChunkedResult:
    """``denoise_chunked`` with its events given; ``options`` are its image, backend, window,
    stride, float32 and overwrite."""
    image, backend, window, stride, float32, overwrite = options
    input, output = given.resolve(), output.resolve()
    for path, role, ok in ((input, "INPUT", _is_zarr(input)), (output, "OUTPUT", _is_zarr(output))):
        if not ok:
            raise DenoiseError(
                f"{path}: chunked denoising reads and writes OME-Zarr",
                path=path,
                option="workers",
                hint=f"give an {role} ending .ome.zarr, or denoise in one process, with neither "
                "workers nor a scheduler",
            )
    if not input.exists():
        raise ImageFileError(f"{input}: no such file.", path=input)
    check_output(output, input, model)  # before resuming or overwriting removes anything
    if block_frames < 1:
        raise DenoiseError(
            f"blocks of {block_frames} frame(s): a block holds at least 1 frame",
            option="block_frames",
            value=block_frames,
        )
    check_stride(stride, window)
    stride = used_stride(window, stride)  # as used, the default resolved: a rerun compares it
    files, card = ModelFiles.read(model)
    channels = card.config.channels
    blocks, images, names = plan_blocks(input, image, channels, block_frames)
    run_store = names[0].startswith("raw/") and image is None
    read = ", ".join(
        f"{name} {describe(img)}".strip() for name, img in zip(names, images, strict=True)
    )
    img = images[0]
    check_channels(input, img.data.shape[img.axes.index("C")] if "C" in img.axes else 1, channels)
    dtype = np.dtype(np.float32) if float32 or run_store else images[0].data.dtype
    job = Job(
        str(input), str(output), files.sha256, backend, window, block_frames, dtype.name, stride
    )
    resumed = resumed_backend(job, len(blocks), overwrite, card.name)  # before workers start
    if resumed is not None and progress_group(output).attrs.get("complete"):
        done_line = f"{len(blocks)} block(s), 0 computed now: it was complete"
        return ChunkedResult(read, f"{resumed}, before", done_line, len(blocks), 0, {})
    events.status.emit(f"{given}: {read}: {sum(b.denoise for b in blocks)} block(s) to denoise")
    with cluster as (client, cluster_line):
        events.status.emit(cluster_line)
        loading_engine(events)
        first = next(b for b in blocks if b.denoise)
        frame_size = tuple(images[0].data.shape[-2:])
        probe = client.submit(
            resolve_backend, files, resumed or backend, min(window, first.total), frame_size
        )
        name, where, reason = probe.result()
        if resumed is not None and resumed != backend:
            reason = f"the backend this run began with; {backend} was asked for"
        engine_line = f"{where} ({reason})"
        show_engine(events, engine_line)
        job = replace(job, resolved=name)
        if resumed is None and output.exists():  # overwrite, now that the run can start
            shutil.rmtree(output) if output.is_dir() else output.unlink()
        if resumed is None:
            create_output(job, blocks, images[0], card, engine_line, run_store)
            done: set[int] = set()
        else:
            done = done_rows(output)
        todo = [row for row in range(len(blocks)) if row not in done]
        results = compute(client, job, blocks, todo, files, len(done), events)
    finish(output, blocks, run_store)
    return ChunkedResult(
        read,
        engine_line,
        f"{len(blocks)} block(s), {len(todo)} computed now",
        len(blocks),
        len(todo),
        _peaks(results),
    )


def _is_zarr(path: Path) -> bool:
    try:
        return image_format(path) == "zarr"
    except ImageFileError:
        return False


def _peaks(results: list[BlockResult]) -> dict[str, int]:
    peaks: dict[str, int] = {}
    for r in results:
        peaks[r.worker] = max(peaks.get(r.worker, 0), r.peak_rss)
    return peaks
