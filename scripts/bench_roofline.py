"""Roofline: the default model's GFLOP per 512x512 frame, the GFLOP/s ONNX Runtime reaches, and the
machine's float32 peak as a plain matrix multiply reaches it (1 thread and all threads).

    nice python scripts/bench_roofline.py [--model backbone-small] [--repeats 3]

FLOPs are counted by torch's FlopCounterMode on the model's forward pass at window 1 (convolutions
and matmuls; a multiply-add is 2 FLOP; elementwise work is not counted). Times are the median of the
repeats after one warm-up call. The "peak" is what torch's float32 matmul of two 2048x2048 matrices
reaches here, a practical ceiling rather than the datasheet's.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from bench_model import counted_flops, median_seconds  # scripts/ is on sys.path when run
from rich.console import Console
from rich.table import Table

from livedenoise.model import export_onnx, find_model, load_model

MATMUL_N = 2048


def matmul_gflops(threads: int, repeats: int) -> float:
    """GFLOP/s of a float32 ``MATMUL_N``-square matrix multiply on ``threads`` threads."""
    torch.set_num_threads(threads)
    a, b = torch.rand(MATMUL_N, MATMUL_N), torch.rand(MATMUL_N, MATMUL_N)
    seconds = median_seconds(lambda: a @ b, repeats)
    return 2 * MATMUL_N**3 / seconds / 1e9


def onnx_seconds(onnx_path: Path, x: np.ndarray, threads: int, repeats: int) -> float:
    """Seconds for one ONNX Runtime call on ``x`` with ``threads`` intra-op threads."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    return median_seconds(lambda: session.run(None, {"frames": x}), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="backbone-small")
    parser.add_argument("--repeats", type=int, default=3, help="timed calls per case")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    console = Console(width=120)
    console.print(
        f"machine: {platform.processor() or platform.machine()}, {cores} CPU threads, load "
        f"average {os.getloadavg()[0]:.1f}; torch {torch.__version__}, onnxruntime {ort.__version__}"
    )
    model, _ = load_model(find_model(args.model))
    model = model.eval()
    x = torch.rand(1, 1, 1, 512, 512)  # batch 1, window 1, one channel
    flops = counted_flops(model, x)
    table = Table(title=f"{args.model}, one 512x512 frame at window 1: {flops / 1e9:.1f} GFLOP")
    for col in (
        "threads",
        "ONNX Runtime s/frame",
        "ONNX Runtime GFLOP/s",
        "matmul GFLOP/s",
        "% of peak",
    ):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = export_onnx(model, Path(tmp) / "model.onnx")
        for threads in sorted({1, cores}):
            seconds = onnx_seconds(onnx_path, x.numpy(), threads, args.repeats)
            reached = flops / seconds / 1e9
            peak = matmul_gflops(threads, args.repeats)
            table.add_row(
                str(threads),
                f"{seconds:.2f}",
                f"{reached:.1f}",
                f"{peak:.1f}",
                f"{100 * reached / peak:.0f}%",
            )
    console.print(table)


if __name__ == "__main__":
    main()
