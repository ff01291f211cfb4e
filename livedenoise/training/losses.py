"""Training losses: SSIM over every frame of the window plus weighted L1 and MSE (as the CNNT paper trains).

SSIM rewards restored structure (edges, texture) where a pure MSE model blurs; a little L1/MSE anchors
absolute intensities, which SSIM's contrast and structure terms leave loose. Everything works in the
model's normalised units, where the signal spans about 0..1, hence ``data_range = 1``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

SSIM_SIGMA = 1.5  # Gaussian window of Wang et al. 2004
SSIM_RADIUS = 5  # 11 x 11 window


def _gaussian(sigma: float, radius: int, like: Tensor) -> Tensor:
    x = torch.arange(-radius, radius + 1, dtype=like.dtype, device=like.device)
    g = torch.exp(-(x * x) / (2 * sigma * sigma))
    return g / g.sum()


def ssim(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """Mean SSIM over all frames, channels and valid window positions of ``[..., H, W]`` tensors."""
    pred, target = pred.float(), target.float()
    h, w = pred.shape[-2:]
    radius = min(SSIM_RADIUS, (min(h, w) - 1) // 2)
    g = _gaussian(SSIM_SIGMA, radius, pred)
    rows, cols = g.view(1, 1, -1, 1), g.view(1, 1, 1, -1)

    def blur(x: Tensor) -> Tensor:  # separable Gaussian, valid positions only
        return F.conv2d(F.conv2d(x, rows), cols)

    x, y = pred.reshape(-1, 1, h, w), target.reshape(-1, 1, h, w)
    stats = blur(torch.cat([x, y, x * x, y * y, x * y]))
    mx, my, xx, yy, xy = stats.chunk(5)
    sxx, syy, sxy = xx - mx * mx, yy - my * my, xy - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return (num / den).mean()


@dataclass(frozen=True)
class LossWeights:
    """``ssim * (1 - SSIM) + l1 * L1 + mse * MSE``; with a mask only L1 and MSE count, over the mask."""

    ssim: float = 1.0
    l1: float = 0.0
    mse: float = 0.1

    def __call__(self, pred: Tensor, target: Tensor, mask: Tensor | None = None) -> Tensor:
        err = pred.float() - target.float()
        if mask is not None:  # self-supervised: only the hidden pixels carry a target
            m = mask.float()
            count = m.sum().clamp_min(1.0)
            return (self.l1 * (err.abs() * m).sum() + self.mse * (err * err * m).sum()) / count
        loss = self.l1 * err.abs().mean() + self.mse * (err * err).mean()
        if self.ssim:
            loss = loss + self.ssim * (1 - ssim(pred, target))
        return loss
