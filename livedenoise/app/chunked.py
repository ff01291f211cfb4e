"""Denoising OME-Zarr recordings larger than memory: a resumable Dask computation over blocks of frames.

The input (an NGFF image, or every raw image of a livedenoise run store) is cut into blocks of frames
along its stack axis (t; z for a z-stack), one block per channel for a single-channel model and per
z-plane of a time series. A task reads its block plus the halo its windows reach (``window_span``),
denoises it with the windows ``denoise_stack`` gives the whole recording, and writes one chunk per
frame into the output. A worker so holds one block at a time whatever the recording's size, and the
output equals the single-process one (the same function on the same windows).

Resumable: zarr writes every chunk file atomically (a temporary file renamed into place), and a block
is marked in the output's ``progress/blocks`` array only after all its frames are written. A killed
run leaves every marked block whole; the same command again computes only the unmarked ones.

Workers: a local ``dask.distributed`` cluster of processes on this machine (one engine each, the cores
shared out so they do not oversubscribe), or a running scheduler given by its address (dask-jobqueue
on HPC, a cloud cluster); the input and output must then be on storage every worker sees. The model
travels as the bytes of its files and each worker checks them against the card's sha256 before
loading (``load_model``), never as a pickled object.
"""

from __future__ import annotations

import getpass
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from livedenoise.app.denoising import (
    DenoiseError,
    check_channels,
    check_output,
    check_stride,
    loading_engine,
    output_exists,
    reported,
    show_engine,
    to_dtype,
)
from livedenoise.cpu import cpu_threads
from livedenoise.events import Events, Progress, events_or_new
from livedenoise.imageio import (
    Image,
    ImageFileError,
    create_zarr,
    describe,
    image_format,
    list_images,
    read_zarr,
)
from livedenoise.inference import (
    Engine,
    InputError,
    check_frame_size,
    denoised_frames,
    frame_list,
    load_engine,
    nonfinite_frames,
    used_stride,
    window_span,
)
from livedenoise.model import ModelCard, ModelFileError, find_model, load_card, model_paths
from livedenoise.storage.run_store import FRAME_CODEC, TIMINGS

PROGRESS = "progress/blocks"
"""Array in the output: one row per block, ``[done, channel or -1, low, high]``; NaN until done."""


@dataclass(frozen=True)
class ModelFiles:
    """A saved model as the bytes of its two files: what travels to workers."""

    name: str
    card: bytes
    weights: bytes
    sha256: str  # of the weights, as the card records it

    @classmethod
    def read(cls, model: str | Path) -> tuple[ModelFiles, ModelCard]:
        """The files of a model (NAME, NAME.safetensors or NAME.json) and its card, read once;
        ModelFileError if broken."""
        weights, card_path = model_paths(find_model(model))
        card = load_card(card_path)
        try:
            data = (card_path.read_bytes(), weights.read_bytes())
            return cls(weights.stem, *data, card.weights_sha256), card
        except OSError as err:
            raise ModelFileError(f"{weights}: cannot read the model's weights ({err}).") from None

    def on_disk(self) -> Path:
        """The model written once per worker machine under its hash; load_model re-checks the bytes."""
        user = getpass.getuser()  # one folder per user: another's would not be writable
        folder = Path(tempfile.gettempdir()) / f"livedenoise-models-{user}" / self.sha256[:16]
        base = folder / self.name
        folder.mkdir(parents=True, exist_ok=True)
        for suffix, data in ((".safetensors", self.weights), (".json", self.card)):
            path = base.with_suffix(suffix)
            if not path.is_file() or path.read_bytes() != data:
                partial = path.with_name(f"{path.name}.{os.getpid()}.partial")
                partial.write_bytes(data)
                os.replace(partial, path)
        return base


@dataclass(frozen=True)
class Job:
    """What every block of one run shares; recorded in the output so a rerun can tell it is the same."""

    input: str  # absolute paths: workers may run elsewhere
    output: str
    model_sha256: str
    backend: str  # as asked for
    window: int
    block_frames: int
    dtype: str  # of the denoised arrays
    stride: int | None = None  # frames between overlapping windows, as used (the default resolved)
    resolved: str = ""  # the backend ``backend`` stood for on a worker, kept for the whole run

    def key(self) -> dict[str, Any]:
        """What must match for a rerun to resume: everything the user chose but where the output
        is (an output moved or mounted elsewhere resumes)."""
        return {k: v for k, v in asdict(self).items() if k not in ("resolved", "output")}


