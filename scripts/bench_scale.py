"""Scale benchmark: chunked (Dask) denoising against the single-process path on recordings of gigabytes.

    python scripts/bench_scale.py [--gb 2.0] [--frame 512] [--model tiny] [--window 4]
                                  [--block-frames 16] [--workers 1,2] [--backend onnxruntime]
                                  [--work DIR] [--keep] [--skip-single] [--model-frames 32]
                                  [--threads N] [--json PATH]

Two synthetic inputs of uint16 frames share ``--gb`` (1e9 bytes, uncompressed): a time series (an NGFF
image, ``series.ome.zarr``) and a tiled z-stack (a run store of a 2x2 grid of stage positions,
``tiles.ome.zarr``). Both are written frame by frame, never whole in memory. Frames are Gaussian blobs
under Poisson noise: noise compresses poorly, as camera frames do, so the I/O is realistic. With
``--keep`` the inputs stay in ``--work`` and a later run there reuses them.

Each input is denoised by the single-process path (``denoise_file`` in a child process: it reads the
whole input into memory, which is what the chunked path avoids), by ``denoise_chunked`` on a local
cluster of each ``--workers`` count, and by the ``livedenoise denoise --workers`` command with the
largest count, killed (SIGKILL) once half its blocks are done and then run again: that rerun's time,
beside the full run's, is the cost of resuming. Wall times include start-up ("start s": until the
process has read its input and loaded its engine, or the cluster is up and its first worker has loaded
its engine; the other workers load theirs in their first block); the rerun's also includes the
command's imports, so the notes compare the time after start-up.

Peak RSS is per process, from ``/proc`` (VmHWM): the single path's child reads its own at the end, the
Dask workers' is polled every 0.25 s (their memory is steady from block to block), which also sees
workers that computed no block. ``ChunkedResult.peak_rss`` (each worker's VmHWM at the end of its
blocks) is kept in the JSON as ``reported_peak_rss_gb``, a check on the polled figure.

The default model ``tiny`` is a CNNT of width 1 with random weights and percentile normalisation, so
the figures are the chunked machinery's, I/O's and memory's more than the network's (even so a CNNT
of any width costs about 0.2 s per 512x512 frame on one CPU thread). ``--model-frames`` also times
``backbone-small`` on the single-process path over the first frames of the series, for its seconds
per frame: the figure to size a cluster with. Engine threads follow livedenoise's rule (physical
cores, fewer under load, ``OMP_NUM_THREADS`` wins; the workers share them); ``--threads`` fixes them
so that runs on a busy machine compare.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

# Dask spawns its worker processes, which import this file again: the livedenoise, torch and zarr
# imports stay inside functions so a worker's memory is what the chunked path itself needs.

RESULT = "BENCH_SCALE_RESULT "
"""Prefix of the line a child process reports its timings on."""

GRID = (2, 2)  # stage positions of the tiled z-stack
TINY = "tiny"


# -- synthetic data ----------------------------------------------------------------------------------


class Scene:
    """Fluorescent blobs, drifting in time or in and out of focus along z, under Poisson noise.

    Frame ``k`` depends only on the seed and ``k``, costs a small matrix product and one Poisson draw,
    so gigabytes are generated frame by frame and regenerated identically.
    """

    def __init__(self, size: int, frames: int, seed: int, z_stack: bool, blobs: int = 24) -> None:
        rng = np.random.default_rng(seed)
        self.size, self.seed = size, seed
        self.y, self.x = rng.uniform(0, size, (2, blobs))
        self.sigma = rng.uniform(size / 80 + 1, size / 20 + 2, blobs)
        self.amplitude = rng.uniform(100, 1500, blobs)
        self.velocity = np.zeros((2, blobs)) if z_stack else rng.normal(0, 0.3, (2, blobs))
        self.focus = rng.uniform(0, frames, blobs) if z_stack else None
        self.depth = max(frames / 6, 1.0)
        self.grid = np.arange(size, dtype=np.float32)

    def frame(self, k: int) -> np.ndarray:
        gain = self.amplitude
        if self.focus is not None:
            gain = gain * np.exp(-0.5 * ((k - self.focus) / self.depth) ** 2)
        y = (self.y + self.velocity[0] * k) % self.size
        x = (self.x + self.velocity[1] * k) % self.size
        gy = np.exp(-0.5 * ((self.grid[None] - y[:, None]) / self.sigma[:, None]) ** 2)
        gx = np.exp(-0.5 * ((self.grid[None] - x[:, None]) / self.sigma[:, None]) ** 2)
        signal = 100.0 + (gy.T * gain) @ gx
        return np.random.default_rng((self.seed, k)).poisson(signal).astype(np.uint16)


def write_series(path: Path, frames: int, size: int) -> None:
    """A TYX uint16 NGFF image, written a batch of frames at a time (one chunk per frame)."""
    from livedenoise.imageio import Image, create_zarr

    shape = (frames, size, size)
    like = Image(
        np.broadcast_to(np.zeros((), np.uint16), shape),  # create_zarr reads only the shape
        "TYX",
        scale={"T": 0.1, "Y": 0.5, "X": 0.5},
        units={"T": "second", "Y": "micrometer", "X": "micrometer"},
    )
    array = create_zarr(path, like, np.dtype(np.uint16), (0.0, 2000.0))
    scene = Scene(size, frames, seed=0, z_stack=False)
    for start in range(0, frames, 16):
        stop = min(start + 16, frames)
        array[start:stop] = np.stack([scene.frame(k) for k in range(start, stop)])


def write_tiles(path: Path, slices: int, size: int) -> None:
    """A run store of GRID stage positions (10% overlap), each a z-stack, as an acquisition writes it."""
    from livedenoise.frames import FrameIndex, FrameInfo, RunLayout
    from livedenoise.storage import RunStore

    px, step = 0.5, 0.5
    store = RunStore(path, RunLayout(slices=slices, pixel_size_um=px, z_step_um=step), {})
    seq = 0
    for p, (row, col) in enumerate(np.ndindex(*GRID)):
        scene = Scene(size, slices, seed=1 + p, z_stack=True)
        centre = ((col + 0.5) * 0.9 * size * px, (row + 0.5) * 0.9 * size * px)
        for z in range(slices):
            info = FrameInfo(
                seq,
                FrameIndex(0, p, 0, z),
                seq * 0.01,
                (*centre, z * step),
                {"channel": "FITC", "position": f"tile {row},{col}"},
            )
            store.write_raw(scene.frame(z), info)
            seq += 1
    store.close({"frames": seq, "denoised": 0})


def ensure_inputs(work: Path, frames: int, slices: int, size: int, log) -> dict[str, Path]:
    """The two inputs, written under a temporary name and renamed when whole; reused if they fit."""
    import zarr

    inputs = {}
    for name, writer, count, shape in (
        ("series", write_series, frames, (frames, size, size)),
        ("tiles", write_tiles, slices, (1, 1, slices, size, size)),
    ):
        path = work / f"{name}.ome.zarr"
        array = "0" if name == "series" else "raw/p0/0"
        try:
            reuse = zarr.open_array(path / array, mode="r").shape == shape
        except (FileNotFoundError, KeyError, ValueError, TypeError):
            reuse = False
        if reuse:
            log(f"reusing {path}")
        else:
            partial = work / f"{name}-partial.ome.zarr"
            for stale in (path, partial):
                shutil.rmtree(stale, ignore_errors=True)
            start = time.perf_counter()
            writer(partial, count, size)
            os.replace(partial, path)
            log(f"wrote {path} in {time.perf_counter() - start:.0f} s")
        inputs[name] = path
    return inputs


def frames_of(path: Path) -> int:
    """Frames the denoiser sees in an input: every plane of its (raw) images."""
    import zarr

    root = zarr.open_group(path, mode="r")
    arrays = [root["0"]] if "0" in root else [root[f"{n}/0"] for n in _raw_images(path)]
    return sum(math.prod(a.shape[:-2]) for a in arrays)


def _raw_images(path: Path) -> list[str]:
    from livedenoise.imageio import list_images

    return [n for n in list_images(path) if n.startswith("raw/")]


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


# -- the model ---------------------------------------------------------------------------------------


def tiny_model(folder: Path) -> Path:
    """A CNNT of width 1 (about 400 weights) with fixed random weights and percentile normalisation.

    Its weights are the same every run, so its ONNX export is cached across runs.
    """
    from livedenoise.model import CNNTConfig, ModelCard, Normalization, build_model, save_model

    config = CNNTConfig(
        stem_channels=1, block_channels=(1, 1, 1), cells_per_block=1, heads=1, mixer_ratio=1
    )
    card = ModelCard(
        name="bench-tiny",
        config=config,
        normalization=Normalization(method="percentile"),
        notes="random weights: scripts/bench_scale.py times the machinery, not the network",
    )
    path = folder / "bench-tiny"
    save_model(build_model(config, seed=0), card, path)
    return path


def warm_engine(model: str, backend: str, window: int, size: int) -> None:
    """Load the engine once here, so no timed run pays for the model's first ONNX export."""
    from livedenoise.inference import load_engine

    load_engine(model, backend, window=window, frame_size=(size, size))


