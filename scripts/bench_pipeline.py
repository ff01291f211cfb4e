"""Pipeline benchmark: what the pipeline itself costs per frame, and the fastest rate it sustains.

    python scripts/bench_pipeline.py [--frames 200] [--sizes 512,2048]

The engine is an identity (it returns its input), so the figures exclude model time: they are the
ring copy, window assembly, hand-over between threads and OME-Zarr writes of raw and denoised frames.
Frames are Poisson noise over a smooth pattern (microscope-like for the compressor), fed by a producer
thread at a fixed rate, as a camera would. "Sustained" means every raw frame reached disk and was
denoised with a ring of 32 frames, at the rate asked, over the whole run.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from livedenoise.frames import FrameIndex, RunLayout
from livedenoise.pipeline.live import LivePipeline, Policy
from livedenoise.pipeline.ring import FrameRing
from livedenoise.pipeline.windows import WindowAssembler
from livedenoise.storage import RunStore


class IdentityEngine:
    """Returns its input: the pipeline's cost without a model."""

    def denoise(self, window: np.ndarray) -> np.ndarray:
        return window.astype(np.float32)


def make_frames(size: int, n: int = 8) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:size, 0:size] / size
    signal = 200 + 150 * np.sin(12 * xx) * np.cos(9 * yy)
    return [(100 + rng.poisson(signal)).astype(np.uint16) for _ in range(n)]


def run_once(size: int, frames: int, fps: float | None, ring_frames: int = 32) -> dict:
    """Feed ``frames`` frames at ``fps`` (None: as fast as possible) and return the run's summary."""
    pool = make_frames(size)
    with tempfile.TemporaryDirectory() as tmp:
        layout = RunLayout(height=size, width=size, dtype="uint16", timepoints=frames)
        store = RunStore(Path(tmp) / "bench.ome.zarr", layout, {})
        ring = FrameRing(ring_frames, (size, size), "uint16")
        pipe = LivePipeline(IdentityEngine(), store, ring, WindowAssembler(4, "t"), Policy.record)
        put_s: list[float] = []

        def produce() -> None:
            start = time.perf_counter()
            for t in range(frames):
                if fps:
                    delay = start + t / fps - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                t0 = time.perf_counter()
                pipe.put_frame(pool[t % len(pool)], FrameIndex(t, 0, 0, 0))
                put_s.append(time.perf_counter() - t0)

        pipe.start()
        producer = threading.Thread(target=produce)
        producer.start()
        producer.join()
        summary = pipe.finish().model_dump()
    summary["put_us"] = 1e6 * float(np.median(put_s))
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200)
    parser.add_argument("--sizes", default="512,2048")
    args = parser.parse_args()
    console = Console(width=150)
    console.print(
        f"machine: {platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    )

    overhead = Table(
        title="Pipeline overhead per frame (identity engine, uint16, record policy, 10 fps)"
    )
    for col in ("frame", "put (acq. thread) µs", "latency p50 ms", "p99 ms", "write ms", "dropped"):
        overhead.add_column(col, justify="right")
    sustained = Table(title="Highest rate sustained with zero raw frames lost (ring of 32 frames)")
    for col in ("frame", "rate asked fps", "acquired fps", "denoised", "dropped", "sustained"):
        sustained.add_column(col, justify="right")

    for size in (int(s) for s in args.sizes.split(",")):
        s = run_once(size, min(args.frames, 50), fps=10)
        overhead.add_row(
            f"{size}²",
            f"{s['put_us']:.0f}",
            f"{s['latency_p50_ms']:.1f}",
            f"{s['latency_p99_ms']:.1f}",
            f"{s['stage_mean_ms']['write']:.1f}",
            str(s["dropped"]),
        )
        best = None
        rate = 5.0
        while rate <= 3200:
            s = run_once(size, args.frames, fps=rate)
            ok = s["dropped"] == 0 and s["denoised"] == args.frames
            sustained.add_row(
                f"{size}²",
                f"{rate:.0f}",
                f"{s['acquired_fps']:.0f}",
                str(s["denoised"]),
                str(s["dropped"]),
                "yes" if ok else "no",
            )
            console.log(f"{size}² at {rate:.0f} fps: dropped {s['dropped']}")
            if not ok:
                break
            best = rate
            rate *= 2
        console.log(f"{size}²: highest sustained rate {best} fps")
    console.print(overhead)
    console.print(sustained)


if __name__ == "__main__":
    main()
