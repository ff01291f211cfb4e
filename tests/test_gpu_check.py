"""scripts/gpu_check.py: on a machine without a GPU it says so and what it would measure; its time
limits keep a run inside 8 minutes; its report says what a GPU run found."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"
spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
assert spec is not None and spec.loader is not None
gpu_check = sys.modules["gpu_check"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)


def test_without_a_gpu_it_exits_0_and_lists_what_it_would_measure(tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    env = {**os.environ, "OUT": str(tmp_path)}  # as the GPU machine's runner sets it
    done = subprocess.run(
        [sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = (tmp_path / "report.md").read_text()
    assert "No CUDA device was found" in report
    for step in gpu_check.STEPS[1:]:
        assert step.plan in report
    assert "512x512 at 15 fps" in report and "p50/p99" in report
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"]["environment"]["result"]["cuda"] is False
    assert summary["steps"]["benchmark"]["status"] == "not run: no CUDA device"
    assert (tmp_path / "log.txt").is_file()
    assert "No CUDA device was found" in done.stdout


def test_step_limits_keep_a_run_inside_8_minutes() -> None:
    spent = 0.0
    for step in gpu_check.STEPS:  # every step using all the time it is given
        limit = gpu_check.step_limit(step, gpu_check.BUDGET_S, spent)
        assert 0 <= limit <= step.seconds
        spent += limit
    assert spent <= gpu_check.BUDGET_S < 8 * 60 - 20  # room to start up and write the report
    late = gpu_check.step_limit(gpu_check.STEPS[-1], 100, spent_s=100)
    assert late == 0  # a step the budget cannot fit is not started


def gpu_summary(dropped: int, parity_error: float) -> dict[str, object]:
    env = {
        "cuda": True,
        "gpu": "NVIDIA H200",
        "cuda_version": "13.0",
        "packages": {"torch": "2.11.0"},
        "missing": [],
    }
    case = {"model": "paper", "shape": [4, 256, 256], "precision": "fp16"}
    pipeline = {
        "engine": "CUDA engine: torch 2.11.0 eager fp16",
        "window": 4,
        "seconds": 12.0,
        "summary": {
            "dropped": dropped,
            "acquired": 180,
            "acquired_fps": 15.0,
            "denoised": 120,
            "denoised_fps": 10.0,
            "skipped": 60,
            "failed": 0,
            "latency_p50_ms": 40.5,
            "latency_p99_ms": 80.25,
        },
    }
    row = {"preset": "paper", "size": "512²", "frames": 8, "backend": "cuda fp16"}
    timed = {**row, "ms_per_frame_p50": 3.25, "ms_per_frame_p99": 4.5, "frames_per_s": 307.7}
    bench = {"machine": "H200", "rows": [timed, {**row, "frames": 1, "skipped": "~40 s"}]}
    tests = {"files": ["tests/test_cuda_engine.py"], "passed": 7, "failed": 1, "skipped": 3}
    tests["failures"] = ["tests.test_cuda_engine::test_cuda_graph_replays_new_frames"]
    return {
        "started": "2026-12-01 10:00",
        "steps": {
            "environment": {"status": "done", "seconds": 5, "result": env},
            "parity": {
                "status": "done",
                "seconds": 30,
                "result": {
                    "cases": [{**case, "max_relative": parity_error, "passed": parity_error < 1e-2}]
                },
            },
            "benchmark": {"status": "done", "seconds": 100, "result": bench},
            "pipeline": {"status": "done", "seconds": 20, "result": pipeline},
            "tests": {"status": "done", "seconds": 60, "result": tests},
            "compile": {"status": "timed out after 120 s", "seconds": 120},
        },
    }


def test_the_report_says_what_a_gpu_run_found() -> None:
    good = gpu_check.report(gpu_summary(dropped=0, parity_error=3e-3))
    assert "GPU: NVIDIA H200, CUDA 13.0, torch 2.11.0" in good
    assert "| paper | 4x256x256 | fp16 | 3.00e-03 | pass |" in good
    assert "| paper | 512² | 8 | cuda fp16 | 3.25 | 4.50 | 307.7 |" in good
    assert "skipped (~40 s)" in good
    assert "zero raw frames lost" in good and "skipped 60" in good
    assert "latency p50 40.5 ms, p99 80.2 ms" in good
    assert "7 passed, 1 failed, 3 skipped" in good
    assert "FAILED tests.test_cuda_engine::test_cuda_graph_replays_new_frames" in good
    assert "| compile | timed out after 120 s | 120 |" in good
    bad = gpu_check.report(gpu_summary(dropped=3, parity_error=0.05))
    assert "LOST 3 raw frames" in bad and "FAIL (> 0.01)" in bad