# -- processes ---------------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = defaultdict(list)
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                stat = Path(entry.path, "stat").read_text()
            except OSError:
                continue
            kids[int(stat.rpartition(")")[2].split()[1])].append(int(entry.name))
    return kids


def descendants(pid: int) -> list[int]:
    kids, found, todo = _children(), [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    """Running (a zombie left to a parent that never reaps it counts as gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def high_water(pid: int) -> int:
    """Peak RSS of a running process in bytes (VmHWM), 0 if it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class Watcher(threading.Thread):
    """Polls the peak RSS of a process's descendants (its workers) until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peaks, self.stop = pid, defaultdict(int), threading.Event()

    def run(self) -> None:
        while not self.stop.wait(0.25):
            for child in descendants(self.pid):
                self.peaks[child] = max(self.peaks[child], high_water(child))


def livedenoise_command() -> list[str]:
    script = Path(sys.executable).with_name("livedenoise")
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-c", "from livedenoise.cli import main; main()"]


# -- the paths measured ------------------------------------------------------------------------------


def row(name: str, path: str, frames: int, size: int, wall: float, **extra) -> dict:
    """A table row; MB/s is uncompressed input bytes over the wall time."""
    gb = frames * size * size * 2 / 1e9
    return {
        "input": name,
        "path": path,
        "frames": frames,
        "gb": gb,
        "wall_s": wall,
        "frames_per_s": frames / wall if wall else math.nan,
        "mb_per_s": gb * 1e3 / wall if wall else math.nan,
        **extra,
    }


def threads_of(line: str) -> int | None:
    found = re.search(r"(\d+) (?:engine )?thread", line)
    return int(found.group(1)) if found else None


def run_single(args, model: str, input: Path, output: Path, log_path: Path) -> dict:
    """``denoise_file`` in a child process: wall time, and the child's own times and peak RSS."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child-single",
        str(input),
        str(output),
        "--model",
        model,
        "--window",
        str(args.window),
        "--backend",
        args.backend,
    ]
    launched = time.time()
    start = time.perf_counter()
    with open(log_path, "w") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        code = child.wait()
    wall = time.perf_counter() - start
    text = log_path.read_text()
    if code != 0:
        raise RuntimeError(f"single-process run failed ({code}):\n{text[-3000:]}")
    report = json.loads(
        next(li for li in text.splitlines()[::-1] if li.startswith(RESULT))[len(RESULT) :]
    )
    return {
        "wall": wall,
        "start_s": report["loaded_at"] - launched,
        "denoise_s": report["done_at"] - report["loaded_at"],
        "peak_rss": report["peak_rss"],
        "engine": report["engine"],
    }