@dataclass(frozen=True)
class Block:
    """One task: frames ``start..stop`` along ``axis`` of one array, at ``fixed`` indices elsewhere."""

    source: str  # array path in the input, e.g. "0" or "raw/p0/0"
    target: str  # array path in the output
    axes: str  # the array's axes in NGFF order, lower case, e.g. "tczyx"
    axis: str  # the stack axis, "t" or "z"
    fixed: tuple[tuple[str, int], ...]  # e.g. (("c", 0), ("z", 3))
    start: int
    stop: int
    total: int  # frames along the stack axis
    denoise: bool = True  # False: copied as it is (a run store's raw images)

    def selection(self, first: int, last: int) -> tuple[slice | int, ...]:
        fixed = dict(self.fixed)
        return tuple(
            slice(first, last) if a == self.axis else fixed.get(a, slice(None)) for a in self.axes
        )

    def kept_axes(self) -> str:
        """Axes of a selection: the array's, less the fixed ones."""
        return "".join(a for a in self.axes if a not in dict(self.fixed))

    def frame_axes(self) -> str:
        """The order frames take: stack axis, channel when left, y, x."""
        return "".join(a for a in (self.axis, "c", "y", "x") if a in self.kept_axes())

    @property
    def channel(self) -> int:
        return dict(self.fixed).get("c", -1)


@dataclass(frozen=True)
class BlockResult:
    """What a finished block reports: its denoised range and the worker's memory high-water mark."""

    low: float
    high: float
    peak_rss: int  # bytes, of the worker process so far
    worker: str  # host:pid


@dataclass(frozen=True)
class ChunkedResult:
    """One line each for people, and the counts a resumed run is judged by."""

    input: str
    engine: str
    output: str
    blocks: int
    computed: int  # blocks computed by this run; the rest were done before
    peak_rss: dict[str, int]  # worker -> bytes


# -- planning (client) -------------------------------------------------------------------------------


def plan_blocks(
    input: Path, image: str | None, channels: int, block_frames: int
) -> tuple[list[Block], list[Image], list[str]]:
    """The blocks of a run, the images they read (lazy) and those images' names in the input.

    A run store (no ``image``): every raw image, denoised along t (z where no image has more than one
    time point), plus copy blocks for the raw images themselves. Raises DenoiseError,
    ImageFileError or InputError (frames too small) for an input this path cannot take.
    """
    run_store = image is None and _is_run_store(input)
    names = [n for n in list_images(input) if n.startswith("raw/")] if run_store else [image]
    images = [read_zarr(input, name, lazy=True) for name in names]
    blocks: list[Block] = []
    if run_store:
        axis = "t" if max(img.data.shape[0] for img in images) > 1 else "z"
        for name, img in zip(names, images, strict=True):
            p = name.removeprefix("raw/")
            source = img.data.path  # type: ignore[attr-defined]  # the zarr.Array's path
            blocks += _blocks(img, source, f"denoised/{p}/0", axis, channels, block_frames, True)
            blocks += _blocks(img, source, source, axis, channels, block_frames, False)
        return blocks, images, [str(n) for n in names]
    img = images[0]
    sizes = dict(zip(img.axes, img.data.shape, strict=True))
    stacks = "".join(a.lower() for a in "TZ" if a in sizes and sizes[a] > 1)
    if not stacks:
        raise DenoiseError(
            f"{input}: a single frame ({describe(img)}); chunked denoising splits recordings "
            "along time or z",
            path=input,
            option="workers",
            hint="denoise it in one process, with neither workers nor a scheduler",
        )
    source = img.data.path  # type: ignore[attr-defined]
    # a time-lapse of z-stacks: each z-plane's time series, as a run store's images are denoised
    blocks = _blocks(img, source, "0", stacks[0], channels, block_frames, True)
    return blocks, images, [image or ""]


