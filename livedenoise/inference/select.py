"""Building an engine from a saved model and a backend name, and what ``auto`` picks and why."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from livedenoise.backends import BACKENDS
from livedenoise.cpu import cpu_threads
from livedenoise.inference.base import Backend, BackendError, Engine
from livedenoise.inference.cache import cached_onnx, default_cache_dir
from livedenoise.inference.cuda_engine import CudaBackend
from livedenoise.inference.gpu import derive_profile, value_bytes
from livedenoise.inference.onnx_engine import OnnxRuntimeBackend
from livedenoise.inference.tensorrt_engine import TensorRTBackend, require_tensorrt
from livedenoise.inference.torch_engine import TorchBackend
from livedenoise.model import CNNT, ModelCard, load_model

log = logging.getLogger(__name__)

PROBE_SIZE = 128  # side of the window auto times each backend on


@dataclass
class _Recipe:
    """What a backend needs besides its name: the model, the live shape and the caller's options."""

    net: CNNT
    card: ModelCard
    onnx: Path | None
    cache_dir: Path
    window: int
    frame_size: tuple[int, int]
    precision: str
    device: str
    compile: bool
    memory_budget: int | None

    def onnx_path(self) -> Path:
        if self.onnx is None:
            self.onnx = cached_onnx(self.net, self.card, self.cache_dir)
        return self.onnx

    def make(self, name: str) -> Backend:
        if name == "torch":
            threads = cpu_threads() if self.device == "cpu" else None  # why: livedenoise.cpu
            return TorchBackend(self.net, self.device, self.compile, self.memory_budget, threads)
        if name == "cuda":
            return CudaBackend(
                self.net, self.precision, self.compile, memory_budget=self.memory_budget
            )
        if name == "onnxruntime":
            return OnnxRuntimeBackend(
                self.onnx_path(),
                self.card.config,
                self.cache_dir,
                cpu_only=self.device == "cpu",
                memory_budget=self.memory_budget,
            )
        if name == "tensorrt":
            require_tensorrt()  # before asking CUDA for the memory the profile is sized to
            budget = self.memory_budget or torch.cuda.mem_get_info()[1] // 2
            profile = derive_profile(
                self.card.config,
                self.frame_size,
                self.window,
                budget,
                bytes_per_value=value_bytes(self.precision),
            )
            return TensorRTBackend(
                self.onnx_path(), self.card, profile, self.cache_dir, self.precision
            )
        raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}.")


def load_engine(
    model: str | Path,
    backend: str = "auto",
    *,
    window: int = 8,
    frame_size: tuple[int, int] = (512, 512),
    onnx: Path | None = None,
    cache_dir: Path | None = None,
    precision: str = "fp16",
    device: str | None = None,
    compile: bool = False,
    memory_budget: int | None = None,
) -> Engine:
    """An engine for a saved model (NAME, NAME.safetensors or NAME.json) on ``backend``.

    ``window`` and ``frame_size`` describe the live acquisition: TensorRT builds its profile for them and
    ``auto`` times backends on a window of that length. ``onnx`` is an existing export of this model
    (otherwise one is exported once into the cache); ``precision`` is TensorRT's and the CUDA engine's
    (fp16, bf16, fp32); ``device`` is the torch backend's (default: CUDA when present; it runs float32);
    ``compile`` turns on ``torch.compile`` (torch and CUDA engines);
    ``memory_budget`` (bytes) bounds a call's activations, beyond which frames are tiled.
    Raises ``ModelFileError`` for a broken model and ``BackendError`` for a backend that cannot run.
    """
    net, card = load_model(model)
    recipe = _Recipe(
        net,
        card,
        Path(onnx) if onnx else None,
        Path(cache_dir) if cache_dir else default_cache_dir(),
        window,
        frame_size,
        precision,
        device or ("cuda" if torch.cuda.is_available() else "cpu"),
        compile,
        memory_budget,
    )
    if backend != "auto":
        return Engine(recipe.make(backend), card, reason=f"{backend} was asked for")
    engine = _auto(recipe)
    log.info("auto picked %s", engine.describe())
    return engine


def _auto(recipe: _Recipe) -> Engine:
    """TensorRT where it works, else the CUDA engine where it works, else the faster CPU backend.

    A GPU engine must also denoise one probe window; one that fails falls through to the next, and
    ``Engine.reason`` says why each earlier choice could not run.
    """
    notes: list[str] = []
    gpu_engines = (
        ("tensorrt", "TensorRT is the fastest engine on an NVIDIA GPU"),
        ("cuda", "the CUDA engine is the fastest on an NVIDIA GPU without TensorRT"),
    )
    for name, why in gpu_engines:
        try:
            engine = Engine(recipe.make(name), recipe.card)
            seconds = _probe_seconds(engine, recipe)
        # torch's CUDA and torch.compile errors are RuntimeErrors
        except (BackendError, RuntimeError) as err:
            notes.append(str(err).rstrip("."))
            continue
        engine.reason = f"{why}: {seconds * 1e3:.0f} ms per {_probe_text(recipe)}"
        engine.reason += "".join(f"; {note}" for note in notes)
        return engine
    timed: list[tuple[float, Engine]] = []
    for name in ("onnxruntime", "torch"):
        try:
            engine = Engine(recipe.make(name), recipe.card)
            timed.append((_probe_seconds(engine, recipe), engine))
        except (BackendError, RuntimeError) as err:
            notes.append(str(err).rstrip("."))
    if not timed:
        raise BackendError("no backend can run here: " + "; ".join(notes))
    timed.sort(key=lambda pair: pair[0])
    best = timed[0][1]
    versus = ", ".join(f"{e.name} {s * 1e3:.0f} ms" for s, e in timed)
    best.reason = f"fastest that works here: {versus} per {_probe_text(recipe)}; {'; '.join(notes)}"
    return best


def _probe_text(recipe: _Recipe) -> str:
    return f"{recipe.window}-frame {PROBE_SIZE}x{PROBE_SIZE} window"


def _probe_seconds(engine: Engine, recipe: _Recipe, repeats: int = 1) -> float:
    """Best time of ``repeats`` calls on a window of the live length, after a warm-up call."""
    h, w = (min(PROBE_SIZE, n) for n in recipe.frame_size)
    window = np.random.default_rng(0).random((recipe.window, engine.channels, h, w))
    engine.denoise(window[None])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        engine.denoise(window[None])
        best = min(best, time.perf_counter() - start)
    return best
