"""GPU check: what this project measures on an NVIDIA GPU, in one unattended run of under 8 minutes.

    python3 scripts/gpu_check.py [--out DIR] [--budget-s SECONDS]

Run from the checkout's root on a machine with a CUDA build of torch; nothing is installed and no network
is used. Everything goes to one folder: ``--out``, else ``$OUT`` when set, else ``runs/gpu-check-TIME``:
``report.md`` (for people), ``summary.json`` (every figure) and ``log.txt`` (every step's output).

Steps, each a subprocess of this script with its own time limit inside ``--budget-s``, so a step that
fails or hangs costs only its own results:

1. environment: GPU, torch and CUDA versions, and which of the project's packages import;
2. parity: the CUDA engine (fp16, bf16, fp32) against the CPU torch engine on the shipped
   ``sim-confocal-small`` and an untrained ``paper`` model; passes within 1e-2 relative (max |diff| /
   max |CPU|);
3. benchmark: ``scripts/bench_engines.py`` for the small and paper presets, 512x512 and 1024x1024, T = 1
   and 8: torch eager float32 on the GPU, the CUDA engine in fp16 and bf16 (p50/p99 ms per frame, frames
   per second);
4. pipeline: live mode on the simulated microscope at a scanner's rate (512x512, line average 1, 15 fps,
   real-time), ``sim-confocal-small`` on the CUDA engine, through the application layer: raw frames
   lost (must be 0), frames skipped, latency p50/p99;
5. GPU tests: ``pytest -m gpu`` on the test files that hold GPU tests;
6. compile: the paper 512x512 T=8 case with and without ``torch.compile`` under the CUDA engine.

Without a CUDA device it stops after step 1, writes a report saying so with the plan above, and exits 0.

What the GPU machine must be given: the checkout, and wheels (for its Python, 3.12 on the team's H200
image) of the project's dependencies it lacks, installed without dependencies onto PYTHONPATH before
running this script. On that image they are annotated-types donfig google-crc32c numcodecs ome-types
ome-writers platformdirs psygnal pydantic pydantic-core pydantic-extra-types pymmcore pymmcore-plus
shapely typing-inspection useq-schema xsdata yaozarrs zarr (73 MiB installed, less as wheels);
``scripts/gpu_bundle.py`` packs them with a ``run.sh`` that installs them. Step 1 names any still missing.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO

ROOT = Path(__file__).resolve().parents[1]
TOLERANCE = 1e-2  # parity: max |GPU - CPU| / max |CPU|
BUDGET_S = 450.0  # all steps together: with start-up and the report, inside 8 minutes
RATE_FPS = 15.0
SIZE = 512
PIPELINE_MODEL = "sim-confocal-small"
PACKAGES = [
    "torch",
    "numpy",
    "onnx",
    "onnxscript",
    "onnxruntime",
    "safetensors",
    "pydantic",
    "typer",
    "rich",
    "tifffile",
    "yaml",
    "scipy",
    "matplotlib",
    "pymmcore_plus",
    "useq",
    "zarr",
    "yaozarrs",
    "pytest",
]


@dataclass(frozen=True)
class Step:
    name: str
    seconds: int  # its own limit; the run's budget may leave it less
    plan: str  # what it measures, for the report


STEPS = (
    Step("environment", 60, "GPU, torch, CUDA and which project packages import"),
    Step(
        "parity",
        90,
        f"CUDA engine fp16/bf16/fp32 vs the CPU torch engine, {PIPELINE_MODEL} and paper "
        f"(passes within {TOLERANCE:g} relative)",
    ),
    Step(
        "benchmark",
        150,
        "scripts/bench_engines.py: small and paper, 512² and 1024², T = 1 and 8; torch eager "
        "fp32, CUDA engine fp16 and bf16; p50/p99 ms per frame, frames per second",
    ),
    Step(
        "pipeline",
        75,
        f"live mode on the simulated microscope, {SIZE}x{SIZE} at {RATE_FPS:g} fps, line average 1, "
        f"{PIPELINE_MODEL} on the CUDA engine: raw frames lost, skipped, latency p50/p99",
    ),
    Step("tests", 150, "pytest -m gpu on the test files with GPU tests"),
    Step("compile", 120, "paper 512² T=8: CUDA engine fp16 with and without torch.compile"),
)


def step_limit(step: Step, budget_s: float, spent_s: float) -> float:
    """A step's time limit in seconds: its own, cut to what the run's budget has left (0: not run)."""
    return max(0.0, min(step.seconds, budget_s - spent_s))


def run_limited(command: list[str], limit: float, log: IO[str], env: dict[str, str]) -> str:
    """Run ``command`` for at most ``limit`` seconds, output to ``log``; its status for the report.

    It runs in a process group of its own, so a step that times out is ended with everything it
    started (a benchmark, pytest), not left running beside the next step.
    """
    proc = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, start_new_session=True
    )
    try:
        code = proc.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return f"timed out after {limit:.0f} s"
    return "done" if code == 0 else f"failed (exit {code}, see log.txt)"


# -- the steps, each run as `gpu_check.py --step NAME --result FILE` ----------------------------------


def step_environment() -> dict[str, object]:
    import importlib

    versions: dict[str, str | None] = {}
    for name in (*PACKAGES, "tensorrt"):
        try:
            module = importlib.import_module(name)
            versions[name] = str(getattr(module, "__version__", "present"))
        except Exception:  # a broken package reads as missing, whatever it raises
            versions[name] = None
    import torch

    cuda = torch.cuda.is_available()
    return {
        "python": sys.version.split()[0],
        "cuda": cuda,
        "gpu": torch.cuda.get_device_name() if cuda else None,
        "cuda_version": torch.version.cuda,
        "cpus": os.cpu_count(),
        "packages": versions,
        "missing": [n for n in PACKAGES if versions[n] is None],
    }


def synthetic_frames(frames: int, size: int, seed: int = 0):
    """Poisson noise over a smooth pattern in 12-bit counts, microscope-like, ``[T, H, W]`` uint16."""
    import numpy as np

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    signal = 5 + 40 * (1 + np.sin(12 * xx) * np.cos(9 * yy))
    return (rng.poisson(np.broadcast_to(signal, (frames, size, size))) * 9).astype(np.uint16)


def step_parity() -> dict[str, object]:
    import numpy as np

    from livedenoise.inference import load_engine
    from livedenoise.model import ModelCard, Normalization, build_model, preset, save_model

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        paper = Path(tmp) / "paper"
        cfg = preset("paper")
        card = ModelCard(name="paper", config=cfg, normalization=Normalization(scale=4095))
        save_model(build_model(cfg, seed=0), card, paper)
        for model, frames, size in ((PIPELINE_MODEL, 8, SIZE), (paper, 4, 256)):
            x = synthetic_frames(frames, size)
            expected = load_engine(model, "torch", device="cpu").denoise(x)
            for precision in ("fp16", "bf16", "fp32"):
                got = load_engine(model, "cuda", precision=precision).denoise(x)
                diff = np.abs(got - expected)
                error = float(diff.max() / np.abs(expected).max())
                results.append(
                    {
                        "model": Path(model).name,
                        "shape": list(x.shape),
                        "precision": precision,
                        "max_relative": error,
                        "median_abs": float(np.median(diff)),
                        "passed": error < TOLERANCE,
                    }
                )
    return {"tolerance": TOLERANCE, "cases": results}


def step_benchmark(compile: bool) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.json"
        if compile:
            cases = ["--presets", "paper", "--sizes", "512", "--frames", "8", "--compile"]
            labels = "cuda fp16,cuda fp16 compiled"
        else:
            cases = ["--presets", "small,paper", "--sizes", "512,1024", "--frames", "1,8"]
            labels = "torch eager,cuda fp16,cuda bf16"
        bench = ROOT / "scripts" / "bench_engines.py"
        args = [*cases, "--backends", labels, "--repeats", "30", "--max-seconds", "30"]
        subprocess.run([sys.executable, str(bench), *args, "--json", str(out)], check=True)
        return json.loads(out.read_text())


def step_pipeline(seconds: float = 12.0, window: int = 4) -> dict[str, object]:
    from livedenoise.app import Acquisition, RunRequest, open_microscope
    from livedenoise.inference import load_engine
    from livedenoise.pipeline.live import Policy

    flyback_ms = 1.0
    line_us = (
        (1000 / RATE_FPS - flyback_ms) * 1000 / SIZE
    )  # frame time = lines x line period + flyback
    settings = [
        f"Detector.FrameWidth={SIZE}",
        f"Detector.FrameHeight={SIZE}",
        "Detector.LineAverage=1",
        f"Detector.LinePeriod_us={line_us:.3f}",
        f"Detector.Flyback_ms={flyback_ms}",
        "Detector.TimeScale=1",
        "Detector.Photobleaching=Off",
    ]
    engine = load_engine(PIPELINE_MODEL, "cuda", window=window, frame_size=(SIZE, SIZE))
    for t in range(1, window + 1):  # a run's first frames have shorter windows
        engine.warmup(t, SIZE, SIZE)
    with tempfile.TemporaryDirectory() as tmp:
        request = RunRequest(
            model=PIPELINE_MODEL,
            backend="cuda",
            window=window,
            policy=Policy.live,
            out=Path(tmp) / "live.ome.zarr",
        )
        acquisition = Acquisition(open_microscope(None, settings), request, engine=engine)
        try:
            acquisition.start_live()
            time.sleep(seconds)
            summary = acquisition.stop()
        finally:
            acquisition.close()
    assert summary is not None, "live mode ended without a summary"
    return {
        "engine": engine.describe(),
        "settings": settings,
        "window": window,
        "seconds": seconds,
        "summary": summary.model_dump(mode="json"),
    }


def step_tests(result: Path) -> dict[str, object]:
    files = sorted(
        str(p.relative_to(ROOT))
        for p in (ROOT / "tests").glob("test_*.py")
        if "pytest.mark.gpu" in p.read_text()
    )
    xml = result.with_suffix(".xml")
    args = ["-m", "gpu", "-q", "-p", "no:cacheprovider", f"--junitxml={xml}", *files]
    code = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=ROOT).returncode
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    failures = []
    for case in ET.parse(xml).getroot().iter("testcase"):
        outcome = next((c.tag for c in case if c.tag in ("failure", "error", "skipped")), "passed")
        outcome = "failed" if outcome in ("failure", "error") else outcome
        counts[outcome] += 1
        if outcome == "failed":
            failures.append(f"{case.get('classname')}::{case.get('name')}")
    return {"files": files, "exit_code": code, **counts, "failures": failures}


def run_step(name: str, result: Path) -> None:
    if name == "environment":
        data = step_environment()
    elif name == "parity":
        data = step_parity()
    elif name in ("benchmark", "compile"):
        data = step_benchmark(compile=name == "compile")
    elif name == "pipeline":
        data = step_pipeline()
    else:
        data = step_tests(result)
    result.write_text(json.dumps(data, indent=2) + "\n")


# -- the report -----------------------------------------------------------------------------------------


def report(summary: dict[str, object]) -> str:
    """The Markdown report of a run's ``summary.json``."""
    env = summary["steps"].get("environment", {}).get("result") or {}
    lines = [f"# GPU check, {summary['started']}", ""]
    if not env.get("cuda"):
        lines += [
            "**No CUDA device was found**: torch sees no NVIDIA GPU here, so nothing was measured.",
            "",
            "On a machine with one, this script would measure:",
            "",
            *(f"- {step.name}: {step.plan}" for step in STEPS[1:]),
        ]
    else:
        lines.append(
            f"GPU: {env['gpu']}, CUDA {env['cuda_version']}, torch {env['packages']['torch']}"
        )
    if env.get("missing"):
        lines += ["", f"Missing packages (carry them as wheels): {', '.join(env['missing'])}"]
    lines += ["", "| step | status | seconds |", "| --- | --- | --- |"]
    for name, step in summary["steps"].items():
        lines.append(f"| {name} | {step['status']} | {step.get('seconds', 0):.0f} |")
    results = {name: step.get("result") for name, step in summary["steps"].items()}
    if results.get("parity"):
        lines += ["", "## Parity with the CPU engine", ""]
        lines += [
            "| model | shape | precision | max relative | verdict |",
            "| --- | --- | --- | --- | --- |",
        ]
        for c in results["parity"]["cases"]:
            verdict = "pass" if c["passed"] else f"FAIL (> {TOLERANCE:g})"
            shape = "x".join(map(str, c["shape"]))
            lines.append(
                f"| {c['model']} | {shape} | {c['precision']} | {c['max_relative']:.2e} | {verdict} |"
            )
    for name in ("benchmark", "compile"):
        if results.get(name):
            lines += ["", f"## Engines: {name}", "", results[name]["machine"], ""]
            lines += [
                "| preset | H x W | T | backend | ms / frame p50 | p99 | frames / s |",
                "| --- | --- | --- | --- | --- | --- | --- |",
            ]
            for r in results[name]["rows"]:
                if "skipped" in r:
                    times = f"skipped ({r['skipped']}) | | "
                else:
                    times = (
                        f"{r['ms_per_frame_p50']:.2f} | {r['ms_per_frame_p99']:.2f} | "
                        f"{r['frames_per_s']:.1f}"
                    )
                lines.append(
                    f"| {r['preset']} | {r['size']} | {r['frames']} | {r['backend']} | {times} |"
                )
    if results.get("pipeline"):
        p, s = results["pipeline"], results["pipeline"]["summary"]
        lost = "zero raw frames lost" if s["dropped"] == 0 else f"LOST {s['dropped']} raw frames"
        lines += [
            "",
            "## Live pipeline",
            "",
            f"{p['engine']}; window {p['window']}; {p['seconds']:g} s of live mode.",
            "",
            f"{lost}; acquired {s['acquired']} at {s['acquired_fps']:.1f} fps, denoised "
            f"{s['denoised']} at {s['denoised_fps']:.1f} fps, skipped {s['skipped']}, failed "
            f"{s['failed']}; latency p50 {s['latency_p50_ms']:.1f} ms, p99 {s['latency_p99_ms']:.1f} ms.",
        ]
    if results.get("tests"):
        t = results["tests"]
        lines += [
            "",
            "## GPU tests",
            "",
            f"{t['passed']} passed, {t['failed']} failed, {t['skipped']} skipped "
            f"({', '.join(t['files'])})",
            *(f"- FAILED {f}" for f in t["failures"]),
        ]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="default: $OUT, else runs/gpu-check-TIME")
    parser.add_argument("--budget-s", type=float, default=BUDGET_S, help="all steps together")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        run_step(args.step, args.result)
        return 0

    started = datetime.now()
    out = args.out or Path(
        os.environ.get("OUT") or ROOT / f"runs/gpu-check-{started:%Y%m%d-%H%M%S}"
    )
    out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    summary: dict[str, object] = {"started": f"{started:%Y-%m-%d %H:%M}", "steps": {}}
    spent = 0.0
    with (out / "log.txt").open("w") as log, tempfile.TemporaryDirectory() as tmp:
        env.setdefault("LIVEDENOISE_CACHE", str(Path(tmp) / "cache"))
        for step in STEPS:
            cuda = (summary["steps"].get("environment", {}).get("result") or {}).get("cuda")
            limit = step_limit(step, args.budget_s, spent)
            if step.name != "environment" and not cuda:
                summary["steps"][step.name] = {"status": "not run: no CUDA device"}
                continue
            if limit <= 0:
                summary["steps"][step.name] = {"status": "not run: out of time"}
                continue
            result = Path(tmp) / f"{step.name}.json"
            log.write(f"\n===== {step.name} (limit {limit:.0f} s) =====\n")
            log.flush()
            start = time.monotonic()
            command = [sys.executable, __file__, "--step", step.name, "--result", str(result)]
            status = run_limited(command, limit, log, env)
            seconds = time.monotonic() - start
            spent += seconds
            entry: dict[str, object] = {"status": status, "seconds": seconds}
            if result.is_file():
                entry["result"] = json.loads(result.read_text())
            summary["steps"][step.name] = entry
            (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "report.md").write_text(report(summary))
    print((out / "report.md").read_text())
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