def child_single(args) -> None:
    """The child's side of ``run_single``: denoise, then report when the engine was ready and done."""
    from livedenoise.app.denoising import denoise_file
    from livedenoise.events import Events

    loaded = {}

    def engine_line(line: str) -> None:
        if line.startswith("engine: "):
            loaded.update(engine=line.removeprefix("engine: "), loaded_at=time.time())

    events = Events()
    events.status.connect(engine_line)
    input, output = args.child_single
    denoise_file(args.model, input, output, backend=args.backend, window=args.window, events=events)
    done = {"done_at": time.time(), "peak_rss": high_water(os.getpid())}
    print(RESULT + json.dumps({**loaded, **done}), flush=True)


def run_dask(args, model: str, input: Path, output: Path, workers: int) -> dict:
    from livedenoise.app.chunked import denoise_chunked
    from livedenoise.events import Events

    seen: dict[str, object] = {}

    def line(text: str) -> None:  # the input, the cluster and the engine, in that order
        if text.startswith("engine: "):
            seen.setdefault("loaded", time.perf_counter())
        elif "Dask" in text:
            seen.setdefault("cluster", text)

    events = Events()
    events.status.connect(line)
    watcher = Watcher(os.getpid())  # the cluster's worker processes are this one's children
    watcher.start()
    start = time.perf_counter()
    result = denoise_chunked(
        model,
        input,
        output,
        backend=args.backend,
        window=args.window,
        workers=workers,
        block_frames=args.block_frames,
        events=events,
    )
    wall = time.perf_counter() - start
    watcher.stop.set()
    watcher.join()
    return {
        "wall": wall,
        "start_s": seen["loaded"] - start,
        "peak_rss": max(watcher.peaks.values(), default=0),
        "reported_peak_rss": max(result.peak_rss.values(), default=0),
        "threads": threads_of(str(seen.get("cluster", ""))),
        "blocks": result.blocks,
    }


