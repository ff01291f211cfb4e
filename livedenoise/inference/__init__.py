"""Inference engines: one interface over TensorRT, ONNX Runtime and torch, with seamless tiling.

engine = load_engine("backbone-small", "auto", window=8, frame_size=(512, 512))
engine.warmup(8, 512, 512)
denoised = engine.denoise(frames)  # [T, H, W] of any int/float dtype -> float32, same units
"""

from livedenoise.inference.base import BackendError, Engine, InputError, Limits
from livedenoise.inference.select import BACKENDS, load_engine
from livedenoise.inference.tiling import Tiling, choose_tiling, receptive_radius, run_tiled

__all__ = [
    "BACKENDS",
    "BackendError",
    "Engine",
    "InputError",
    "Limits",
    "Tiling",
    "choose_tiling",
    "load_engine",
    "receptive_radius",
    "run_tiled",
]
