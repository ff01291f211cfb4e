"""Speed as a user meets it: whole ``livedenoise`` commands, timed from the shell's side.

    nice python scripts/bench_user.py [--model backbone-small] [--frames 32] [--size 512]

* start-up: ``livedenoise --help`` and ``--version`` (median of 3);
* first use: ``denoise`` of one frame with an empty engine cache (``LIVEDENOISE_CACHE`` set to a new
  folder, so the model is exported to ONNX) against the same command with that cache warm;
* offline: ``denoise`` of ``--frames`` frames at window 1 and 8, ONNX Runtime, threads by the default
  rule, cache warm: the whole command (start-up, reading, engine, writing), frames per second in all,
  and after start-up (the warm one-frame command's time taken off the time, one frame off the count).

Frames are Poisson noise over a smooth pattern (the content does not change the cost). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def command() -> list[str]:
    """The installed ``livedenoise`` beside this interpreter, else ``python -m livedenoise``."""
    script = Path(sys.executable).with_name("livedenoise")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "livedenoise"]


def timed(args: list[str], env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of one command, and its output; a failure stops the benchmark."""
    start = time.perf_counter()
    result = subprocess.run(command() + args, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"livedenoise {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return seconds, result.stdout


def frames(n: int, size: int) -> np.ndarray:
    yy, xx = np.mgrid[:size, :size] / size
    pattern = 40 + 30 * np.sin(9 * xx) * np.cos(7 * yy) ** 2
    return np.random.default_rng(0).poisson(pattern, (n, size, size)).astype(np.uint16)


def denoise(model: str, input: Path, output: Path, window: int) -> list[str]:
    return [
        "denoise",
        model,
        str(input),
        str(output),
        "--backend",
        "onnxruntime",
        "-t",
        str(window),
    ]


def engine_line(output: str) -> str:
    return next((line for line in output.splitlines() if line.startswith("engine:")), "?")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="backbone-small")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    args = parser.parse_args()
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = dict(os.environ, LIVEDENOISE_CACHE=str(folder / "cache"), COLUMNS="200")
        for option in ("--help", "--version"):
            times = [timed([option], env)[0] for _ in range(3)]
            rows.append((f"`livedenoise {option}`", f"{statistics.median(times):.2f} s"))

        one = folder / "one.npy"
        np.save(one, frames(1, args.size))
        cold, output = timed(denoise(args.model, one, folder / "a.npy", 1), env)
        warm, _ = timed(denoise(args.model, one, folder / "b.npy", 1), env)
        said = "exporting" in output
        rows.append(
            (
                f"first use: `denoise` of one {args.size}² frame, empty cache",
                f"{cold:.1f} s ({warm:.1f} s warm: {cold - warm:.1f} s extra; "
                f"export line printed: {'yes' if said else 'no'})",
            )
        )

        stack = folder / "stack.npy"
        np.save(stack, frames(args.frames, args.size))
        for window in (1, 8):
            out = folder / f"out{window}.npy"
            seconds, output = timed(denoise(args.model, stack, out, window), env)
            rows.append(
                (
                    f"`denoise` {args.frames} x {args.size}², window {window}",
                    f"{seconds:.1f} s: {args.frames / seconds:.2f} frames/s in all, "
                    f"{(args.frames - 1) / (seconds - warm):.2f} after start-up "
                    f"({engine_line(output).removeprefix('engine: ')})",
                )
            )
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} at the end\n")
    print("| what | time |\n| --- | --- |")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
