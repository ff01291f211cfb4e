"""Self-supervised targets for fine-tuning without clean images.

Two ways, both valid because the noise of one pixel is independent of everything else the model sees:

* odd/even frames: repeated frames of a static field are independent noisy copies of one signal, so
  frame 2k can be the target of frame 2k+1 and vice versa (Noise2Noise, as UNet-Att splits time series);
* masking (Noise2Self): hide a sparse grid of pixels behind the mean of their 8 neighbours and ask the
  model to predict the hidden noisy values; the loss counts only there.

Against a noisy target the MSE optimum is the clean signal, so these train with MSE only.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torch.nn.functional as F

from livedenoise.training.batches import Batch
from livedenoise.training.loop import BatchFn
from livedenoise.training.pairs import ImagePair

MASK_SPACING = 4  # one pixel in 4 x 4 is hidden per sample


def odd_even_pairs(stacks: Mapping[str, np.ndarray]) -> list[ImagePair]:
    """Even frames against odd frames of every stack, in both directions (needs 2+ frames each)."""
    pairs = []
    for name, frames in stacks.items():
        n = frames.shape[0] // 2
        even, odd = frames[0 : 2 * n : 2], frames[1 : 2 * n : 2]
        pairs += [
            ImagePair(f"{name} even->odd", even, odd),
            ImagePair(f"{name} odd->even", odd, even),
        ]
    return pairs


def mask_batch(batch: Batch, rng: np.random.Generator) -> Batch:
    """Hide one pixel per ``MASK_SPACING`` square (random phase per sample); targets are the inputs."""
    x = batch.inputs
    b, h, w = x.shape[0], x.shape[-2], x.shape[-1]
    mask = torch.zeros_like(x, dtype=torch.bool)
    for i, (dy, dx) in enumerate(rng.integers(MASK_SPACING, size=(b, 2))):
        mask[i, ..., dy::MASK_SPACING, dx::MASK_SPACING] = True
    ring = torch.ones(1, 1, 3, 3, dtype=x.dtype)
    ring[0, 0, 1, 1] = 0
    flat = F.pad(x.reshape(-1, 1, h, w), (1, 1, 1, 1), mode="replicate")
    neighbours = (F.conv2d(flat, ring) / 8).reshape(x.shape)
    return Batch(torch.where(mask, neighbours, x), x, mask)


def masked(batches: BatchFn) -> BatchFn:
    """Noise2Self batches from batches whose inputs are noisy frames."""
    return lambda rng: mask_batch(batches(rng), rng)
