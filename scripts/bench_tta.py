"""What test-time augmentation (the x8 self-ensemble, ``livedenoise denoise --tta``) adds, and costs.

    python scripts/bench_tta.py [--model backbone-small] [--backend onnxruntime] [--threads 2]

On the data held out of the backbone's training, loaded as ``scripts/bench_quality.py`` loads it
(its ``load_field``; ``--data``, default ../shared/data): the three held-out FMD configurations (4 raw
frames each against the 50-frame average), W2S fields 71-80 channel 0 (central 256 px, one raw frame
against the 400-frame average per field) and the Hagen pair actin-60x-noise1 (central 512 px). Each
frame's right half, bench_quality's test part, is denoised by the model as a window of one frame,
plain and with ``tta`` (``load_engine(..., tta=True)``), and scored with livedenoise.metrics.quality
(PSNR and SSIM after an affine fit). Time per frame: the wall time of denoising the configuration's
frames, divided by the frames, the best of 3 runs, plain and TTA taking turns (a shared machine's
load moves it; the best of 3 moves less).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import platform
import shlex
import sys
import time
import types
from pathlib import Path

import numpy as np

from livedenoise.inference import Engine, denoise_stack, load_engine

SCRIPTS = Path(__file__).resolve().parent
REPEATS = 3


def _script(name: str) -> types.ModuleType:
    """A sibling script as a module (scripts/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench_quality = _script("bench_quality")


def timed(engines: dict[bool, Engine], frames: np.ndarray) -> dict[bool, tuple[np.ndarray, float]]:
    """``frames`` denoised one by one by each engine, and its best seconds per frame over
    ``REPEATS`` runs, the engines taking turns (after a warm-up frame each), so that a change in
    the machine's load falls on both."""
    for engine in engines.values():
        engine.denoise(frames[:1])
    best = dict.fromkeys(engines, float("inf"))
    outputs = {}
    for _ in range(REPEATS):
        for tta, engine in engines.items():
            start = time.perf_counter()
            outputs[tta] = denoise_stack(engine, frames, window=1)
            best[tta] = min(best[tta], (time.perf_counter() - start) / len(frames))
    return {tta: (outputs[tta], best[tta]) for tta in engines}


def cpu_model() -> str:
    """The CPU's name, as Linux gives it (else the architecture)."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    return names[0] if names else platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="backbone-small")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--data", type=Path, default=bench_quality.DATA)
    parser.add_argument("--configs", nargs="+", default=list(bench_quality.DEFAULT_CONFIGS))
    args = parser.parse_args()
    print(f"$ python {shlex.join(['scripts/bench_tta.py', *sys.argv[1:]])}")
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{stamp}; {cpu_model()}, {os.cpu_count()} CPUs, load {load}")
    rows = []
    for name in args.configs:
        field = bench_quality.load_field(args.data, name)
        frames, clean = field.test_noisy, field.test_clean
        engines = {
            tta: load_engine(
                args.model,
                args.backend,
                window=1,
                frame_size=frames.shape[1:],
                threads=args.threads,
                tta=tta,
            )
            for tta in (False, True)
        }
        results = timed(engines, frames)
        scores = {tta: bench_quality.score(out, clean) for tta, (out, _) in results.items()}
        seconds = {tta: best for tta, (_, best) in results.items()}
        engine = engines[True]
        shape = "x".join(map(str, frames.shape))
        rows.append((name, shape, scores, seconds))
        print(
            f"  {name} ({shape}): {scores[False].psnr:.2f} -> {scores[True].psnr:.2f} dB",
            flush=True,
        )
    print(f"\nengine: {engine.describe()}\n")
    print(
        "| configuration (test half, T x H x W) | backbone PSNR / SSIM | + TTA PSNR / SSIM "
        "| gain (dB) | ms per frame | + TTA ms per frame |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, shape, scores, seconds in rows:
        plain, tta = scores[False], scores[True]
        print(
            f"| {name} ({shape}) | {plain.psnr:.2f} / {plain.ssim:.3f} | {tta.psnr:.2f} / "
            f"{tta.ssim:.3f} | {tta.psnr - plain.psnr:+.2f} | {seconds[False] * 1e3:.0f} | "
            f"{seconds[True] * 1e3:.0f} ({seconds[True] / seconds[False]:.1f}x) |"
        )
    gain = np.mean([s[True].psnr - s[False].psnr for _, _, s, _ in rows])
    ratio = sum(t[True] for *_, t in rows) / sum(t[False] for *_, t in rows)
    print(f"| mean over {len(rows)} | | | {gain:+.2f} | | {ratio:.1f}x, summed |")


if __name__ == "__main__":
    main()