def _blocks(
    img: Image,
    source: str,
    target: str,
    axis: str,
    channels: int,
    block_frames: int,
    denoise: bool,
) -> list[Block]:
    axes = img.axes.lower()
    shape = dict(zip(axes, img.data.shape, strict=True))
    check_frame_size(shape["y"], shape["x"], f"{source}: ")
    looped = [a for a in axes if a not in (axis, "y", "x") and (a != "c" or channels == 1)]
    n = shape[axis]
    blocks = []
    for index in np.ndindex(*(shape[a] for a in looped)):
        fixed = tuple(zip(looped, map(int, index), strict=True))
        for start in range(0, n, block_frames):
            stop = min(start + block_frames, n)
            blocks.append(Block(source, target, axes, axis, fixed, start, stop, n, denoise))
    return blocks


def _is_run_store(path: Path) -> bool:
    try:
        return "livedenoise" in zarr.open_group(path, mode="r").attrs
    except (FileNotFoundError, KeyError, ValueError, TypeError):
        return False


# -- the task (worker) -------------------------------------------------------------------------------

_engines: dict[tuple[Any, ...], Engine] = {}
_engines_lock = threading.Lock()


def worker_engine(
    model: ModelFiles, backend: str, window: int, frame_size: tuple[int, int]
) -> Engine:
    """This worker thread's engine for the model, made once (an engine reuses its buffers)."""

    def key(name: str) -> tuple[Any, ...]:
        return (model.sha256, name, window, frame_size, threading.get_ident())

    with _engines_lock:
        if key(backend) not in _engines:
            engine = load_engine(model.on_disk(), backend, window=window, frame_size=frame_size)
            _engines[key(backend)] = _engines[key(engine.name)] = engine  # "auto" is a name too
        return _engines[key(backend)]


def resolve_backend(
    model: ModelFiles, backend: str, window: int, frame_size: tuple[int, int]
) -> tuple[str, str, str]:
    """What ``backend`` stands for on a worker, its description and why it was chosen; every block
    then uses it."""
    engine = worker_engine(model, backend, window, frame_size)
    return engine.name, engine.backend.describe(), engine.reason


def run_block(row: int, block: Block, job: Job, model: ModelFiles) -> BlockResult:
    """Read, denoise (or copy) and write one block, then mark row ``row`` of the progress done."""
    source = zarr.open_array(Path(job.input) / block.source, mode="r")
    output = zarr.open_group(job.output, mode="r+")
    target = output[block.target]
    kept = block.kept_axes()
    order = block.frame_axes()
    if block.denoise:
        t = min(job.window, block.total)
        engine = worker_engine(model, job.resolved, t, tuple(source.shape[-2:]))
        first, last = window_span(block.start, block.stop, block.total, t, job.stride)
        read = np.asarray(source[block.selection(first, last)])
        frames = np.transpose(read, [kept.index(a) for a in order])
        bad = nonfinite_frames(frames)
        if bad:
            at = "".join(f", {axis.upper()} = {i}" for axis, i in dict(block.fixed).items())
            raise InputError(
                f"frames {frame_list([first + i for i in bad])} (along {block.axis.upper()}{at}; "
                f"array {block.source} of the input) contain NaN or infinite values; replace them in "
                "the input and run the same command to resume, or denoise a corrected copy into a "
                "new OUTPUT."
            )
        denoised = denoised_frames(
            engine,
            frames,
            job.window,
            total=block.total,
            first=first,
            frame_range=(block.start, block.stop),
            stride=job.stride,
        )
        stack = to_dtype(np.stack(list(denoised)), np.dtype(job.dtype))
        data = np.transpose(stack, [order.index(a) for a in kept])
    else:
        data = np.asarray(source[block.selection(block.start, block.stop)])
    target[block.selection(block.start, block.stop)] = data
    finite = data[np.isfinite(data)] if data.dtype.kind == "f" else data
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (np.nan, np.nan)
    output[PROGRESS][row] = [1.0, block.channel, low, high]  # only now is the block done
    return BlockResult(low, high, _peak_rss(), f"{os.uname().nodename}:{os.getpid()}")


def _peak_rss() -> int:
    """This process's peak resident memory in bytes (Linux ``VmHWM``; 0 where there is none).

    Not ``ru_maxrss``: Linux keeps it across ``exec``, so a worker process would report its
    parent's peak (the client's, torch loaded) as its own.
    """
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return 0


# -- the run (client) --------------------------------------------------------------------------------


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
    settings = _Settings(image, backend, window, stride, float32, overwrite, workers, scheduler)
    return reported(
        events_or_new(events),
        Path(input),
        lambda events: _run(model, Path(input), Path(output), settings, block_frames, events),
    )


