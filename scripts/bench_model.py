"""Model benchmark: size, counted GFLOP and CPU speed of each preset in torch and ONNX Runtime.

    python scripts/bench_model.py [--presets small,paper] [--repeats 3]

FLOPs are counted by torch's FlopCounterMode on a real forward pass (convolutions and matmuls; a
multiply-add is 2 FLOP), not estimated. Times are the median of the repeats after one warm-up call.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import onnxruntime as ort
import torch
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from livedenoise.cpu import cpu_threads
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="small,paper")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case (paper: 1)")
    args = parser.parse_args()
    threads = cpu_threads()  # as the engines and training use
    torch.set_num_threads(threads)
    console = Console(width=150)
    console.print(
        f"machine: {platform.processor() or platform.machine()}, {threads} CPU threads; "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}"
    )

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
