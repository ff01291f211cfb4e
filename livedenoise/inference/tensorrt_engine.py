"""TensorRT 10 backend: the product's GPU engine, built from the ONNX export and cached per GPU.

torch owns the CUDA context: buffers are torch tensors, work runs on a torch stream, and TensorRT only gets
their addresses (a second context, as pycuda would make, is a known cause of "invalid resource handle").
Staging, streams and CUDA graphs are shared with the torch CUDA engine (``livedenoise.inference.gpu``).

Precision: FP16 (or BF16) wherever TensorRT finds it faster, except two places pinned to FP32: the
attention (its matmuls and softmax, and the scale computed from the frame size: hc*H*W itself passes
FP16's 65504 at 64x64 pixels with 16 channels) and the instance-norm statistics. These are TensorRT 10's
weakly typed precision controls; TensorRT 11 removed them, so there only ``fp32`` builds.

This module imports without tensorrt or a GPU, so profiles and cache keys can be computed (and tested)
anywhere.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from livedenoise.hashing import file_sha256
from livedenoise.inference.base import BackendError, BackendOptions, EngineRequest, Limits
from livedenoise.inference.cache import cached, key_digest
from livedenoise.inference.gpu import (
    NO_GPU,
    CudaGraphBackend,
    Gpu,
    Profile,
    Staging,
    check_precision,
    derive_profile,
    value_bytes,
)
from livedenoise.inference.gpu import PRECISIONS as PRECISIONS  # the export command's choices
from livedenoise.model import ModelCard
from livedenoise.model.onnx_export import INPUT_NAME, OUTPUT_NAME

log = logging.getLogger(__name__)


def unavailable() -> str | None:
    """Why TensorRT cannot run here, or None when it can."""
    if not torch.cuda.is_available():
        return NO_GPU
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return "TensorRT is not installed (pip install 'livedenoise[tensorrt]')"
    return None


def require_tensorrt() -> ModuleType:
    """The tensorrt module, or a BackendError saying why it cannot run here."""
    reason = unavailable()
    if reason:
        raise BackendError(f"TensorRT cannot run here: {reason}.")
    import tensorrt

    return tensorrt


def engine_key(
    onnx_sha256: str, tensorrt_version: str, gpu: Gpu, precision: str, profile: Profile
) -> dict[str, object]:
    """Everything a serialised engine depends on; an engine is reused only for an equal key."""
    return {
        "artefact": "tensorrt-engine",
        "onnx_sha256": onnx_sha256,
        "tensorrt": tensorrt_version,
        "gpu": gpu.name,
        "compute_capability": gpu.compute_capability,
        "precision": precision,
        "profile": {k: list(v) for k, v in asdict(profile).items()},
    }


def _pin_fp32(trt: ModuleType, network: Any) -> int:  # tensorrt ships no type stubs
    """Pin the attention and the scale chain feeding it to FP32; returns how many layers were pinned.

    Starts at every matmul and softmax (in CNNT every matmul is attention: convolutions are their own
    layers) and walks upstream through reshapes, transposes and elementwise ops until a convolution, so
    the q and k scaling and the hc*H*W -> float cast ahead of it run in FP32 as well.
    """
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    producer = {
        layer.get_output(j).name: layer for layer in layers for j in range(layer.num_outputs)
    }
    floats = (trt.float32, trt.float16, trt.bfloat16)
    todo = [
        layer
        for layer in layers
        if layer.type in (trt.LayerType.MATRIX_MULTIPLY, trt.LayerType.SOFTMAX)
    ]
    pinned: set[str] = set()
    while todo:
        layer = todo.pop()
        outputs = [layer.get_output(j) for j in range(layer.num_outputs)]
        if layer.name in pinned or layer.type == trt.LayerType.CONVOLUTION:
            continue
        if not all(t.dtype in floats for t in outputs):
            continue  # integer shape arithmetic: exact already
        inputs = [layer.get_input(i) for i in range(layer.num_inputs)]
        inputs = [t for t in inputs if t is not None]
        if all(t.dtype in floats for t in inputs):
            layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        pinned.add(layer.name)
        todo.extend(producer[t.name] for t in inputs if t.name in producer)
    for layer in layers:
        if layer.type == trt.LayerType.NORMALIZATION:
            layer.__class__ = trt.INormalizationLayer  # the Python API's documented down-cast
            layer.compute_precision = trt.float32
    return len(pinned)


def build_engine(
    onnx_path: Path, profile: Profile, precision: str, timing_cache: Path, workspace: int
) -> bytes:
    """Build a serialised engine; the timing cache makes rebuilds (new profile, same GPU) fast."""
    trt = require_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    if hasattr(trt.OnnxParserFlag, "NATIVE_INSTANCENORM"):
        parser.set_flag(trt.OnnxParserFlag.NATIVE_INSTANCENORM)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise BackendError(f"TensorRT cannot parse {onnx_path}: {errors}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace)
    if precision == "fp32":
        config.clear_flag(trt.BuilderFlag.TF32)  # a true FP32 reference, not 10-bit mantissas
    else:
        flag = "FP16" if precision == "fp16" else "BF16"
        if not hasattr(trt.BuilderFlag, flag):
            raise BackendError(
                f"TensorRT {trt.__version__} has no weakly typed {precision}; "
                "install tensorrt 10 (pip install 'tensorrt>=10,<11') or build with precision fp32."
            )
        config.set_flag(getattr(trt.BuilderFlag, flag))
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        log.info("TensorRT: %d attention layers pinned to FP32", _pin_fp32(trt, network))

    shapes = builder.create_optimization_profile()
    shapes.set_shape(INPUT_NAME, profile.min, profile.opt, profile.max)
    config.add_optimization_profile(shapes)

    try:
        cache = config.create_timing_cache(timing_cache.read_bytes())
    except (OSError, RuntimeError, TypeError):
        cache = None
    if cache is None or not config.set_timing_cache(cache, ignore_mismatch=False):
        cache = config.create_timing_cache(b"")  # unreadable or from another GPU: start afresh
        config.set_timing_cache(cache, ignore_mismatch=False)

    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BackendError("TensorRT failed to build the engine; its log above says why.")
    timing_cache.parent.mkdir(parents=True, exist_ok=True)
    partial = timing_cache.with_name(timing_cache.name + ".partial")
    partial.write_bytes(bytes(config.get_timing_cache().serialize()))
    os.replace(partial, timing_cache)
    return bytes(serialized)


def cached_engine(
    onnx_path: Path, card: ModelCard, profile: Profile, precision: str, cache_dir: Path
) -> Path:
    """The engine for this ONNX graph, GPU, precision and profile: from the cache, or built into it."""
    trt = require_tensorrt()
    check_precision(precision)
    gpu = Gpu.current()
    key = engine_key(file_sha256(onnx_path), trt.__version__, gpu, precision, profile)
    device = {k: key[k] for k in ("tensorrt", "gpu", "compute_capability")}
    timing = cache_dir / f"timing.{key_digest(device)}.cache"
    workspace = torch.cuda.mem_get_info()[1] // 4

    def build(out: Path) -> None:
        out.write_bytes(build_engine(onnx_path, profile, precision, timing, workspace))

    return cached(cache_dir / f"{card.name}.{key_digest(key)}.engine", key, build)


class TensorRTOptions(BackendOptions):
    """``precision``: fp16, bf16 or fp32; ``cuda_graphs``: replay each shape as a CUDA graph."""

    precision: str = "fp16"
    cuda_graphs: bool = True

    def build(self, request: EngineRequest) -> TensorRTBackend:
        """The engine planned for the request's window and frame size, within its memory budget
        (default: half the GPU's memory)."""
        require_tensorrt()  # before asking CUDA for the memory the profile is sized to
        budget = request.memory_budget or torch.cuda.mem_get_info()[1] // 2
        profile = derive_profile(
            request.card.config,
            request.frame_size,
            request.window,
            budget,
            bytes_per_value=value_bytes(self.precision),
        )
        return TensorRTBackend(
            request.onnx_path(),
            request.card,
            profile,
            request.cache_dir,
            self.precision,
            self.cuda_graphs,
        )


class TensorRTBackend(CudaGraphBackend):
    """A cached TensorRT engine executed on a torch CUDA stream."""

    name = "tensorrt"
    Options = TensorRTOptions
    preferred_because = "TensorRT is the fastest engine on an NVIDIA GPU"

    def __init__(
        self,
        onnx_path: Path,
        card: ModelCard,
        profile: Profile,
        cache_dir: Path,
        precision: str = "fp16",
        cuda_graphs: bool = True,
    ) -> None:
        trt = require_tensorrt()
        super().__init__(cuda_graphs)
        self.profile, self.precision = profile, precision
        self.gpu, self.trt_version = Gpu.current(), trt.__version__
        self.path = cached_engine(onnx_path, card, profile, precision, cache_dir)
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise BackendError(
                f"TensorRT could not load {self.path} although its hash checks out; delete it to rebuild."
            )
        self.context = self.engine.create_execution_context()
        self._active: Staging | None = None

    def _compute(self, s: Staging) -> None:
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise BackendError("TensorRT failed to enqueue the engine; its log above says why.")

    def _prepare(self, s: Staging) -> None:
        """Point the context at this shape's tensors; graphs of other shapes become stale."""
        if self._active is s:
            return
        shape = tuple(s.host_in.shape)
        if not self.context.set_input_shape(INPUT_NAME, shape):
            raise BackendError(f"shape {shape} is outside the engine's profile {self.profile}.")
        self.context.set_tensor_address(INPUT_NAME, s.device_in.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, s.device_out.data_ptr())
        for other in self._staging.values():
            other.graph = None
        self._active = s

    def limits(self, frames: int) -> Limits:
        b, t, _, h, w = self.profile.max
        return Limits(max_batch=b, max_frames=t, max_size=(h, w))

    def describe(self) -> str:
        graphs = ", CUDA graphs" if self.cuda_graphs else ""
        return (
            f"TensorRT {self.trt_version} {self.precision} on {self.gpu.name} "
            f"(sm {self.gpu.compute_capability}{graphs}), profile max {self.profile.max}"
        )
