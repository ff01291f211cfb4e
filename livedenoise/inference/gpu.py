"""What the two NVIDIA GPU backends (TensorRT and the torch CUDA engine) share.

The GPU they run on, the precisions they offer, the shapes they plan for, and how they execute: on a CUDA
stream of their own, from pinned host staging into device buffers allocated once per input shape, and,
once a shape has run, as a replayed CUDA graph of copy-in, inference and copy-out, so a live frame costs
one graph launch. torch owns the CUDA context; TensorRT only gets the addresses of torch's buffers.

This module imports without a GPU, so plans and precision checks can be computed (and tested) anywhere.
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from dataclasses import dataclass

import numpy as np
import torch

from livedenoise.inference.base import Backend, BackendError, Shape5
from livedenoise.inference.memory import max_side
from livedenoise.model import CNNTConfig

log = logging.getLogger(__name__)

NO_GPU = "no NVIDIA GPU"
PRECISIONS = ("fp16", "bf16", "fp32")


def require_gpu(what: str) -> None:
    """Raise a BackendError saying ``what`` cannot run here when torch sees no CUDA GPU."""
    if not torch.cuda.is_available():
        raise BackendError(f"{what} cannot run here: {NO_GPU}.")


def value_bytes(precision: str) -> int:
    """Bytes of one activation value at ``precision``; raises BackendError for an unknown one."""
    if precision not in PRECISIONS:
        raise BackendError(
            f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}.",
            option="precision",
            value=precision,
        )
    return 4 if precision == "fp32" else 2


def check_precision(precision: str) -> None:
    """Raise a BackendError for an unknown precision, or BF16 on a GPU older than Ampere."""
    value_bytes(precision)
    if precision == "bf16" and torch.cuda.get_device_capability() < (8, 0):
        raise BackendError(
            "BF16 needs an Ampere or newer GPU (compute capability 8.0); use fp16.",
            option="precision",
            value=precision,
        )


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str

    @classmethod
    def current(cls) -> Gpu:
        major, minor = torch.cuda.get_device_capability()
        return cls(torch.cuda.get_device_name(), f"{major}.{minor}")


@dataclass(frozen=True)
class Profile:
    """The shapes a GPU engine is planned for: min, opt and max ``[B, T, C, H, W]`` of one call."""

    min: Shape5
    opt: Shape5
    max: Shape5


def derive_profile(
    cfg: CNNTConfig,
    frame_size: tuple[int, int],
    window: int,
    memory_budget: int,
    batch: int = 1,
    bytes_per_value: int = 2,
) -> Profile:
    """The profile for an acquisition of ``frame_size`` frames denoised in windows of ``window``.

    Tuned (opt) for exactly that window. The max is the frame rounded up to the U-net stride when such a
    window fits ``memory_budget`` (bytes); otherwise it is the largest square tile that fits, and the
    engine tiles frames. Smaller frames and shorter windows down to one pixel and one frame still run.
    """
    c = cfg.channels
    h, w = (-(-n // cfg.stride) * cfg.stride for n in frame_size)
    fit = max_side(cfg, window * batch, memory_budget, bytes_per_value)
    if max(h, w) <= fit:
        opt: Shape5 = (1, window, c, *frame_size)
        largest: Shape5 = (batch, window, c, h, w)
    else:
        tile = (min(h, fit), min(w, fit))
        opt, largest = (1, window, c, *tile), (batch, window, c, *tile)
    return Profile(min=(1, 1, c, 1, 1), opt=opt, max=largest)


@dataclass
class Staging:
    """Pinned host and device buffers for one input shape, and its captured graph."""

    host_in: torch.Tensor
    device_in: torch.Tensor
    device_out: torch.Tensor
    host_out: torch.Tensor
    graph: torch.cuda.CUDAGraph | None = None


class CudaGraphBackend(Backend):
    """A backend that computes ``device_in -> device_out`` on its own stream, replayed as CUDA graphs.

    Subclasses implement ``_compute`` and may override ``_prepare`` (set-up before an eager run of a
    shape). Graphs of every shape share one memory pool: calls never overlap (each ends synchronised)
    and nothing in the pool outlives a call, so the pool is as large as the largest shape needs.
    """

    def __init__(self, cuda_graphs: bool = True) -> None:
        super().__init__()
        self.cuda_graphs = cuda_graphs
        self.stream = torch.cuda.Stream()
        self.stream.wait_stream(torch.cuda.current_stream())  # weights uploaded on the default one
        self._staging: dict[Shape5, Staging] = {}
        self._pool = torch.cuda.graph_pool_handle()

    def _allocate(self, shape: Shape5) -> np.ndarray:
        def empty(device: str = "cpu") -> torch.Tensor:
            """float32 of this shape on ``device``; host buffers pinned, for asynchronous copies."""
            pinned = device == "cpu"
            return torch.empty(shape, dtype=torch.float32, device=device, pin_memory=pinned)

        s = Staging(
            host_in=empty(),
            device_in=empty("cuda"),
            device_out=empty("cuda"),
            host_out=empty(),
        )
        self._staging[shape] = s
        return s.host_in.numpy()

    @abstractmethod
    def _compute(self, s: Staging) -> None:
        """Enqueue the network from ``s.device_in`` into ``s.device_out`` on the current stream."""

    def _prepare(self, s: Staging) -> None:
        """Set-up before an eager run of ``s``'s shape (none by default)."""

    def _enqueue(self, s: Staging) -> None:
        with torch.cuda.stream(self.stream):
            s.device_in.copy_(s.host_in, non_blocking=True)
            self._compute(s)
            s.host_out.copy_(s.device_out, non_blocking=True)

    def _capture(self, s: Staging) -> None:
        graph = torch.cuda.CUDAGraph()
        try:
            # thread-local: other threads (a viewer, a writer) may use CUDA while this one captures
            with torch.cuda.graph(
                graph, pool=self._pool, stream=self.stream, capture_error_mode="thread_local"
            ):
                self._enqueue(s)
        except RuntimeError as err:
            log.warning("CUDA graph capture failed (%s); running %s without graphs", err, self.name)
            self.cuda_graphs = False
            return
        s.graph = graph

    def run(self, x: np.ndarray) -> np.ndarray:
        s = self._staging[x.shape]
        if s.graph is not None:
            with torch.cuda.stream(self.stream):
                s.graph.replay()
        else:
            self._prepare(s)
            self._enqueue(s)  # the first run of a shape sets everything up outside any capture
            if self.cuda_graphs:
                self._capture(s)
        self.stream.synchronize()
        return s.host_out.numpy()