@dataclass(frozen=True)
class _Settings:
    """``denoise_chunked``'s options but the paths, the model and the block size."""

    image: str | None
    backend: str
    window: int
    stride: int | None
    float32: bool
    overwrite: bool
    workers: int
    scheduler: str | None


def _run(
    model: Path | str,
    given: Path,
    output: Path,
    settings: _Settings,
    block_frames: int,
    events: Events,
) -> ChunkedResult:
    image, backend, window = settings.image, settings.backend, settings.window
    stride, overwrite = settings.stride, settings.overwrite
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
        raise ImageFileError(f"{input}: no such file.")
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
    dtype = np.dtype(np.float32) if settings.float32 or run_store else images[0].data.dtype
    job = Job(
        str(input), str(output), files.sha256, backend, window, block_frames, dtype.name, stride
    )
    resumed = _resumed_backend(job, len(blocks), overwrite, card.name)  # before workers start
    if resumed is not None and _progress_group(output).attrs.get("complete"):
        done_line = f"{len(blocks)} block(s), 0 computed now: it was complete"
        return ChunkedResult(read, f"{resumed}, before", done_line, len(blocks), 0, {})
    events.status.emit(f"{given}: {read}: {sum(b.denoise for b in blocks)} block(s) to denoise")
    with _client(settings.workers, settings.scheduler) as (client, cluster_line):
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
            _create_output(job, blocks, images, names, card, engine_line, run_store)
            done: set[int] = set()
        else:
            done = _done_rows(output)
        todo = [row for row in range(len(blocks)) if row not in done]
        results = _compute(client, job, blocks, todo, files, len(done), events)
    _finish(output, blocks, run_store)
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