def done_rows(output: Path) -> np.ndarray | None:
    """Which blocks the output marks done, or None before the output has its progress array."""
    import zarr

    from livedenoise.app.chunked import PROGRESS

    try:
        return np.asarray(zarr.open_array(output / PROGRESS, mode="r")[:, 0]) == 1.0
    except (FileNotFoundError, KeyError, ValueError, TypeError, OSError):
        return None


def run_resume(args, model: str, input: Path, output: Path, workers: int, work: Path) -> dict:
    """The command killed at half its blocks, its workers left to exit, then the same command timed."""
    from livedenoise.app.chunked import plan_blocks

    command = [
        *livedenoise_command(),
        "denoise",
        model,
        str(input),
        str(output),
        "--workers",
        str(workers),
        "--block-frames",
        str(args.block_frames),
        "--backend",
        args.backend,
        "-t",
        str(args.window),
    ]
    name = input.name.split(".")[0]
    start = time.perf_counter()
    with open(work / f"resume-{name}-killed.log", "w") as log:
        first = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    done = None
    while first.poll() is None:
        done = done_rows(output)
        if done is not None and done.sum() * 2 >= len(done):
            break
        time.sleep(0.2)
    killed_after = time.perf_counter() - start
    finished_first = first.poll() is not None
    workers_pids = descendants(first.pid)
    first.send_signal(signal.SIGKILL)
    first.wait()
    deadline = time.monotonic() + 60
    while any(map(alive, workers_pids)) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = [pid for pid in workers_pids if alive(pid)]
    exited_s = time.perf_counter() - start - killed_after
    for pid in left:  # workers of our own command that outlived their client by a minute
        os.kill(pid, signal.SIGKILL)
    before = done_rows(output)
    if before is None:
        raise RuntimeError(f"{output}: the killed run left no progress; see its log in {work}")
    blocks, _, _ = plan_blocks(input, None, 1, args.block_frames)
    frames = sum(
        b.stop - b.start for b, ok in zip(blocks, before, strict=True) if b.denoise and not ok
    )

    log_path = work / f"resume-{name}-rerun.log"
    loaded = math.nan
    start = time.perf_counter()
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    watcher = Watcher(second.pid)
    watcher.start()
    with open(log_path, "w") as log:
        for line in second.stdout:  # the command prints "engine: ..." once it has loaded
            if line.startswith("engine:") and math.isnan(loaded):
                loaded = time.perf_counter() - start
            log.write(line)
    code = second.wait()
    wall = time.perf_counter() - start
    watcher.stop.set()
    watcher.join()
    text = log_path.read_text()
    after = done_rows(output)
    if code != 0 or after is None or not after.all():
        raise RuntimeError(f"the resumed run did not finish ({code}):\n{text[-3000:]}")
    return {
        "wall": wall,
        "start_s": loaded,
        "frames": frames,
        "peak_rss": max(watcher.peaks.values(), default=0),
        "threads": threads_of(text.partition("local Dask cluster")[2].partition("\n")[0]),
        "blocks": len(before),
        "done_before": int(before.sum()),
        "killed_after_s": killed_after,
        "finished_before_kill": finished_first,
        "workers_exited_s": exited_s,
        "workers_left": len(left),
    }


