"""The torch CUDA engine: its precision rule, memory plan and place in ``auto`` checked anywhere (the
precision wrapping runs under CPU autocast), and the engine itself on an NVIDIA GPU (skipped elsewhere
with the reason)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from typer.testing import CliRunner

from livedenoise.backends import REGISTRY
from livedenoise.cli import app
from livedenoise.inference import (
    Backend,
    BackendError,
    BackendOptions,
    Engine,
    EngineRequest,
    load_engine,
    select,
)
from livedenoise.inference.cuda_engine import cuda_limits, mixed_precision
from livedenoise.inference.gpu import NO_GPU
from livedenoise.inference.tensorrt_engine import unavailable
from livedenoise.inference.torch_engine import TorchBackend
from livedenoise.model import ModelCard, Normalization, build_model, preset, save_model

GIB = 1 << 30

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)


class DtypeLog(TorchDispatchMode):
    """Records the dtype of the first tensor argument of every op that runs."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: dict[str, set[torch.dtype]] = defaultdict(set)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        first = next((a for a in args if isinstance(a, torch.Tensor)), None)
        if first is not None:
            self.seen[func.overloadpacket.__name__].add(first.dtype)
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    ("precision", "dtype"), [("fp16", torch.float16), ("bf16", torch.bfloat16)]
)
def test_reduced_precision_keeps_attention_and_norms_in_fp32(
    precision: str, dtype: torch.dtype
) -> None:
    model = build_model(preset("small")).eval()
    x = torch.rand(1, 4, 1, 32, 48)
    net, log = mixed_precision(model, precision, device_type="cpu"), DtypeLog()
    with torch.inference_mode():
        expected = model(x)
        with log:
            got = net(x)
        with torch.autocast("cpu", dtype=dtype):  # plain autocast, for contrast
            plain = DtypeLog()
            with plain:
                model(x)
    assert got.dtype == torch.float32 and got.shape == x.shape
    assert (got - expected).abs().max() / expected.abs().max() < 1e-2
    assert log.seen["conv2d"] == {dtype}  # the bulk of the work in reduced precision
    for op in ("matmul", "softmax", "instance_norm"):  # the TensorRT build's FP32 islands
        assert log.seen[op] == {torch.float32}, op
    assert plain.seen["instance_norm"] == {dtype}  # what the wrapping prevents
    assert next(model.parameters()).dtype == torch.float32  # the caller's model is left alone


def test_unknown_precision_is_a_clear_error() -> None:
    with pytest.raises(BackendError, match="precision 'int8': choose one of fp16, bf16, fp32"):
        mixed_precision(build_model(preset("small")), "int8")


def test_memory_plan_tiles_only_what_does_not_fit() -> None:
    paper = preset("paper")
    whole = cuda_limits(paper, 8, 40 * GIB, "fp16").max_size
    assert whole is not None and min(whole) >= 1024  # a 1024² paper window of 8 runs whole
    fp16 = cuda_limits(paper, 8, 4 * GIB, "fp16").max_size
    fp32 = cuda_limits(paper, 8, 4 * GIB, "fp32").max_size
    assert fp16 is not None and fp32 is not None
    assert fp32[0] < fp16[0] < 1024 and fp16[0] % 4 == 0  # half the bytes, larger tiles
    assert cuda_limits(paper, 1, 4 * GIB, "fp16").max_batch is None  # windows are batched


