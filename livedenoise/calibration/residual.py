"""The hallucination check: does what the model changed (denoised minus input) follow the sample?

A denoiser should remove noise and nothing else, so its residual should look like noise, and noise in the
input is independent of a reference made from other frames. Structure of the reference in the residual
means the model altered the sample itself: negative, it erased or blurred real structure; positive, it
exaggerated it beyond what the input supports. We measure the residual's regression coefficient on the
reference's structure (its share of that structure) and compare it with what chance alignment gives:
the same coefficient against the reference displaced by a quarter, half and three quarters of the crop,
where residual and structure cannot line up. A model is unsafe at n averages when the share is both
large (over the user's limit, by default ``STRUCTURE_LIMIT``: a tenth of the sample's contrast, about
what a Gaussian blur of half a pixel takes from diffraction-limited filaments) and beyond that chance
level (over ``Z_LIMIT`` of its spread).
Content invented where the sample has none does not line up with the reference either; it is not
caught here but costs PSNR and SSIM against the reference."""

from __future__ import annotations

import numpy as np

STRUCTURE_LIMIT = 0.1  # default: a tenth of the reference's contrast changed by the model
Z_LIMIT = 3.0
_SHIFTS = (0.0, 0.25, 0.5, 0.75)  # fractions of the crop's height and width


def structure_share(
    denoised: np.ndarray, raw: np.ndarray, reference: np.ndarray, noise_var: float
) -> tuple[float, float]:
    """(share of the reference's structure in the residual, its spread from chance alignment alone).

    The residual is taken as it is: the engine returns the input's intensity units, and a denoiser must
    keep them (fitting the output's gain to the noisy input instead would inflate it, a regression
    dilution that reads as added structure). Only the mean is removed: an offset is not structure.
    ``noise_var`` (the reference's own noise variance per pixel) is subtracted from its energy so that
    a noisy reference does not dilute the share; the input's noise is independent of the reference.
    """
    residual = denoised.astype(np.float64) - raw
    residual -= residual.mean()
    structure = reference.astype(np.float64) - reference.mean()
    energy = float(np.sum(structure**2)) - noise_var * structure.size
    if energy <= 0:  # no structure above the reference's noise: nothing to compare with
        return 0.0, 0.0
    h, w = structure.shape
    shares = [
        float(np.sum(residual * np.roll(structure, (round(dy * h), round(dx * w)), (0, 1))))
        / energy
        for dy in _SHIFTS
        for dx in _SHIFTS
    ]
    return shares[0], float(np.sqrt(np.mean(np.square(shares[1:]))))


def unsafe(share: float, chance_spread: float, limit: float = STRUCTURE_LIMIT) -> bool:
    """Whether a (pooled) share is too large to be noise and larger than ``limit``."""
    return abs(share) > limit and abs(share) > Z_LIMIT * chance_spread
