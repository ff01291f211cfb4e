"""The installed command works from any folder: the shipped models travel with the package."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from livedenoise.inference.cache import CACHE_ENV, default_cache_dir
from livedenoise.storage import open_run

ROOT = Path(__file__).resolve().parents[1]
LIVEDENOISE = Path(sys.executable).parent / "livedenoise"


def test_a_checkout_caches_built_engines_in_its_engines_folder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(CACHE_ENV, raising=False)
    assert default_cache_dir() == ROOT / "engines" / "cache"


@pytest.mark.slow
def test_demo_runs_from_a_folder_outside_the_checkout(tmp_path: Path) -> None:
    env = {**os.environ, "COLUMNS": "200"}
    result = subprocess.run(
        [str(LIVEDENOISE), "demo", "--headless"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    said = " ".join(result.stdout.split())
    assert "4 grid tiles, 2 channels, 3 z-slices (48 frames" in said  # what the demo runs, first

    (store,) = (tmp_path / "runs").glob("*.ome.zarr")
    run = open_run(store)
    assert run.attrs["complete"] and run.attrs["model"]["name"] == "sim-confocal-small"
    assert len(run.raw) == len(run.denoised) == 4  # the 2x2 tiles
    for raw, denoised in zip(run.raw, run.denoised, strict=True):
        raw, denoised = np.asarray(raw), np.asarray(denoised)
        assert raw.shape == denoised.shape == (2, 2, 3, 256, 256)  # t, c, z, y, x
        assert (raw.reshape(12, -1).max(axis=1) > 0).all()  # every frame written (fill is 0)
        assert np.isfinite(denoised).all()  # every frame denoised (fill is NaN)
    assert store.with_name(store.name.replace(".ome.zarr", ".mosaic.tif")).is_file()