@contextmanager
def ctrl_c_held() -> Iterator[None]:
    """Hold a Ctrl-C (SIGINT) pressed inside the block and raise it as KeyboardInterrupt at its end.

    For work that must not stop half-done. Only the main thread receives signals; elsewhere (and
    for a block that raises on its own) nothing changes.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pressed: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda number, frame: pressed.append(number))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
    if pressed:
        raise KeyboardInterrupt


class _client:
    """A ``dask.distributed`` client: to the scheduler at an address, or to a new local cluster."""

    def __init__(self, workers: int, scheduler: str | None) -> None:
        self.workers, self.scheduler = workers, scheduler

    def __enter__(self) -> tuple[Any, str]:
        from distributed import Client, LocalCluster

        if self.scheduler is not None:
            try:
                self.client = Client(self.scheduler, timeout="20s")
            except OSError as err:
                raise DenoiseError(
                    f"cannot reach the Dask scheduler at {self.scheduler} ({err})",
                    option="scheduler",
                    value=self.scheduler,
                    hint="check the address (tcp://HOST:8786) and that the scheduler is running",
                ) from None
            self.cluster = None
            info = self.client.scheduler_info()
            count = len(info.get("workers", {}))
            if count == 0:
                try:
                    self.client.wait_for_workers(1, timeout=60)
                except TimeoutError:
                    self.client.close()
                    raise DenoiseError(
                        f"the Dask scheduler at {self.scheduler} has no workers, and none joined "
                        "in 60 s",
                        option="scheduler",
                        value=self.scheduler,
                        hint=f"start some (dask worker {self.scheduler}) on machines with "
                        "livedenoise installed, the same version as here",
                    ) from None
                count = len(self.client.scheduler_info().get("workers", {}))
            line = f"Dask scheduler {self.scheduler}: {count} worker(s); dashboard {self.client.dashboard_link}"
            return self.client, line
        if self.workers < 1:
            raise DenoiseError(
                f"{self.workers} workers: give at least 1 worker",
                option="workers",
                value=self.workers,
            )
        threads = max(1, cpu_threads() // self.workers)
        self.cluster = None
        try:
            # a cluster stopped half-started cannot be closed: its workers' state makes Dask's exit
            # hook fail with a traceback; Ctrl-C waits the second or two until it is up
            with ctrl_c_held():
                # one engine per worker process, the cores shared out: engines never compete
                self.cluster = LocalCluster(
                    n_workers=self.workers,
                    threads_per_worker=1,
                    processes=True,
                    dashboard_address=":0",  # a free port: a taken 8787 would only print a warning
                    env={"OMP_NUM_THREADS": str(threads)},
                    silence_logs=logging.CRITICAL,  # a failed block reaches the user as its error
                )
                self.client = Client(self.cluster)
        except KeyboardInterrupt:
            self.__exit__()
            raise
        line = f"local Dask cluster: {self.workers} worker process(es), {threads} engine thread(s) each"
        return self.client, line

    def __exit__(self, *exc: object) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def _compute(
    client: Any,
    job: Job,
    blocks: list[Block],
    todo: list[int],
    files: ModelFiles,
    done: int,
    events: Events,
) -> list[BlockResult]:
    """Run the blocks of ``todo``; the first error cancels the rest, is recorded and raised."""
    from distributed import KilledWorker, as_completed

    events.progress.emit(Progress(done, len(blocks), "blocks"))
    if not todo:
        return []
    model = client.scatter(files, broadcast=True, hash=False)
    futures = client.map(
        run_block, todo, [blocks[row] for row in todo], job=job, model=model, pure=False
    )
    results = []
    try:
        for future in as_completed(futures):
            results.append(future.result())
            done += 1
            events.progress.emit(Progress(done, len(blocks), "blocks"))
    except BaseException as err:
        client.cancel(futures)
        _progress_group(Path(job.output)).attrs["error"] = f"{type(err).__name__}: {err}"
        if isinstance(err, KilledWorker):
            raise DenoiseError(
                f"a Dask worker died while denoising ({err}), most often for lack of memory",
                path=job.output,
                option="workers",
                hint="finished blocks are kept: run again with fewer workers to resume",
            ) from None
        raise
    return results


def _peaks(results: list[BlockResult]) -> dict[str, int]:
    peaks: dict[str, int] = {}
    for r in results:
        peaks[r.worker] = max(peaks.get(r.worker, 0), r.peak_rss)
    return peaks


# -- the output --------------------------------------------------------------------------------------


def _progress_group(output: Path) -> zarr.Group:
    return zarr.open_group(output / PROGRESS.split("/")[0], mode="r+")


_CHOICE = {
    "input": "INPUT",
    "dtype": "output dtype (float32)",
}  # Job.key's fields as people say them


def _resumed_backend(job: Job, blocks: int, overwrite: bool, model: str) -> str | None:
    """The backend an unfinished run of the same job at ``job.output`` used, or None for a new run.

    With ``overwrite`` what is there is not looked at (it is removed once the run can start). Raises
    DenoiseError for an output that is not such a run.
    """
    output = Path(job.output)
    if not output.exists() or overwrite:
        return None
    try:
        found = _progress_group(output).attrs.asdict()
        backend = str(found["engine"]["backend"])
    except (FileNotFoundError, KeyError, ValueError, TypeError):
        raise output_exists(output) from None
    old = {**found.get("job", {}), "blocks": found.get("blocks")}
    new = {**job.key(), "blocks": blocks}
    if new["backend"] == backend:  # naming the engine that "auto" stood for is the same run
        new["backend"] = old.get("backend")
    differ = {k: v for k, v in new.items() if old.get(k) != v}
    if len(differ) > 1:  # the block count follows from the others
        differ.pop("blocks", None)

    def said(key: str, value: object) -> str:
        if key == "model_sha256":  # named as the user chose it, not by its hash
            return f"model {found.get('model')!r} (now {model!r}; the weights differ)"
        if key == "stride" and old.get(key) is None:  # recorded before strides were
            return f"one window per frame (now stride {value})"
        return f"{_CHOICE.get(key, key)} {old.get(key)!r} (now {value!r})"

    changed = [said(k, v) for k, v in differ.items()]
    if changed and found.get("complete"):
        raise DenoiseError(
            f"{output} is a finished chunked run made with {'; '.join(changed)}",
            path=output,
            option="overwrite",
            hint="write to another OUTPUT, or overwrite replaces it",
        )
    if changed:
        raise DenoiseError(
            f"{output} is an unfinished chunked run made with {'; '.join(changed)}",
            path=output,
            option="overwrite",
            hint="run again with those settings to resume it, or overwrite starts afresh",
        )
    return backend


def _create_output(
    job: Job,
    blocks: list[Block],
    images: list[Image],
    names: list[str],
    card: ModelCard,
    engine_line: str,
    run_store: bool,
) -> None:
    """The empty output: an image like the input's, or a run store like it; and its progress."""
    output = Path(job.output)
    if run_store:
        _create_run_store(job, images, names, card, engine_line, blocks[0].axis)
    else:
        create_zarr(output, images[0], np.dtype(job.dtype), (0.0, 1.0))
    group = zarr.open_group(output, mode="r+").create_group(PROGRESS.split("/")[0])
    group.attrs.update(
        job=job.key(),
        model=card.name,
        blocks=len(blocks),
        engine={"backend": job.resolved, "describe": engine_line},
        complete=False,
    )
    group.create_array(
        PROGRESS.split("/")[1],
        shape=(len(blocks), 4),
        chunks=(1, 4),
        dtype="float64",
        fill_value=np.nan,
    )


