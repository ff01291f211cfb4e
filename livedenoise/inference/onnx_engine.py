"""ONNX Runtime backend: the CPU engine where no GPU is, and CUDA/TensorRT providers where they are."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
from pydantic import Field

from livedenoise.cpu import cpu_threads, threads_text
from livedenoise.inference.base import (
    Backend,
    BackendError,
    BackendOptions,
    EngineRequest,
    Limits,
)
from livedenoise.inference.memory import available_memory, max_side
from livedenoise.inference.torch_engine import default_device
from livedenoise.model import CNNTConfig

Provider = str | tuple[str, dict[str, object]]  # a name, or a name and its options


def providers(cache_dir: Path) -> list[Provider]:
    """The execution providers present, fastest first; CPU always last as the fallback."""
    present = ort.get_available_providers()
    chosen: list[Provider] = []
    if "TensorrtExecutionProvider" in present:
        chosen.append(
            (
                "TensorrtExecutionProvider",
                {
                    "trt_fp16_enable": True,
                    "trt_engine_cache_enable": True,
                    "trt_engine_cache_path": str(cache_dir / "ort-tensorrt"),
                    "trt_timing_cache_enable": True,
                },
            )
        )
    if "CUDAExecutionProvider" in present:
        chosen.append("CUDAExecutionProvider")
    chosen.append("CPUExecutionProvider")
    return chosen


class OnnxRuntimeOptions(BackendOptions):
    """``providers``: ONNX Runtime's execution providers, in order (default: those present, fastest
    first; the CPU's alone where ``device`` is ``"cpu"``, as it is by default without a GPU);
    ``threads``: CPU threads (default: ``livedenoise.cpu``'s count)."""

    device: str | None = None
    providers: tuple[str, ...] | None = None
    threads: int | None = Field(default=None, ge=1)

    def build(self, request: EngineRequest) -> OnnxRuntimeBackend:
        chosen: list[Provider]
        if self.providers:
            chosen = list(self.providers)
        elif (self.device or default_device()) == "cpu":
            chosen = ["CPUExecutionProvider"]
        else:
            chosen = providers(request.cache_dir)
        return OnnxRuntimeBackend(
            request.onnx_path(),
            request.card.config,
            chosen,
            threads=self.threads,
            memory_budget=request.memory_budget,
        )


class OnnxRuntimeBackend(Backend):
    """An ONNX Runtime session over the model's dynamic-shape ONNX export."""

    name = "onnxruntime"
    Options = OnnxRuntimeOptions

    def __init__(
        self,
        onnx_path: Path,
        cfg: CNNTConfig,
        chosen: list[Provider],
        threads: int | None = None,
        memory_budget: int | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or cpu_threads()  # why: livedenoise.cpu
        options.inter_op_num_threads = 1
        # idle threads sleep instead of spinning: spinning ones take the cores a live run's camera
        # and writer threads need (on 2 busy cores, 2 spinning threads took 1.9x as long a call)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(str(onnx_path), options, providers=chosen)
        except Exception as err:  # ORT raises its own exception types per failure
            raise BackendError(f"ONNX Runtime cannot load {onnx_path}: {err}") from err
        self.threads = options.intra_op_num_threads
        self.on_gpu = self.session.get_providers()[0] != "CPUExecutionProvider"
        self.input_name = self.session.get_inputs()[0].name
        self.memory_budget = memory_budget or available_memory() // 2

    def run(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {self.input_name: x})[0]

    def limits(self, frames: int) -> Limits:
        side = max_side(self.cfg, frames, self.memory_budget)
        return Limits(
            max_batch=None if self.on_gpu else 1,
            max_size=None if self.on_gpu else (side, side),
        )

    def describe(self) -> str:
        provider = self.session.get_providers()[0].removesuffix("ExecutionProvider")
        precision = "fp16" if provider == "Tensorrt" else "float32"
        threads = "" if self.on_gpu else f", {threads_text(self.threads)}"
        return f"onnxruntime {ort.__version__} {precision} on {provider}{threads}"
