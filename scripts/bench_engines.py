"""Engine benchmark: ms per frame and frames per second of every backend that runs here.

    python scripts/bench_engines.py [--presets small,paper] [--sizes 256,512,1024] [--frames 1,8,16]
                                    [--repeats 3] [--max-seconds 60] [--compile] [--markdown]

Each case is one call of ``Engine.denoise`` on a window of T uint16 frames of H x W pixels, through the
same interface the live pipeline uses (normalisation, and tiling where a window exceeds memory). Times are
the median of ``--repeats`` calls after a warm-up call; a case predicted (from the backend's last case) to
take over 5 s gets no warm-up and one call, and one predicted over ``--max-seconds`` is skipped, so a full
CPU run ends in minutes. The ratio is torch eager's time over the backend's, measured in the same run. On
an NVIDIA GPU TensorRT runs in FP16 and FP32 (one engine per frame size, built for the largest T).
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

from livedenoise.inference import Engine, load_engine
from livedenoise.inference.cache import default_cache_dir
from livedenoise.inference.tensorrt_engine import unavailable
from livedenoise.model import ModelCard, Normalization, build_model, preset, save_model

SLOW_SECONDS = 5.0


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return (
        f"{cpu}, {torch.get_num_threads()} torch threads, {gpu}; "
        f"torch {torch.__version__}, onnxruntime {ort.__version__}"
    )


def backends(model: Path, window: int, compile: bool) -> dict[str, Callable[[int], Engine]]:
    """Engine factories by label, each given the frame size; only those that can run here."""
    cache = default_cache_dir()
    made: dict[str, Callable[[int], Engine]] = {
        "torch eager": lambda s: load_engine(model, "torch", window=window, frame_size=(s, s)),
        "onnxruntime": lambda s: load_engine(
            model, "onnxruntime", window=window, frame_size=(s, s), cache_dir=cache
        ),
    }
    if compile:
        made["torch compiled"] = lambda s: load_engine(model, "torch", compile=True)
    if unavailable() is None:
        for precision in ("fp16", "fp32"):
            made[f"tensorrt {precision}"] = lambda s, p=precision: load_engine(
                model, "tensorrt", window=window, frame_size=(s, s), cache_dir=cache, precision=p
            )
    return made


def median_seconds(engine: Engine, x: np.ndarray, repeats: int, warm_up: bool) -> float:
    if warm_up:
        engine.denoise(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.denoise(x)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="small,paper")
    parser.add_argument("--sizes", default="256,512,1024", help="frame sides, pixels")
    parser.add_argument("--frames", default="1,8,16", help="window lengths T")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip longer calls")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown too")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    frames = [int(t) for t in args.frames.split(",")]
    console = Console()
    console.print(f"machine: {machine()}")

    columns = (
        "preset",
        "H x W",
        "T",
        "backend",
        "ms / window",
        "ms / frame",
        "frames / s",
        "vs torch eager",
    )
    rows: list[tuple[str, ...]] = []
    for name in args.presets.split(","):
        cfg = preset(name)
        with tempfile.TemporaryDirectory() as tmp:
            model = Path(tmp) / name
            card = ModelCard(
                name=f"bench-{name}", config=cfg, normalization=Normalization(scale=4095)
            )
            save_model(build_model(cfg, seed=0), card, model)
            per_value: dict[
                str, float
            ] = {}  # seconds per frame pixel, for predicting the next case
            for size in sizes:
                engines = {
                    label: make(size)
                    for label, make in backends(model, max(frames), args.compile).items()
                }
                for t in frames:
                    x = np.random.default_rng(0).integers(0, 4096, (t, size, size), dtype=np.uint16)
                    seconds: dict[str, float] = {}
                    for label, engine in engines.items():
                        predicted = per_value.get(label, 0.0) * t * size * size
                        if predicted > args.max_seconds:
                            rows.append(
                                (
                                    name,
                                    f"{size}²",
                                    str(t),
                                    label,
                                    f"skipped (~{predicted:.0f} s)",
                                    "",
                                    "",
                                    "",
                                )
                            )
                            continue
                        slow = predicted > SLOW_SECONDS
                        s = median_seconds(engine, x, 1 if slow else args.repeats, warm_up=not slow)
                        seconds[label] = s
                        per_value[label] = s / (t * size * size)
                        tiled = engine.tiling(t, size, size)
                        note = f" (tiles of {tiled.tile})" if tiled else ""
                        ratio = seconds.get("torch eager", float("nan")) / s
                        rows.append(
                            (
                                name,
                                f"{size}²",
                                str(t),
                                label + note,
                                f"{s * 1e3:.0f}",
                                f"{s / t * 1e3:.1f}",
                                f"{t / s:.2f}",
                                "" if np.isnan(ratio) else f"{ratio:.2f}x",
                            )
                        )
                        console.log(f"{name} {size}² T={t} {label}: {s * 1e3:.0f} ms per window")
    table = Table(title="CNNT engines: one call of Engine.denoise on a window of T uint16 frames")
    for col in columns:
        table.add_column(col, justify="right")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    if args.markdown:
        print("| " + " | ".join(columns) + " |")
        print("|" + " --- |" * len(columns))
        for row in rows:
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
