"""Inference engines: one interface over TensorRT, the torch CUDA engine, ONNX Runtime and torch, tiled.

engine = load_engine("backbone-small", "auto", window=8, frame_size=(512, 512))
engine.warmup(8, 512, 512)
denoised = engine.denoise(frames)  # [T, H, W] of any int/float dtype -> float32, same units
stack = denoise_stack(engine, recording, window=8)  # [N, H, W]: each frame in the window around it
"""

from livedenoise.inference.base import (
    BackendError,
    Engine,
    InputError,
    Limits,
    check_finite,
    check_frame_size,
    frame_list,
    nonfinite_frames,
)
from livedenoise.inference.select import BACKENDS, load_engine
from livedenoise.inference.stack import (
    denoise_stack,
    denoised_frames,
    used_stride,
    window_span,
)
from livedenoise.inference.tiling import Tiling, choose_tiling, receptive_radius, run_tiled
from livedenoise.inference.torch_engine import in_memory_engine

__all__ = [
    "BACKENDS",
    "BackendError",
    "Engine",
    "InputError",
    "Limits",
    "Tiling",
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
    "run_tiled",
    "used_stride",
    "window_span",
]
