"""Image quality against a reference: PSNR, SSIM and NRMSE, after an affine intensity fit.

A denoiser's output and a reference recorded differently (another exposure, another average) can differ
by a gain and an offset that say nothing about quality, so every image is first mapped onto the
reference by least squares (as in CARE and the FMD benchmark), then compared.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.ndimage import gaussian_filter


class Quality(NamedTuple):
    psnr: float
    ssim: float
    nrmse: float


def affine_fit(image: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``a * image + b`` with a, b minimising the squared difference to ``reference``."""
    x = image.astype(np.float64).ravel()
    y = reference.astype(np.float64).ravel()
    var = x.var()
    a = 0.0 if var == 0 else float(((x - x.mean()) * (y - y.mean())).mean() / var)
    b = y.mean() - a * x.mean()
    return (a * image.astype(np.float64) + b).reshape(image.shape)


def psnr(image: np.ndarray, reference: np.ndarray, data_range: float) -> float:
    mse = float(np.mean((image.astype(np.float64) - reference) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(data_range**2 / mse)


def ssim(image: np.ndarray, reference: np.ndarray, data_range: float, sigma: float = 1.5) -> float:
    """Mean structural similarity (Wang et al. 2004) with a Gaussian window."""
    x = image.astype(np.float64)
    y = reference.astype(np.float64)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = gaussian_filter(x, sigma), gaussian_filter(y, sigma)
    sxx = gaussian_filter(x * x, sigma) - mx * mx
    syy = gaussian_filter(y * y, sigma) - my * my
    sxy = gaussian_filter(x * y, sigma) - mx * my
    num = (2 * mx * my + c1) * (2 * sxy + c2)
    den = (mx * mx + my * my + c1) * (sxx + syy + c2)
    return float(np.mean(num / den))


def nrmse(image: np.ndarray, reference: np.ndarray) -> float:
    """Root-mean-square error over the reference's root-mean-square (0 is perfect)."""
    ref = reference.astype(np.float64)
    return float(np.sqrt(np.mean((image - ref) ** 2)) / np.sqrt(np.mean(ref**2)))


def quality(image: np.ndarray, reference: np.ndarray) -> Quality:
    """All three metrics for ``image`` fitted onto ``reference``; range is the reference's."""
    ref = reference.astype(np.float64)
    fitted = affine_fit(image, ref)
    data_range = float(ref.max() - ref.min()) or 1.0
    return Quality(psnr(fitted, ref, data_range), ssim(fitted, ref, data_range), nrmse(fitted, ref))