def measure(args, model: str, name: str, input: Path, work: Path, size: int, log) -> list[dict]:
    """Every path on one input; each output is deleted once measured."""
    frames = frames_of(input)
    rows = []
    counts = sorted({int(n) for n in args.workers.split(",")})
    if not args.skip_single:
        output = work / f"out-{name}-single.ome.zarr"
        log(f"{name}: single process")
        s = run_single(args, model, input, output, work / f"single-{name}.log")
        shutil.rmtree(output, ignore_errors=True)
        rows.append(
            row(
                name,
                "single process",
                frames,
                size,
                s["wall"],
                threads=str(threads_of(s["engine"]) or "?"),
                start_s=s["start_s"],
                peak_rss_gb=s["peak_rss"] / 1e9,
            )
        )
    full: dict[int, dict] = {}
    for n in counts:
        output = work / f"out-{name}-dask{n}.ome.zarr"
        log(f"{name}: Dask, {n} worker(s)")
        d = run_dask(args, model, input, output, n)
        shutil.rmtree(output, ignore_errors=True)
        full[n] = d
        rows.append(
            row(
                name,
                f"dask {n} worker{'s' if n > 1 else ''}",
                frames,
                size,
                d["wall"],
                threads=f"{n}x{d['threads'] or '?'}",
                start_s=d["start_s"],
                peak_rss_gb=d["peak_rss"] / 1e9,
                reported_peak_rss_gb=d["reported_peak_rss"] / 1e9,
                notes=f"{d['blocks']} blocks",
            )
        )
    n = max(counts)
    output = work / f"out-{name}-resume.ome.zarr"
    log(f"{name}: Dask, {n} worker(s), killed at 50% and resumed")
    r = run_resume(args, model, input, output, n, work)
    shutil.rmtree(output, ignore_errors=True)
    f = full[n]
    notes = (
        f"rerun: {r['blocks'] - r['done_before']}/{r['blocks']} blocks, "
        f"{r['wall'] - r['start_s']:.1f} s after start-up; full run: {f['blocks']} blocks, "
        f"{f['wall'] - f['start_s']:.1f} s after start-up, {f['wall']:.1f} s in all; killed after "
        f"{r['killed_after_s']:.1f} s, workers gone {r['workers_exited_s']:.1f} s later"
    )
    if r["finished_before_kill"]:
        notes += "; the first run finished before it could be killed"
    if r["workers_left"]:
        notes += f"; {r['workers_left']} worker(s) outlived it by 60 s and were killed"
    rows.append(
        row(
            name,
            "resume after kill at 50%",
            r["frames"],
            size,
            r["wall"],
            threads=f"{n}x{r['threads'] or '?'}",
            start_s=r["start_s"],
            peak_rss_gb=r["peak_rss"] / 1e9,
            notes=notes,
            full_run_s=f["wall"],
            full_run_start_s=f["start_s"],
            **{k: r[k] for k in ("blocks", "done_before", "killed_after_s", "workers_exited_s")},
        )
    )
    return rows


# -- the report --------------------------------------------------------------------------------------


def machine() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} logical CPUs, load average {os.getloadavg()[0]:.1f}"


