"""Model benchmark: size, counted GFLOP and CPU speed of each preset in torch and ONNX Runtime.

    python scripts/bench_model.py [--presets small,fast,paper] [--repeats 3] [--threads N]
    python scripts/bench_model.py --tiles [--repeats 5]

FLOPs are counted by torch's FlopCounterMode on a real forward pass (convolutions and matmuls; a
multiply-add is 2 FLOP), not estimated. Times are the median of the repeats after one warm-up call.
``--tiles`` times the shipped backbone on ONNX Runtime for one 512x512 frame (window 1) in its card's
128 px tiles (as before and as engines tile now), in 256 px tiles and whole, the cases interleaved so that a busy machine
slows them alike (compare the ratios).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from livedenoise.cpu import cpu_threads
from livedenoise.inference import Tiling, choose_tiling, load_engine, run_tiled
from livedenoise.inference.tiling import frame_tiling
from livedenoise.model import build_model, export_onnx, preset

SHAPES = [(1, 512, 512), (8, 256, 256), (1, 1024, 1024)]  # (T, H, W), batch 1, one channel


def counted_flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops()


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: allocations, ONNX Runtime's first-run planning
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_tiles(console: Console, repeats: int) -> None:
    """ms per 512x512 frame of the shipped backbone on ONNX Runtime, by tiling (whole: one call)."""
    engine = load_engine("backbone-small", "onnxruntime")
    cfg = engine.card.config

    def run(x: np.ndarray) -> np.ndarray:  # a tile is a strided view; the engine copies it too
        return engine.backend.run(np.ascontiguousarray(x))

    frame = torch.rand(1, 1, 1, 512, 512).numpy()
    cases: dict[str, Tiling | None] = {
        "128 px, overlap up to half (before)": choose_tiling(cfg, 128),
        "128 px, as engines tile now": frame_tiling(cfg, 128, 512, 512),
        "256 px": frame_tiling(cfg, 256, 512, 512),
        "whole frame": None,
    }
    calls = {
        name: (lambda: run(frame))
        if tiling is None
        else (lambda t=tiling: run_tiled(run, frame, t))
        for name, tiling in cases.items()
    }
    for fn in calls.values():
        fn()  # warm-up: each tile shape's first-run planning
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, fn in calls.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    table = Table(title=f"backbone-small, 512x512, window 1: {engine.describe()}")
    for col in ("tiling", "tiles", "pixels computed", "ms / frame (median)", "speed vs before"):
        table.add_column(col, justify="right")
    before = statistics.median(next(iter(times.values())))
    for name, tiling in cases.items():
        side = 512 if tiling is None else tiling.tile
        n = 1 if tiling is None else len(tiling.starts(512)) ** 2
        ms = statistics.median(times[name])
        pixels = f"{n * side**2 / 512**2:.2f}x"
        table.add_row(name, str(n), pixels, f"{ms * 1e3:.0f}", f"{before / ms:.2f}x")
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="small,fast,paper")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case (paper: 1)")
    parser.add_argument("--tiles", action="store_true", help="time tile sizes instead of presets")
    parser.add_argument(
        "--threads", type=int, help="CPU threads (default: as the engines choose, cpu_threads())"
    )
    args = parser.parse_args()
    threads = args.threads or cpu_threads()  # as the engines and training use
    torch.set_num_threads(threads)
    console = Console(width=150)
    console.print(
        f"machine: {platform.processor() or platform.machine()}, {threads} CPU threads; "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}"
    )
    if args.tiles:
        bench_tiles(console, args.repeats)
        return

    table = Table(title="CNNT presets on the CPU (ms per frame, batch 1, one channel)")
    for col in ("preset", "params", "GFLOP/frame 512²", "T x H x W", "torch ms", "ORT ms"):
        table.add_column(col, justify="right")
    table.add_column("GFLOP/s torch / ORT", justify="right")

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    for name in args.presets.split(","):
        model = build_model(preset(name)).eval()
        params = sum(p.numel() for p in model.parameters())
        flops_512 = counted_flops(model, torch.rand(1, 1, 1, 512, 512))
        repeats = 1 if name == "paper" else args.repeats
        with tempfile.TemporaryDirectory() as tmp:
            onnx_path = export_onnx(model, Path(tmp) / f"{name}.onnx")
            session = ort.InferenceSession(
                str(onnx_path), options, providers=["CPUExecutionProvider"]
            )
        for t, h, w in SHAPES:
            x = torch.rand(1, t, 1, h, w)
            x_np = x.numpy()
            flops = counted_flops(model, x)
            with torch.no_grad():
                s_torch = median_seconds(lambda x=x, m=model: m(x), repeats)
            s_ort = median_seconds(lambda x=x_np, s=session: s.run(None, {"frames": x}), repeats)
            table.add_row(
                name,
                f"{params:,}",
                f"{flops_512 / 1e9:.1f}",
                f"{t} x {h} x {w}",
                f"{s_torch / t * 1e3:.1f}",
                f"{s_ort / t * 1e3:.1f}",
                f"{flops / s_torch / 1e9:.0f} / {flops / s_ort / 1e9:.0f}",
            )
            console.log(f"{name} T={t} {h}x{w}: torch {s_torch:.2f} s, ORT {s_ort:.2f} s per call")
    console.print(table)


if __name__ == "__main__":
    main()
