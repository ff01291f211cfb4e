"""TensorRT 10 backend: the product's GPU engine, built from the ONNX export and cached per GPU.

torch owns the CUDA context: buffers are torch tensors, work runs on a torch stream, and TensorRT only gets
their addresses (a second context, as pycuda would make, is a known cause of "invalid resource handle").
Host staging is pinned and allocated once per shape; once a shape has run, its copy-in, inference and
copy-out are captured in a CUDA graph and replayed, so a live frame costs one graph launch.

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
from dataclasses import asdict, dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from livedenoise.inference.base import Backend, BackendError, Limits, Shape5
from livedenoise.inference.cache import cached, key_digest
from livedenoise.inference.memory import max_side
from livedenoise.model import CNNTConfig, ModelCard, file_sha256
from livedenoise.model.cnnt import SIZE_MULTIPLE
from livedenoise.model.onnx_export import INPUT_NAME, OUTPUT_NAME

log = logging.getLogger(__name__)

PRECISIONS = ("fp16", "bf16", "fp32")
NO_GPU = "no NVIDIA GPU"


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


@dataclass(frozen=True)
class Profile:
    """A TensorRT optimisation profile: min, opt and max ``[B, T, C, H, W]`` of the input."""

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
    window fits ``memory_budget``; otherwise it is the largest square tile that fits, and the engine
    tiles frames. Smaller frames and shorter windows down to one pixel and one frame still run.
    """
    c = cfg.channels
    h, w = (-(-n // SIZE_MULTIPLE) * SIZE_MULTIPLE for n in frame_size)
    fit = max_side(cfg, window * batch, memory_budget, bytes_per_value)
    if max(h, w) <= fit:
        opt: Shape5 = (1, window, c, *frame_size)
        largest: Shape5 = (batch, window, c, h, w)
    else:
        tile = (min(h, fit), min(w, fit))
        opt, largest = (1, window, c, *tile), (batch, window, c, *tile)
    return Profile(min=(1, 1, c, 1, 1), opt=opt, max=largest)


@dataclass(frozen=True)
class Gpu:
    name: str
    compute_capability: str

    @classmethod
    def current(cls) -> Gpu:
        major, minor = torch.cuda.get_device_capability()
        return cls(torch.cuda.get_device_name(), f"{major}.{minor}")


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


def _pin_fp32(trt: ModuleType, network: object) -> int:
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
        if precision == "bf16" and torch.cuda.get_device_capability() < (8, 0):
            raise BackendError(
                "BF16 needs an Ampere or newer GPU (compute capability 8.0); use fp16."
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
    if precision not in PRECISIONS:
        raise BackendError(f"precision {precision!r}: choose one of {', '.join(PRECISIONS)}.")
    gpu = Gpu.current()
    key = engine_key(file_sha256(onnx_path), trt.__version__, gpu, precision, profile)
    device = {k: key[k] for k in ("tensorrt", "gpu", "compute_capability")}
    timing = cache_dir / f"timing.{key_digest(device)}.cache"
    workspace = torch.cuda.mem_get_info()[1] // 4

    def build(out: Path) -> None:
        out.write_bytes(build_engine(onnx_path, profile, precision, timing, workspace))

    return cached(cache_dir / f"{card.name}.{key_digest(key)}.engine", key, build)


@dataclass
class _Bindings:
    """Device tensors and pinned host staging for one input shape, and its captured graph."""

    host_in: torch.Tensor
    device_in: torch.Tensor
    device_out: torch.Tensor
    host_out: torch.Tensor
    graph: torch.cuda.CUDAGraph | None = None


class TensorRTBackend(Backend):
    """A cached TensorRT engine executed on a torch CUDA stream."""

    name = "tensorrt"

    def __init__(
        self,
        onnx_path: Path,
        card: ModelCard,
        profile: Profile,
        cache_dir: Path,
        precision: str = "fp16",
        cuda_graphs: bool = True,
    ) -> None:
        super().__init__()
        trt = require_tensorrt()
        self.profile, self.precision, self.cuda_graphs = profile, precision, cuda_graphs
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
        self.stream = torch.cuda.Stream()
        self._bindings: dict[Shape5, _Bindings] = {}
        self._active: _Bindings | None = None

    def _allocate(self, shape: Shape5) -> np.ndarray:
        def empty(**kw: object) -> torch.Tensor:
            return torch.empty(shape, dtype=torch.float32, **kw)

        b = _Bindings(
            host_in=empty(pin_memory=True),
            device_in=empty(device="cuda"),
            device_out=empty(device="cuda"),
            host_out=empty(pin_memory=True),
        )
        self._bindings[shape] = b
        return b.host_in.numpy()

    def _enqueue(self, b: _Bindings) -> None:
        with torch.cuda.stream(self.stream):
            b.device_in.copy_(b.host_in, non_blocking=True)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise BackendError("TensorRT failed to enqueue the engine; its log above says why.")
            b.host_out.copy_(b.device_out, non_blocking=True)

    def _activate(self, b: _Bindings) -> None:
        """Point the context at this shape's tensors; graphs of other shapes become stale."""
        shape = tuple(b.host_in.shape)
        if not self.context.set_input_shape(INPUT_NAME, shape):
            raise BackendError(f"shape {shape} is outside the engine's profile {self.profile}.")
        self.context.set_tensor_address(INPUT_NAME, b.device_in.data_ptr())
        self.context.set_tensor_address(OUTPUT_NAME, b.device_out.data_ptr())
        for other in self._bindings.values():
            other.graph = None
        self._active = b

    def _capture(self, b: _Bindings) -> None:
        graph = torch.cuda.CUDAGraph()
        try:
            # thread-local: other threads (a viewer, a writer) may use CUDA while this one captures
            with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                self._enqueue(b)
        except RuntimeError as err:
            log.warning("CUDA graph capture failed (%s); running TensorRT without graphs", err)
            self.cuda_graphs = False
            return
        b.graph = graph

    def run(self, x: np.ndarray) -> np.ndarray:
        b = self._bindings[x.shape]
        if self._active is b and b.graph is not None:
            with torch.cuda.stream(self.stream):
                b.graph.replay()
        else:
            if self._active is not b:
                self._activate(b)
            self._enqueue(b)  # the first run of a shape sets TensorRT up outside any capture
            if self.cuda_graphs:
                self._capture(b)
        self.stream.synchronize()
        return b.host_out.numpy()

    def limits(self, frames: int) -> Limits:
        b, t, _, h, w = self.profile.max
        return Limits(max_batch=b, max_frames=t, max_size=(h, w))

    def describe(self) -> str:
        graphs = ", CUDA graphs" if self.cuda_graphs else ""
        return (
            f"TensorRT {self.trt_version} {self.precision} on {self.gpu.name} "
            f"(sm {self.gpu.compute_capability}{graphs}), profile max {self.profile.max}"
        )
