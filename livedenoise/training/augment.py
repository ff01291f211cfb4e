"""Augmentations that keep a noisy input and its target registered: crops, the dihedral group, intensity.

Each takes the arrays of one training sample (``[T, H, W]`` each: input, target, ...) and transforms them
identically, so the pixel-to-pixel correspondence that supervised denoising learns from is preserved.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def random_crop(
    arrays: Sequence[np.ndarray], size: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """The same ``size`` x ``size`` window (at most the whole frame) from every array."""
    h, w = arrays[0].shape[-2:]
    ph, pw = min(size, h), min(size, w)
    top, left = rng.integers(h - ph + 1), rng.integers(w - pw + 1)
    return [a[..., top : top + ph, left : left + pw] for a in arrays]


def random_dihedral(arrays: Sequence[np.ndarray], rng: np.random.Generator) -> list[np.ndarray]:
    """One of the 8 flips and 90-degree rotations, the same for every array.

    Microscope images have no preferred orientation, so this multiplies the few fine-tuning pairs by 8.
    """
    turns, flip = int(rng.integers(4)), bool(rng.integers(2))
    out = [np.rot90(a, turns, axes=(-2, -1)) for a in arrays]
    return [a[..., ::-1] for a in out] if flip else out


def jitter_intensity(
    arrays: Sequence[np.ndarray],
    rng: np.random.Generator,
    gain: tuple[float, float],
    shift: float,
) -> list[np.ndarray]:
    """``a * x + b`` for every array, a log-uniform in ``gain``, b uniform in +-``shift``.

    The normalisation of a model is fixed (its card), but specimens and settings vary in brightness, so
    in normalised units the same structures arrive at different levels; training over a range of levels
    makes the model indifferent to where the fixed normalisation puts them.
    """
    a = float(np.exp(rng.uniform(np.log(gain[0]), np.log(gain[1]))))
    b = float(rng.uniform(-shift, shift)) if shift > 0 else 0.0
    return [a * x + b for x in arrays]
