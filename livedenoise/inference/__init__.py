"""Inference engines: one interface over TensorRT, the torch CUDA engine, ONNX Runtime and torch, tiled.

engine = load_engine("backbone-small", "auto", window=8, frame_size=(512, 512))
engine.warmup(8, 512, 512)
denoised = engine.denoise(frames)  # [T, H, W] of any int/float dtype -> float32, same units
stack = denoise_stack(engine, recording, window=8)  # [N, H, W]: each frame in the window around it

Backends are registered by name in ``livedenoise.backends``; each has its own options model.
"""

from livedenoise.backends import backend_names, register_backend
from livedenoise.inference.base import (
    Backend,
    BackendError,
    BackendOptions,
    Engine,
    EngineRequest,
    InputError,
    Limits,
    check_finite,
    check_frame_size,
    frame_list,
    nonfinite_frames,
)
from livedenoise.inference.select import backend_class, load_engine
from livedenoise.inference.stack import (
    denoise_stack,
    denoised_frames,
    used_stride,
    window_span,
)
from livedenoise.inference.tiling import Tiling, choose_tiling, receptive_radius, run_tiled
from livedenoise.inference.torch_engine import in_memory_engine

__all__ = [
    "Backend",
    "BackendError",
    "BackendOptions",
    "Engine",
    "EngineRequest",
    "InputError",
    "Limits",
    "Tiling",
    "backend_class",
    "backend_names",
    "check_finite",
    "check_frame_size",
    "choose_tiling",
    "denoise_stack",
    "denoised_frames",
    "frame_list",
    "in_memory_engine",
    "load_engine",
    "nonfinite_frames",
    "receptive_radius",
    "register_backend",
    "run_tiled",
    "used_stride",
    "window_span",
]
