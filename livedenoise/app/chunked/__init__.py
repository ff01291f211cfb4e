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

Workers: a local ``dask.distributed`` cluster of processes on this machine, or a running scheduler
given by its address; the input and output must then be on storage every worker sees.

By job: ``blocks`` (the block plan), ``task`` (what a worker runs, its engine and the model's bytes),
``cluster`` (starting or reaching the cluster, Ctrl-C, gathering the tasks), ``output`` (the
output's progress, resuming, finishing) and ``run`` (``denoise_chunked``, start to end).

The names below load on first use (PEP 562), so that a reader telling a chunked output by its
``PROGRESS`` array imports neither the engines nor Dask's cluster.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from livedenoise.lazy import lazy_names

if TYPE_CHECKING:
    from livedenoise.app.chunked.blocks import Block, plan_blocks
    from livedenoise.app.chunked.cluster import ctrl_c_held
    from livedenoise.app.chunked.run import ChunkedResult, denoise_chunked
    from livedenoise.app.chunked.task import BlockResult, Job, ModelFiles, run_block

PROGRESS = "progress/blocks"
"""Array in the output: one row per block, ``[done, channel or -1, low, high]``; NaN until done."""

# each public name and the module that defines it
_HOMES = {
    "Block": ".blocks",
    "plan_blocks": ".blocks",
    "ctrl_c_held": ".cluster",
    "ChunkedResult": ".run",
    "denoise_chunked": ".run",
    "BlockResult": ".task",
    "Job": ".task",
    "ModelFiles": ".task",
    "run_block": ".task",
}

__all__ = [
    "PROGRESS",
    "Block",
    "BlockResult",
    "ChunkedResult",
    "Job",
    "ModelFiles",
    "ctrl_c_held",
    "denoise_chunked",
    "plan_blocks",
    "run_block",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES)