def print_table(console, rows: list[dict], title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    columns = ("input", "path", "frames", "GB", "threads", "start s", "wall s", "frames/s")
    for col in (*columns, "MB/s", "peak RSS GB/process", "notes"):
        table.add_column(col, justify="left" if col in ("input", "path", "notes") else "right")
    for r in rows:
        table.add_row(
            r["input"],
            r["path"],
            str(r["frames"]),
            f"{r['gb']:.3f}",
            r["threads"],
            "–" if math.isnan(r["start_s"]) else f"{r['start_s']:.1f}",
            f"{r['wall_s']:.1f}",
            f"{r['frames_per_s']:.2f}",
            f"{r['mb_per_s']:.1f}",
            f"{r['peak_rss_gb']:.2f}",
            r.get("notes", ""),
        )
    console.print(table)


def model_seconds(args, work: Path, series: Path, log) -> dict | None:
    """backbone-small's seconds per frame on the single path, over the series' first frames."""
    import zarr

    from livedenoise.imageio import read_zarr, write_image

    frames = min(args.model_frames, zarr.open_array(series / "0", mode="r").shape[0])
    if frames < 1:
        return None
    head = work / "model-frames.ome.zarr"
    image = read_zarr(series, lazy=True)
    image.data = np.asarray(image.data[:frames])
    write_image(head, image)
    warm_engine("backbone-small", args.backend, args.window, args.frame)
    log(f"backbone-small: single process on {frames} frames")
    s = run_single(args, "backbone-small", head, work / "out-model-frames.ome.zarr", work / "m.log")
    return {
        "model": "backbone-small",
        "frames": frames,
        "s_per_frame": s["denoise_s"] / frames,
        "engine": s["engine"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gb", type=float, default=2.0, help="total size of both inputs, 1e9 B")
    parser.add_argument("--frame", type=int, default=512, help="frame side, px")
    parser.add_argument("--model", default=TINY, help="'tiny' (made here) or a saved model")
    parser.add_argument("--window", type=int, default=4)
    parser.add_argument("--block-frames", type=int, default=16)
    parser.add_argument("--workers", default="1,2", help="local Dask worker counts to time")
    parser.add_argument("--backend", default="onnxruntime")
    parser.add_argument("--work", type=Path, help="folder for inputs and outputs (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep --work and the inputs in it")
    parser.add_argument("--skip-single", action="store_true")
    parser.add_argument("--model-frames", type=int, default=32, help="0: skip backbone-small")
    parser.add_argument("--threads", type=int, help="engine threads in all (OMP_NUM_THREADS)")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--child-single", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_single:
        child_single(args)
        return
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # children and workers inherit it

    from rich.console import Console

    # chunked.py's LocalCluster still serves a dashboard, on another port when 8787 is taken
    warnings.filterwarnings("ignore", message="Port 8787 is already in use", category=UserWarning)

    console = Console()
    if not console.is_terminal:  # a log file: room for the table's columns
        console.width = 200
    log = console.log
    size = args.frame
    total = math.ceil(args.gb * 1e9 / (size * size * 2))
    series_frames = math.ceil(total / 2)
    slices = max(1, math.ceil((total - series_frames) / math.prod(GRID)))

    made = args.work is None or not args.work.exists()
    work = Path(tempfile.mkdtemp(prefix="bench_scale-")) if args.work is None else args.work
    work.mkdir(parents=True, exist_ok=True)
    before = set(os.listdir(work))
    try:
        model = str(tiny_model(work)) if args.model == TINY else args.model
        log(f"work folder {work}; model {model}; warming its engine (first use exports it)")
        warm_engine(model, args.backend, args.window, size)
        inputs = ensure_inputs(work, series_frames, slices, size, log)
        for path in inputs.values():
            raw = frames_of(path) * size * size * 2
            log(f"{path.name}: {raw / 1e9:.3f} GB raw, {disk_bytes(path) / 1e9:.3f} GB on disk")
        rows = []
        for name, path in inputs.items():
            rows += measure(args, model, name, path, work, size, log)
        real = model_seconds(args, work, inputs["series"], log) if args.model_frames else None
        title = (
            f"Chunked vs single-process denoising: {args.model} model, window {args.window}, "
            f"{args.block_frames} frames per block, {size}x{size} uint16, {args.backend}"
        )
        print_table(console, rows, title)
        if real:
            console.print(
                f"{real['model']}: {real['s_per_frame']:.3f} s per {size}x{size} frame, single "
                f"process, window {args.window} ({real['frames']} frames; {real['engine']})"
            )
        console.print(f"machine: {machine()}")
        if args.json:
            given = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
            given.pop("child_single")
            plain = [{k: None if v != v else v for k, v in r.items()} for r in rows]  # NaN: null
            report = {"args": given, "machine": machine(), "rows": plain, "real_model": real}
            args.json.write_text(json.dumps(report, indent=2) + "\n")
            console.print(f"written: {args.json}")
    finally:
        if not args.keep:
            if made:
                shutil.rmtree(work, ignore_errors=True)
            else:  # a folder given that existed: only what this run wrote
                for entry in set(os.listdir(work)) - before:
                    target = work / entry
                    if target.is_dir():
                        shutil.rmtree(target, ignore_errors=True)
                    else:
                        target.unlink(missing_ok=True)
        else:
            log(f"kept {work}")


if __name__ == "__main__":
    main()
