"""torch backend: the reference implementation, eager on the CPU or a CUDA GPU, optionally compiled."""

from __future__ import annotations

import copy

import numpy as np
import torch
from pydantic import Field

from livedenoise.cpu import cpu_threads, threads_text
from livedenoise.inference.base import (
    Backend,
    BackendError,
    BackendOptions,
    Engine,
    EngineRequest,
    Limits,
    Shape5,
)
from livedenoise.inference.memory import available_memory, max_side
from livedenoise.model import CNNT, ModelCard, Normalization


def default_device() -> str:
    """Where torch runs unless told: the CUDA GPU when there is one, else the CPU."""
    return "cuda" if torch.cuda.is_available() else "cpu"


class TorchOptions(BackendOptions):
    """``device``: a torch device (default ``default_device``); ``compile``: ``torch.compile``;
    ``threads``: torch's CPU threads (default: ``livedenoise.cpu``'s count)."""

    device: str | None = None
    compile: bool = False
    threads: int | None = Field(default=None, ge=1)

    def build(self, request: EngineRequest) -> TorchBackend:
        device = self.device or default_device()
        threads = (self.threads or cpu_threads()) if device == "cpu" else None
        return TorchBackend(request.net, device, self.compile, request.memory_budget, threads)


class TorchBackend(Backend):
    """Runs the CNNT module itself in float32.

    ``compile=True`` wraps it in ``torch.compile``: on the 2-core development CPU it cut 15-30 % off a
    call after 30-80 s of compiling per new shape, so it is off by default and meant for long runs of
    one shape. ``threads``: on the CPU, torch's threads for the whole process (``load_engine`` gives
    ``livedenoise.cpu``'s count); None leaves them as they are (a training loop has set them).
    """

    name = "torch"
    Options = TorchOptions

    def __init__(
        self,
        model: CNNT,
        device: str | torch.device = "cpu",
        compile: bool = False,
        memory_budget: int | None = None,
        threads: int | None = None,
    ) -> None:
        super().__init__()
        self.device = torch.device(device)
        if self.device.type == "cpu" and threads is not None:
            torch.set_num_threads(threads)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise BackendError(
                "torch was asked for CUDA but sees no CUDA GPU; use device='cpu'.",
                option="device",
                value=str(device),
            )
        if self.device.type != "cpu":  # leave the caller's module on the CPU (ONNX export needs it)
            model = copy.deepcopy(model)
        self.model = model.eval().to(self.device)
        self.cfg = model.cfg
        self.compiled = compile
        self._fn = torch.compile(self.model, dynamic=False) if compile else self.model
        if memory_budget is None:
            free = (
                torch.cuda.mem_get_info(self.device)[0]
                if self.device.type == "cuda"
                else available_memory()
            )
            memory_budget = free // 2
        self.memory_budget = memory_budget
        self._outputs: dict[Shape5, torch.Tensor] = {}

    def _allocate(self, shape: Shape5) -> np.ndarray:
        pinned = self.device.type == "cuda"
        return torch.empty(shape, dtype=torch.float32, pin_memory=pinned).numpy()

    def run(self, x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            y = self._fn(torch.from_numpy(x).to(self.device, non_blocking=True))
            if self.device.type == "cpu":
                return y.numpy()
            out = self._outputs.get(x.shape)
            if out is None:
                out = self._outputs[x.shape] = torch.empty(x.shape, pin_memory=True)
            out.copy_(y, non_blocking=True)
            torch.cuda.current_stream(self.device).synchronize()
            return out.numpy()

    def limits(self, frames: int) -> Limits:
        side = max_side(self.cfg, frames, self.memory_budget)
        # a CPU is compute-bound: batching windows saves nothing and multiplies memory
        return Limits(
            max_batch=1 if self.device.type == "cpu" else None,
            max_size=(side, side),
        )

    def describe(self) -> str:
        if self.device.type == "cuda":
            where = torch.cuda.get_device_name(self.device)
        else:
            where = f"CPU, {threads_text(torch.get_num_threads())}"
        mode = "compiled" if self.compiled else "eager"
        return f"torch {torch.__version__} {mode} float32 on {where}"


def in_memory_engine(model: CNNT, normalization: Normalization, tile: int | None = None) -> Engine:
    """An engine over a model still in memory (training, fine-tuning), on the device its weights are on.

    It denoises exactly as the model saved with this normalisation and ``tile`` (the card's training
    tile, frames larger than it are tiled) and loaded on the torch backend would.
    """
    card = ModelCard(name="in-memory", config=model.cfg, normalization=normalization, tile=tile)
    device = next(model.parameters()).device
    return Engine(TorchBackend(model, device), card, reason="a model in memory")