def test_cuda_engine_here_says_why_not(small_model_path: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(BackendError, match=f"the CUDA engine cannot run here: {NO_GPU}"):
        load_engine(small_model_path, "cuda")
    stack = tmp_path / "stack.npy"
    np.save(stack, np.zeros((3, 32, 32), np.uint16))
    args = ["denoise", str(small_model_path), str(stack), str(tmp_path / "out.npy")]
    result = CliRunner().invoke(app, [*args, "--backend", "cuda"])
    assert result.exit_code == 1
    assert NO_GPU in " ".join(result.output.split())
    assert "Traceback" not in result.output


class CpuStandIn(TorchBackend):
    """A GPU backend stand-in that runs torch on the CPU, to drive ``auto``'s choices anywhere."""

    def __init__(self, net: torch.nn.Module, name: str, fails: str | None = None) -> None:
        super().__init__(net)
        self.name, self.fails = name, fails

    def run(self, x: np.ndarray) -> np.ndarray:
        if self.fails:
            raise RuntimeError(self.fails)
        return super().run(x)


def stand_in(real: type[Backend], gpus: dict[str, object]) -> type[Backend]:
    """A backend in ``real``'s place in ``auto``: a ``CpuStandIn`` where ``gpus`` names it (value:
    None, or the failure its calls raise), else "cannot run here" as without a GPU."""
    name = real.name

    class Options(BackendOptions):
        def build(self, request: EngineRequest) -> Backend:
            if name not in gpus:
                raise BackendError(f"{name} cannot run here: {NO_GPU}.")
            return CpuStandIn(request.net, name, gpus[name])  # type: ignore[arg-type]

    attributes = {"Options": Options, "preferred_because": real.preferred_because}
    return type(f"StandIn{real.__name__}", (CpuStandIn,), attributes)


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Makes ``auto`` see the GPU engines named in the returned dict (value: None, or a failure),
    registered in the real ones' places."""
    gpus: dict[str, object] = {}
    for name in ("tensorrt", "cuda"):
        monkeypatch.setitem(REGISTRY, name, stand_in(select.backend_class(name), gpus))
    return gpus


def test_auto_prefers_tensorrt_then_the_cuda_engine(
    small_model_path: Path, small_onnx_path: Path, made: dict[str, object]
) -> None:
    made["cuda"] = None
    engine = load_engine(small_model_path, onnx=small_onnx_path)
    assert engine.name == "cuda"
    assert "CUDA engine is the fastest" in engine.reason
    assert f"tensorrt cannot run here: {NO_GPU}" in engine.reason  # why not TensorRT
    assert "onnxruntime" not in engine.reason  # the CPU engines were not even timed
    made["tensorrt"] = None
    assert load_engine(small_model_path, onnx=small_onnx_path).name == "tensorrt"


def test_auto_falls_back_to_the_cpu_when_the_cuda_engine_fails(
    small_model_path: Path, small_onnx_path: Path, made: dict[str, object]
) -> None:
    made["cuda"] = "CUDA error: out of memory"
    engine = load_engine(small_model_path, onnx=small_onnx_path)
    assert engine.name in ("onnxruntime", "torch")
    assert "CUDA error: out of memory" in engine.reason  # the user learns why not the GPU
    assert engine.denoise(np.ones((2, 16, 16), np.uint8)).shape == (2, 16, 16)


# -- on an NVIDIA GPU ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engines(small_model_path: Path) -> dict[str, Engine]:
    cpu = load_engine(small_model_path, "torch", device="cpu")
    cuda = {p: load_engine(small_model_path, "cuda", precision=p) for p in ("fp16", "bf16", "fp32")}
    return {"cpu": cpu, **cuda}


def frames(seed: int, shape: tuple[int, ...] = (4, 96, 128)) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 250).astype(np.uint8)


def relative(got: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(got - expected).max() / np.abs(expected).max())


@gpu
@pytest.mark.gpu
@pytest.mark.parametrize(
    ("precision", "tolerance"), [("fp16", 1e-2), ("bf16", 1e-2), ("fp32", 1e-3)]
)
def test_cuda_engine_matches_the_cpu(
    engines: dict[str, Engine], precision: str, tolerance: float
) -> None:
    x = frames(0)
    assert relative(engines[precision].denoise(x), engines["cpu"].denoise(x)) < tolerance


@gpu
@pytest.mark.gpu
def test_cuda_graph_replays_new_frames(engines: dict[str, Engine]) -> None:
    engine = engines["fp16"]
    a, b = frames(1), frames(2)
    first_a = engine.denoise(a)  # eager run, then the graph is captured
    got_b, again_a = engine.denoise(b), engine.denoise(a)  # graph replays
    assert engine.backend.cuda_graphs and "CUDA graphs" in engine.describe()
    np.testing.assert_allclose(again_a, first_a, rtol=1e-5, atol=1e-3)
    assert relative(got_b, engines["cpu"].denoise(b)) < 1e-2


@gpu
@pytest.mark.gpu
def test_shorter_windows_smaller_frames_batches_and_tiles(
    engines: dict[str, Engine], tmp_path: Path
) -> None:
    for x in (frames(3, (1, 64, 64)), frames(4, (3, 2, 96, 128)), frames(5, (4, 37, 53))):
        assert relative(engines["fp16"].denoise(x), engines["cpu"].denoise(x)) < 1e-2
    cfg = preset("small")
    card = ModelCard(name="tiled", config=cfg, normalization=Normalization(scale=255), tile=64)
    save_model(build_model(cfg, seed=3), card, tmp_path / "tiled")
    tiled = load_engine(tmp_path / "tiled", "cuda")
    x = frames(6, (4, 160, 200))
    assert tiled.tiling(4, 160, 200) is not None
    expected = load_engine(tmp_path / "tiled", "torch", device="cpu").denoise(x)
    assert relative(tiled.denoise(x), expected) < 1e-2


@gpu
@pytest.mark.gpu
def test_compiled_cuda_engine_matches_eager(small_model_path: Path, engines: dict[str, Engine]):
    compiled = load_engine(small_model_path, "cuda", compile=True)
    x = frames(7)
    assert "compiled" in compiled.describe()
    assert relative(compiled.denoise(x), engines["fp16"].denoise(x)) < 1e-2


@gpu
@pytest.mark.gpu
def test_auto_picks_the_cuda_engine_without_tensorrt(
    small_model_path: Path, small_onnx_path: Path
) -> None:
    if unavailable() is None:
        pytest.skip("TensorRT can run here")
    engine = load_engine(small_model_path, onnx=small_onnx_path)
    assert engine.name == "cuda"
    assert "TensorRT cannot run here" in engine.reason
