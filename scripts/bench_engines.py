"""Engine benchmark: ms per frame and frames per second of every backend that runs here.

    python scripts/bench_engines.py [--presets small,paper] [--sizes 256,512,1024] [--frames 1,8,16]
                                    [--repeats 3] [--max-seconds 60] [--compile] [--markdown]
                                    [--backends LABEL,...] [--json PATH]

Each case is one call of ``Engine.denoise`` on a window of T uint16 frames of H x W pixels, through the
same interface the live pipeline uses (normalisation, and tiling where a window exceeds memory). Times are
over ``--repeats`` calls after a warm-up call (p50 and p99 of the call, divided by T for per-frame
figures; frames per second from the p50); a case predicted (from the backend's last case) to take over
5 s gets no warm-up and one call, and one predicted over ``--max-seconds`` is skipped, so a full CPU run
ends in minutes. The ratio is torch eager's p50 over the backend's, measured in the same run. On an NVIDIA
GPU torch eager runs float32 on the GPU, the CUDA engine FP16 and BF16 (``--compile`` adds FP16 under
torch.compile), and TensorRT, where installed, FP16 and FP32 (one engine per frame size, built for the
largest T). ``--backends`` keeps only the labels named; ``--json`` also writes the rows.
"""

from __future__ import annotations

import argparse
import json
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
    if torch.cuda.is_available():
        for precision in ("fp16", "bf16"):
            made[f"cuda {precision}"] = lambda s, p=precision: load_engine(
                model, "cuda", precision=p
            )
        if compile:
            made["cuda fp16 compiled"] = lambda s: load_engine(model, "cuda", compile=True)
    if unavailable() is None:
        for precision in ("fp16", "fp32"):
            made[f"tensorrt {precision}"] = lambda s, p=precision: load_engine(
                model, "tensorrt", window=window, frame_size=(s, s), cache_dir=cache, precision=p
            )
    return made


def call_seconds(engine: Engine, x: np.ndarray, repeats: int, warm_up: bool) -> list[float]:
    """Seconds of each of ``repeats`` calls on ``x``, after one untimed call if ``warm_up``."""
    if warm_up:
        engine.denoise(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        engine.denoise(x)
        times.append(time.perf_counter() - start)
    return times


def percentile(times: list[float], q: float) -> float:
    return float(np.percentile(times, q))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="small,paper")
    parser.add_argument("--sizes", default="256,512,1024", help="frame sides, pixels")
    parser.add_argument("--frames", default="1,8,16", help="window lengths T")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip longer calls")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile")
    parser.add_argument("--backends", help="only these labels, comma-separated (default: all)")
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown too")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    frames = [int(t) for t in args.frames.split(",")]
    wanted = set(args.backends.split(",")) if args.backends else None
    console = Console()
    console.print(f"machine: {machine()}")

    columns = {
        "preset": "preset",
        "size": "H x W",
        "frames": "T",
        "backend": "backend",
        "ms_per_window_p50": "ms / window",
        "ms_per_frame_p50": "ms / frame p50",
        "ms_per_frame_p99": "ms / frame p99",
        "frames_per_s": "frames / s",
        "vs_torch_eager": "vs torch eager",
    }
    rows: list[dict[str, object]] = []
    for name in args.presets.split(","):
        cfg = preset(name)
        with tempfile.TemporaryDirectory() as tmp:
            model = Path(tmp) / name
            card = ModelCard(
                name=f"bench-{name}", config=cfg, normalization=Normalization(scale=4095)
            )
            save_model(build_model(cfg, seed=0), card, model)
            per_value: dict[str, float] = {}  # seconds per frame pixel, to predict the next case
            made = backends(model, max(frames), args.compile)
            for size in sizes:
                engines: dict[str, Engine] = {}  # the last size's engines go before new ones come
                engines = {
                    label: make(size)
                    for label, make in made.items()
                    if wanted is None or label in wanted
                }
                for t in frames:
                    x = np.random.default_rng(0).integers(0, 4096, (t, size, size), dtype=np.uint16)
                    p50s: dict[str, float] = {}
                    for label, engine in engines.items():
                        case = {"preset": name, "size": f"{size}²", "frames": t, "backend": label}
                        predicted = per_value.get(label, 0.0) * t * size * size
                        if predicted > args.max_seconds:
                            rows.append({**case, "skipped": f"~{predicted:.0f} s"})
                            continue
                        slow = predicted > SLOW_SECONDS
                        times = call_seconds(engine, x, 1 if slow else args.repeats, not slow)
                        p50 = statistics.median(times)
                        p50s[label] = p50
                        per_value[label] = p50 / (t * size * size)
                        tiled = engine.tiling(t, size, size)
                        ratio = p50s.get("torch eager", float("nan")) / p50
                        rows.append(
                            {
                                **case,
                                "engine": engine.describe(),
                                "tile": tiled.tile if tiled else None,
                                "calls": len(times),
                                "ms_per_window_p50": p50 * 1e3,
                                "ms_per_frame_p50": p50 / t * 1e3,
                                "ms_per_frame_p99": percentile(times, 99) / t * 1e3,
                                "frames_per_s": t / p50,
                                "vs_torch_eager": None if np.isnan(ratio) else ratio,
                            }
                        )
                        console.log(f"{name} {size}² T={t} {label}: {p50 * 1e3:.0f} ms per window")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "rows": rows}, indent=2) + "\n")
    text = [[cell(row, key) for key in columns] for row in rows]
    table = Table(title="CNNT engines: one call of Engine.denoise on a window of T uint16 frames")
    for col in columns.values():
        table.add_column(col, justify="right")
    for row in text:
        table.add_row(*row)
    console.print(table)
    if args.markdown:
        print("| " + " | ".join(columns.values()) + " |")
        print("|" + " --- |" * len(columns))
        for row in text:
            print("| " + " | ".join(row) + " |")


def cell(row: dict[str, object], key: str) -> str:
    """A row's value as the table shows it: skipped cases say so, numbers to 3 significant digits."""
    value = row.get(key)
    if key == "backend" and row.get("tile"):
        return f"{value} (tiles of {row['tile']})"
    if key == "ms_per_window_p50" and "skipped" in row:
        return f"skipped ({row['skipped']})"
    if value is None:
        return ""
    if key == "vs_torch_eager":
        return f"{value:.2f}x"
    if isinstance(value, float):
        return f"{value:.0f}" if value >= 100 else f"{value:.3g}"
    return str(value)


if __name__ == "__main__":
    main()
