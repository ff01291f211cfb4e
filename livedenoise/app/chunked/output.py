"""The output of a chunked run: created empty, its progress kept block by block, resumed, finished.

A block is marked in ``progress/blocks`` only after all its frames are written, and zarr writes every
chunk atomically, so a killed run leaves every marked block whole and the same job resumes it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import zarr

from livedenoise.app.chunked import PROGRESS
from livedenoise.app.chunked.blocks import Block
from livedenoise.app.chunked.task import Job
from livedenoise.app.denoising import DenoiseError, output_exists
from livedenoise.imageio import Image, create_zarr
from livedenoise.model import ModelCard
from livedenoise.storage import create_store_like, mark_complete
from livedenoise.storage.ngff import json_object, set_windows

_CHOICE = {
    "input": "INPUT",
    "dtype": "output dtype (float32)",
}  # Job.key's fields as people say them


def progress_group(output: Path) -> zarr.Group:
    """The group of the output's progress: the job, the engine, ``complete`` and ``error``."""
    return zarr.open_group(output / PROGRESS.split("/")[0], mode="r+")


def resumed_backend(job: Job, blocks: int, overwrite: bool, model: str) -> str | None:
    """The backend an unfinished run of the same job at ``job.output`` used, or None for a new run.

    With ``overwrite`` what is there is not looked at (it is removed once the run can start). Raises
    DenoiseError for an output that is not such a run.
    """
    output = Path(job.output)
    if not output.exists() or overwrite:
        return None
    try:
        found = progress_group(output).attrs.asdict()
        backend = str(json_object(found["engine"])["backend"])
    except (OSError, KeyError, ValueError, TypeError):
        raise output_exists(output) from None
    old = {**json_object(found.get("job", {})), "blocks": found.get("blocks")}
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

    changed = "; ".join(said(k, v) for k, v in differ.items())
    if changed and found.get("complete"):
        raise DenoiseError(
            f"{output} is a finished chunked run made with {changed}",
            path=output,
            option="overwrite",
            hint="write to another OUTPUT, or overwrite replaces it",
        )
    if changed:
        raise DenoiseError(
            f"{output} is an unfinished chunked run made with {changed}",
            path=output,
            option="overwrite",
            hint="run again with those settings to resume it, or overwrite starts afresh",
        )
    return backend


def create_output(
    job: Job, blocks: list[Block], image: Image, card: ModelCard, engine_line: str, run_store: bool
) -> None:
    """The empty output: an image like the input's ``image``, or a run store like the input; and
    its progress, every block to do."""
    output = Path(job.output)
    if run_store:
        attrs = {
            "model": card.model_dump(mode="json"),
            "backend": engine_line,
            "window": {"size": job.window, "axis": blocks[0].axis},
            "denoised_from": job.input,
        }
        create_store_like(Path(job.input), output, attrs)
    else:
        create_zarr(output, image, np.dtype(job.dtype), (0.0, 1.0))
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


def done_rows(output: Path) -> set[int]:
    """Rows marked done (zarr writes each row's chunk atomically: a row is there whole or not)."""
    array = zarr.open_array(output / PROGRESS, mode="r")
    return {int(r) for r in np.flatnonzero(np.asarray(array[:, 0]) == 1.0)}


def record_error(output: Path, error: BaseException) -> None:
    """Keep why the run stopped in its progress, for whoever looks at the output later."""
    progress_group(output).attrs["error"] = f"{type(error).__name__}: {error}"


def finish(output: Path, blocks: list[Block], run_store: bool) -> None:
    """Display windows from what the blocks wrote, and the output marked complete."""
    rows = np.asarray(zarr.open_array(output / PROGRESS, mode="r"))
    for target in sorted({b.target for b in blocks if b.denoise}):
        mine = [r for r, b in enumerate(blocks) if b.target == target]
        group = zarr.open_group(output / target.rpartition("/")[0], mode="r+")
        ome = dict(json_object(group.attrs["ome"]))
        channels = json_object(ome.get("omero", {})).get("channels", [])
        windows = {}
        for c in range(len(channels)):
            sel = [r for r in mine if rows[r, 1] in (c, -1) and np.isfinite(rows[r, 2])]
            if sel:
                windows[c] = (float(rows[sel, 2].min()), float(rows[sel, 3].max()))
        set_windows(ome, windows)
        group.attrs["ome"] = ome
    # an earlier, resumed run's error is history
    progress_group(output).attrs.update(complete=True, error=None)
    if run_store:
        frames = sum(b.stop - b.start for b in blocks if b.denoise)
        mark_complete(output, {"frames": frames, "denoised": frames})
