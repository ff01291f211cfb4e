"""The task a Dask worker runs: one block read, denoised (or copied) and written, then marked done.

The model travels as the bytes of its files, checked against the card's sha256 before loading
(``load_model``), never as a pickled object; each worker thread keeps its engine for the run.
"""

from __future__ import annotations

import getpass
import os
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from livedenoise.app.chunked import PROGRESS
from livedenoise.app.chunked.blocks import Block
from livedenoise.app.denoising import to_dtype
from livedenoise.inference import (
    Engine,
    InputError,
    denoised_frames,
    frame_list,
    load_engine,
    nonfinite_frames,
    window_span,
)
from livedenoise.model import ModelCard, ModelFileError, find_model, load_card, model_paths


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
            raise ModelFileError(
                f"{weights}: cannot read the model's weights ({err}).", path=weights
            ) from None

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
class BlockResult:
    """What a finished block reports: its denoised range and the worker's memory high-water mark."""

    low: float
    high: float
    peak_rss: int  # bytes, of the worker process so far
    worker: str  # host:pid


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
    target = zarr.open_array(Path(job.output) / block.target, mode="r+")
    kept = block.kept_axes()
    order = block.frame_axes()
    if block.denoise:
        t = min(job.window, block.total)
        engine = worker_engine(model, job.resolved, t, (source.shape[-2], source.shape[-1]))
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
                "new OUTPUT.",
                path=Path(job.input) / block.source,
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
    progress = zarr.open_array(Path(job.output) / PROGRESS, mode="r+")
    progress[row] = [1.0, block.channel, low, high]  # only now is the block done
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
