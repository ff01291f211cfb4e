"""Speed as a user meets it: whole ``livedenoise`` commands, timed from the shell's side.

    nice python scripts/bench_user.py [--model backbone-small] [--frames 32] [--size 512]
                                      [--parts startup,first,offline,live] [--live-seconds 30]
                                      [--headless]

* start-up: ``livedenoise --help`` and ``--version`` (median of 3);
* first use: ``denoise`` of one frame with an empty engine cache (``LIVEDENOISE_CACHE`` set to a new
  folder, so the model is exported to ONNX) against the same command with that cache warm;
* offline: ``denoise`` of ``--frames`` frames at window 1 and 8, ONNX Runtime, threads by the default
  rule, cache warm: the whole command (start-up, reading, engine, writing), frames per second in all,
  and after start-up (the warm one-frame command's time taken off the time, one frame off the count);
* live: live mode on the simulated microscope (``--size``² frames at its 15 fps), the live policy,
  ONNX Runtime, threads by the default rule, at window 1 (live mode's default) and 4, as ``acquire``
  runs it, in the viewer (offscreen without a display; ``--headless``: without it): latency p50/p99
  from a raw frame's arrival to its denoised frame, what it is made of (mean wait in the ring,
  window assembly, engine call, display; the same call once the run is over, for what the camera
  and writer threads cost it), frames denoised and acquired per second, skipped and lost.

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
from typing import Any

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


def offline(
    args: argparse.Namespace, folder: Path, env: dict[str, str], first: bool, stack: bool
) -> list[tuple[str, str]]:
    """First use (empty cache against warm) and ``denoise`` of a stack at window 1 and 8."""
    rows: list[tuple[str, str]] = []
    one = folder / "one.npy"
    np.save(one, frames(1, args.size))
    cold, output = timed(denoise(args.model, one, folder / "a.npy", 1), env)
    warm, _ = timed(denoise(args.model, one, folder / "b.npy", 1), env)
    if first:
        said = "exporting" in output
        rows.append(
            (
                f"first use: `denoise` of one {args.size}² frame, empty cache",
                f"{cold:.1f} s ({warm:.1f} s warm: {cold - warm:.1f} s extra; "
                f"export line printed: {'yes' if said else 'no'})",
            )
        )
    path = folder / "stack.npy"
    np.save(path, frames(args.frames, args.size))
    for window in (1, 8) if stack else ():
        out = folder / f"out{window}.npy"
        seconds, output = timed(denoise(args.model, path, out, window), env)
        rows.append(
            (
                f"`denoise` {args.frames} x {args.size}², window {window}",
                f"{seconds:.1f} s: {args.frames / seconds:.2f} frames/s in all, "
                f"{(args.frames - 1) / (seconds - warm):.2f} after start-up "
                f"({engine_line(output).removeprefix('engine: ')})",
            )
        )
    return rows


def in_viewer(acquisition: Any, seconds: float) -> Counts:
    """Live mode in the viewer (Qt's offscreen platform without a display), ``seconds`` long;
    frames denoised and acquired by then."""
    if not os.environ.get("DISPLAY"):
        os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from qtpy.QtCore import QEventLoop, QTimer
    from qtpy.QtWidgets import QApplication

    from livedenoise.gui.main_window import LiveWindow

    app = QApplication.instance() or QApplication([])
    window = LiveWindow(acquisition)
    window.show()
    window.live_button.setChecked(True)
    loop = QEventLoop()
    QTimer.singleShot(round(seconds * 1000), loop.quit)
    loop.exec()
    counts = counted(acquisition)
    window.live_button.setChecked(False)  # stops live mode and waits for its store to close
    window.close()
    app.processEvents()
    return counts


Counts = tuple[int, int, list[float]]


def counted(acquisition: Any) -> Counts:
    """Frames denoised and acquired so far, and the latencies (s) of those denoised: the frame
    denoised once live mode stops waited for the call before it, and is not live."""
    stats = acquisition.pipeline.stats
    return stats.denoised, stats.acquired, list(stats.latencies_s)


def live(model: str, window: int, seconds: float, size: int, folder: Path, viewer: bool) -> str:
    """One live-mode run of ``seconds``, as ``acquire`` runs it (in the viewer, or headless);
    one table cell."""
    from livedenoise.app import Acquisition, RunRequest, open_microscope

    core = open_microscope(None, [f"Detector.FrameWidth={size}", f"Detector.FrameHeight={size}"])
    request = RunRequest(model=model, backend="onnxruntime", window=window, out_dir=folder)
    acquisition = Acquisition(core, request)
    try:
        if viewer:
            denoised, acquired, latencies = in_viewer(acquisition, seconds)
        else:
            acquisition.start_live()
            time.sleep(seconds)
            denoised, acquired, latencies = counted(acquisition)
            acquisition.stop_acquiring()
        summary = acquisition.wait()
    finally:
        acquisition.close()
    engine = acquisition.loaded_engine
    assert summary is not None and engine is not None
    window_frames = np.asarray(frames(window, size))
    alone = []
    for _ in range(3):  # the same engine with nothing else in this process: the camera's share
        start = time.perf_counter()
        engine.denoise(window_frames)
        alone.append(time.perf_counter() - start)
    stage = summary.stage_mean_ms
    parts = ", ".join(
        f"{name} {stage[name]:.0f}"
        for name in ("wait", "window", "engine", "display")
        if name in stage
    )
    p50, p99 = np.percentile(latencies, [50, 99]) if latencies else (np.nan, np.nan)
    return (
        f"latency p50 {p50:.2f} s, p99 {p99:.2f} s (mean ms: {parts}; the engine alone "
        f"{1e3 * statistics.median(alone):.0f}); denoised {denoised / seconds:.2f} fps, "
        f"acquired {acquired / seconds:.1f} fps; skipped {summary.skipped}, lost "
        f"{summary.dropped} ({engine.describe()})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="backbone-small")
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--parts", default="startup,first,offline,live")
    parser.add_argument("--live-seconds", type=float, default=30.0)
    parser.add_argument("--headless", action="store_true", help="live mode without the viewer")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        env = dict(os.environ, LIVEDENOISE_CACHE=str(folder / "cache"), COLUMNS="200")
        for window in (1, 4) if "live" in parts else ():
            runs = folder / "runs"
            cell = live(args.model, window, args.live_seconds, args.size, runs, not args.headless)
            rows.append((f"live mode {args.size}², window {window}", cell))
            print(rows[-1], flush=True)
        for option in ("--help", "--version") if "startup" in parts else ():
            times = [timed([option], env)[0] for _ in range(3)]
            rows.append((f"`livedenoise {option}`", f"{statistics.median(times):.2f} s"))

        if parts & {"first", "offline"}:
            rows += offline(args, folder, env, first="first" in parts, stack="offline" in parts)
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"{os.cpu_count()} CPUs, load average {load} at the end\n")
    print("| what | time |\n| --- | --- |")
    for what, value in rows:
        print(f"| {what} | {value} |")


if __name__ == "__main__":
    main()
