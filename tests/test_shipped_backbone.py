"""``livedenoise denoise`` with the shipped backbone on real data it never trained on: the held-out
W2S fields (71-80, widefield), the held-out Hagen pair (actin-60x-noise1) and the held-out FMD
configurations. Every frame must come out closer to its high-SNR reference than it went in."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import tifffile
from conftest import SHARED_DATA
from typer.testing import CliRunner

from livedenoise.cli import app
from livedenoise.metrics import quality

W2S_FIELDS = (71, 75, 80)  # of the held-out 71-80: a few, every channel, to stay fast
FMD_HELD_OUT = ("Confocal_MICE", "TwoPhoton_BPAE_R", "WideField_BPAE_G")
MIN_GAIN = 1.0  # dB of PSNR over the raw frame; the shipped backbone gains 4-11 dB here


def central(frames: np.ndarray, size: int) -> np.ndarray:
    top, left = ((n - size) // 2 for n in frames.shape[-2:])
    return frames[..., top : top + size, left : left + size]


def w2s() -> tuple[np.ndarray, np.ndarray]:
    """Held-out W2S frames (one raw frame vs the 400-frame average), their central 256 px."""
    labels = re.findall(
        r"^(\d+)\tFOV (\d+), channel \d+$", (SHARED_DATA / "w2s" / "index.txt").read_text(), re.M
    )
    pages = [int(i) for i, field in labels if int(field) in W2S_FIELDS]
    noisy, clean = (
        central(tifffile.imread(SHARED_DATA / "w2s" / name, key=pages), 256)
        for name in ("noisy.tif", "clean.tif")
    )
    return noisy, clean


def hagen() -> tuple[np.ndarray, np.ndarray]:
    """The held-out Hagen pair's central 512 px, low vs high SNR."""
    noisy, clean = (
        central(tifffile.imread(SHARED_DATA / "hagen" / side / "actin-60x-noise1.tif"), 512)[None]
        for side in ("noisy", "clean")
    )
    return noisy, clean


def fmd(name: str) -> tuple[np.ndarray, np.ndarray]:
    """A held-out FMD configuration: 4 raw frames, the 50-frame average for each."""
    noisy = tifffile.imread(SHARED_DATA / "fmd_test" / "noisy" / f"{name}.tif")
    clean = tifffile.imread(SHARED_DATA / "fmd_test" / "clean" / f"{name}.tif")
    return noisy, np.broadcast_to(clean, noisy.shape)


HELD_OUT = {"W2S fields 71, 75, 80": w2s, "Hagen actin-60x-noise1": hagen} | {
    f"FMD {name}": (lambda name=name: fmd(name)) for name in FMD_HELD_OUT
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(HELD_OUT))
def test_denoise_improves_every_held_out_frame(name: str, tmp_path: Path) -> None:
    noisy, clean = HELD_OUT[name]()
    source, out = tmp_path / "raw.tif", tmp_path / "denoised.tif"
    tifffile.imwrite(source, noisy.astype(np.uint8), photometric="minisblack")
    args = ["denoise", "backbone-small", str(source), str(out), "--window", "1", "--axes", "TYX"]
    result = CliRunner().invoke(app, [*args, "--backend", "onnxruntime", "--float32"])
    assert result.exit_code == 0, result.output
    denoised = tifffile.imread(out).reshape(noisy.shape)
    gains = [
        quality(y, ref).psnr - quality(x, ref).psnr
        for x, y, ref in zip(noisy, denoised, clean, strict=True)
    ]
    assert min(gains) > MIN_GAIN, f"{name}: PSNR gains {np.round(gains, 2)} dB"
