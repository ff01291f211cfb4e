"""The torch CUDA engine: the CNNT module itself on an NVIDIA GPU, in FP16 or BF16, as CUDA graphs.

It needs nothing beyond a CUDA build of torch, so it is the GPU engine wherever TensorRT is not installed.

Precision follows the TensorRT build: convolutions run in FP16 (or BF16) under autocast; two places stay in
FP32, the attention (the q and k scaling by (hc*H*W)^-1/4, the score matmul, the softmax and the
weighting of v) and instance norm (statistics and affine). ``mixed_precision`` wraps a copy of the module
that way, leaving the model's own code alone; autocast is device-generic, so the same wrapping runs (and
is tested) on the CPU.

Execution (``CudaGraphBackend``): a stream per engine, pinned host staging and device buffers allocated once
per input shape, and a CUDA graph per shape after its first (eager) run. ``compile=True`` puts
``torch.compile`` under the graphs; it pays a compile per new shape, so it suits long runs of one shape.
"""

from __future__ import annotations

import copy

import torch
from torch import Tensor, nn

from livedenoise.inference.base import BackendOptions, EngineRequest, Limits
from livedenoise.inference.gpu import (
    CudaGraphBackend,
    Gpu,
    Staging,
    check_precision,
    require_gpu,
    value_bytes,
)
from livedenoise.inference.memory import max_side
from livedenoise.model import CNNT, CNNTConfig
from livedenoise.model.cnnt import CNNAttention, FrameNorm

AUTOCAST = {"fp16": torch.float16, "bf16": torch.bfloat16}


class _Float32(nn.Module):
    """Runs ``inner`` in float32 with autocast off (inner modules may turn it back on)."""

    def __init__(self, inner: nn.Module, device_type: str) -> None:
        super().__init__()
        self.inner, self.device_type = inner, device_type

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(self.device_type, enabled=False):
            return self.inner(x.float())


class _Autocast(nn.Module):
    """Runs ``inner`` under autocast at ``dtype``, float32 out: the whole network, or a convolution
    inside a float32 region."""

    def __init__(self, inner: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner, self.device_type, self.dtype = inner, device_type, dtype

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype, cache_enabled=False):
            return self.inner(x).float()


def mixed_precision(model: CNNT, precision: str, device_type: str = "cuda") -> nn.Module:
    """A copy of ``model`` that runs in ``precision`` (fp16, bf16) with attention and norms in FP32.

    The copy maps normalised ``[B, T, C, H, W]`` float32 to float32 of the same shape, like the model
    (``fp32``: a plain copy). Raises BackendError for an unknown precision.
    """
    value_bytes(precision)
    wrapped = copy.deepcopy(model)  # the caller's module stays as it is (ONNX export needs it)
    if precision == "fp32":
        return wrapped
    dtype = AUTOCAST[precision]
    for module in list(wrapped.modules()):
        for name, child in module.named_children():
            if isinstance(child, FrameNorm):
                setattr(module, name, _Float32(child, device_type))
            elif isinstance(child, CNNAttention):
                for conv in ("q", "k", "v", "out"):
                    setattr(child, conv, _Autocast(getattr(child, conv), device_type, dtype))
                setattr(module, name, _Float32(child, device_type))
    return _Autocast(wrapped, device_type, dtype)


def cuda_limits(cfg: CNNTConfig, frames: int, memory_budget: int, precision: str) -> Limits:
    """What one call takes: any batch, frames up to the square side whose activations fit the budget.

    ``memory_budget`` is in bytes; activations are counted at ``precision``'s value size.
    """
    side = max_side(cfg, frames, memory_budget, value_bytes(precision))
    return Limits(max_size=(side, side))


class CudaOptions(BackendOptions):
    """``precision``: fp16, bf16 or fp32; ``compile``: ``torch.compile`` under the graphs;
    ``cuda_graphs``: replay each shape as a CUDA graph after its first run."""

    precision: str = "fp16"
    compile: bool = False
    cuda_graphs: bool = True

    def build(self, request: EngineRequest) -> CudaBackend:
        return CudaBackend(
            request.net, self.precision, self.compile, self.cuda_graphs, request.memory_budget
        )


class CudaBackend(CudaGraphBackend):
    """The CNNT module on the current CUDA GPU in ``precision`` (fp16, bf16 or fp32).

    ``memory_budget`` (bytes, default half the GPU's free memory) bounds a call's activations, beyond
    which the engine tiles frames. Raises BackendError without a CUDA GPU, for an unknown precision,
    or for BF16 on a GPU older than Ampere.
    """

    name = "cuda"
    Options = CudaOptions
    preferred_because = "the CUDA engine is the fastest on an NVIDIA GPU without TensorRT"

    def __init__(
        self,
        model: CNNT,
        precision: str = "fp16",
        compile: bool = False,
        cuda_graphs: bool = True,
        memory_budget: int | None = None,
    ) -> None:
        require_gpu("the CUDA engine")
        check_precision(precision)
        net = mixed_precision(model, precision).eval().to("cuda")
        super().__init__(cuda_graphs)  # after the upload: its stream waits for the weights
        self.cfg, self.precision, self.compiled = model.cfg, precision, compile
        self.gpu = Gpu.current()
        self._fn = torch.compile(net, dynamic=False) if compile else net
        self.memory_budget = memory_budget or torch.cuda.mem_get_info()[0] // 2

    def _compute(self, s: Staging) -> None:
        with torch.inference_mode():
            s.device_out.copy_(self._fn(s.device_in))

    def limits(self, frames: int) -> Limits:
        return cuda_limits(self.cfg, frames, self.memory_budget, self.precision)

    def describe(self) -> str:
        mode = "compiled" if self.compiled else "eager"
        graphs = ", CUDA graphs" if self.cuda_graphs else ""
        kept = "" if self.precision == "fp32" else " (attention, norms fp32)"
        return (
            f"CUDA engine: torch {torch.__version__} {mode} {self.precision}{kept} "
            f"on {self.gpu.name} (sm {self.gpu.compute_capability}{graphs})"
        )
