"""Whole-image denoising and quality for training reports (raw vs backbone vs fine-tuned).

Frames are processed in overlapping tiles of ``TILE`` px blended with linear ramps (the inference engines'
tiling), the size the models are trained around: see ``batches``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from livedenoise.inference.tiling import choose_tiling, run_tiled
from livedenoise.metrics import Quality, quality
from livedenoise.model import CNNT, Normalization
from livedenoise.training.batches import TILE


@torch.no_grad()
def denoise(
    model: CNNT, norm: Normalization, frames: np.ndarray, window: int = 1, tile: int = TILE
) -> np.ndarray:
    """Denoise ``[N, H, W]`` frames in consecutive windows of ``window`` frames, in the input's units."""
    model.eval()
    device = next(model.parameters()).device

    def run(x: np.ndarray) -> np.ndarray:  # [T, h, w] -> [T, h, w]
        y = model(torch.from_numpy(norm.forward(x))[None, :, None].to(device))
        return norm.inverse(y[0, :, 0].float().cpu().numpy())

    tiling = choose_tiling(model.cfg, tile)
    starts = range(0, frames.shape[0], window)
    return np.concatenate([run_tiled(run, frames[s : s + window], tiling) for s in starts])


def mean_quality(pairs: Iterable[tuple[np.ndarray, np.ndarray]]) -> Quality:
    """PSNR, SSIM and NRMSE (affine-fitted, see livedenoise.metrics) averaged over every frame."""
    scores = [quality(x, y) for image, ref in pairs for x, y in zip(image, ref, strict=True)]
    return Quality(*(float(np.mean(values)) for values in zip(*scores, strict=True)))
