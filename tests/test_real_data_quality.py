"""The shipped CPU model on real recordings: it must improve on the raw frame, whatever the units."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import SHARED_DATA

from livedenoise.inference import denoise_stack, load_engine
from livedenoise.metrics import quality

FMD = SHARED_DATA / "fmd_test"
PAIRS = SHARED_DATA / "pairs"


@pytest.fixture(scope="module")
def engine():
    return load_engine("backbone-small", "onnxruntime")


def recordings() -> list[tuple[str, Path, Path]]:
    fmd = [(f"fmd_test/{p.stem}", p, FMD / "clean" / p.name) for p in sorted(FMD.glob("noisy/*"))]
    pairs = [
        (f"pairs/{p.stem}", p, PAIRS / "clean" / p.name) for p in sorted(PAIRS.glob("noisy/*"))
    ]
    return fmd + pairs


@pytest.mark.slow
@pytest.mark.parametrize(("name", "noisy", "clean"), recordings(), ids=lambda v: str(v))
def test_shipped_model_improves_every_real_frame(
    engine, name: str, noisy: Path, clean: Path
) -> None:
    frames = np.asarray(tifffile.imread(noisy), dtype=np.float32)
    frames = frames if frames.ndim == 3 else frames[None]
    reference = tifffile.imread(clean)
    denoised = denoise_stack(engine, frames, window=1)
    gains = [
        quality(y, reference).psnr - quality(x, reference).psnr
        for x, y in zip(frames, denoised, strict=True)
    ]
    assert min(gains) > 1.0, f"{name}: PSNR gains {gains}"


def test_output_follows_the_inputs_units_on_real_data(engine) -> None:
    """A 12-bit camera with an offset seeing the same field: the same result in its own units."""
    frame = tifffile.imread(FMD / "noisy" / "Confocal_BPAE_G.tif")[0, :256, :256].astype(np.float32)
    eight_bit = engine.denoise(frame[None])
    camera = engine.denoise(16 * frame[None] + 100)
    np.testing.assert_allclose(camera, 16 * eight_bit + 100, rtol=1e-3, atol=0.05)