def _done_rows(output: Path) -> set[int]:
    """Rows marked done (zarr writes each row's chunk atomically: a row is there whole or not)."""
    array = zarr.open_array(output / PROGRESS, mode="r")
    return {int(r) for r in np.flatnonzero(np.asarray(array[:, 0]) == 1.0)}


def _create_run_store(
    job: Job, images: list[Image], names: list[str], card: ModelCard, engine_line: str, axis: str
) -> None:
    """A new run store laid out like the input: metadata, timings and empty raw/denoised arrays."""
    input, output = Path(job.input), Path(job.output)
    source = zarr.open_group(input, mode="r")
    root = zarr.open_group(output, mode="w-", zarr_format=3)
    meta = {
        k: v for k, v in source.attrs["livedenoise"].items() if k not in ("summary", "complete")
    }
    meta.update(
        model=card.model_dump(mode="json"),
        backend=engine_line,
        window={"size": job.window, "axis": axis},
        denoised_from=str(input),
        complete=False,
    )
    root.attrs.update({"ome": source.attrs["ome"], "livedenoise": meta})
    root.create_group("OME").attrs.update(source["OME"].attrs.asdict())
    xml = input / "OME" / "METADATA.ome.xml"
    if xml.is_file():
        shutil.copyfile(xml, output / "OME" / "METADATA.ome.xml")
    timing = root.create_group("timing")
    for name in TIMINGS:  # acquisition times are the recording's; denoising here was not live
        values = np.asarray(source[f"timing/{name}"])
        kept = values if name == "acquired_s" else np.full(values.shape, np.nan)
        timing.create_array(name, data=kept, chunks=kept.shape)
    for name, img in zip(names, images, strict=True):
        p = name.removeprefix("raw/")
        shape = tuple(img.data.shape)
        frame = (1,) * (len(shape) - 2) + shape[-2:]
        for kind, dtype, fill in (("raw", img.data.dtype, 0), ("denoised", np.float32, np.nan)):
            like = f"{kind}/{p}" if f"{kind}/{p}" in source else name
            group = root.create_group(f"{kind}/{p}")
            group.attrs.update(source[like].attrs.asdict())
            group.create_array(
                "0",
                shape=shape,
                dtype=dtype,
                chunks=frame,
                fill_value=fill,
                compressors=FRAME_CODEC,
                dimension_names=list(img.axes.lower()),
            )


def _finish(output: Path, blocks: list[Block], run_store: bool) -> None:
    """Display windows from what the blocks wrote, and the output marked complete."""
    root = zarr.open_group(output, mode="r+")
    rows = np.asarray(root[PROGRESS])
    targets = sorted({b.target for b in blocks if b.denoise})
    for target in targets:
        mine = [r for r, b in enumerate(blocks) if b.target == target]
        group = root[target.rpartition("/")[0]] if "/" in target else root
        ome = group.attrs["ome"]
        for c, channel in enumerate(ome.get("omero", {}).get("channels", [])):
            sel = [r for r in mine if rows[r, 1] in (c, -1) and np.isfinite(rows[r, 2])]
            if sel:
                lo, hi = float(rows[sel, 2].min()), float(rows[sel, 3].max())
                channel["window"].update(start=lo, end=hi, min=lo, max=hi)
        group.attrs["ome"] = ome
    progress = _progress_group(output)
    progress.attrs.update(complete=True, error=None)  # an earlier, resumed run's error is history
    if run_store:
        meta = dict(root.attrs["livedenoise"])
        frames = sum(b.stop - b.start for b in blocks if b.denoise)
        meta.update(summary={"frames": frames, "denoised": frames}, complete=True)
        root.attrs["livedenoise"] = meta
