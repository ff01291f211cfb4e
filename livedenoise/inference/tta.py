"""Test-time augmentation: a window denoised in the 8 orientations of the square, then averaged.

The x8 "self-ensemble" of Lim et al. (EDSR, CVPRW 2017), also Timofte et al. (CVPR 2016): the
network runs on the window rotated by 0, 90, 180 and 270 degrees, each with and without a mirror
flip (the dihedral group D4); each output is turned back to the input's orientation and the 8 are
averaged. A network is not exactly equivariant to these transforms, so its 8 errors are partly
independent and their mean has less of them; the sample has no preferred orientation, so no view
is better than another. It costs 8 engine calls per window: for offline work only, never live.

Only the last two axes (H, W) turn: a window keeps its T, C (and batch) axes as they are. A quarter
turn swaps H and W, so a frame that is not square reaches the engine as W x H in half the views; the
engine tiles each view by its own shape.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

VIEWS = 8  # engine calls per window with test-time augmentation
# (quarter turns, mirrored): the 8 orientations of the square
ORIENTATIONS: tuple[tuple[int, bool], ...] = tuple(
    (turns, mirrored) for mirrored in (False, True) for turns in range(4)
)


def oriented(x: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    """``x`` (``[..., H, W]``) mirrored left-right if ``mirrored``, then turned ``turns`` quarter
    turns counter-clockwise (``np.rot90``'s sense): ``[..., W, H]`` for an odd ``turns``."""
    view = np.flip(x, -1) if mirrored else x
    return np.rot90(view, turns, axes=(-2, -1))


def restored(y: np.ndarray, turns: int, mirrored: bool) -> np.ndarray:
    """``y`` turned back from ``oriented(x, turns, mirrored)``'s orientation to ``x``'s."""
    back = np.rot90(y, -turns, axes=(-2, -1))
    return np.flip(back, -1) if mirrored else back


def self_ensemble(denoise: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """The mean of ``denoise`` over the 8 orientations of ``x`` (``[..., H, W]``), each turned back.

    ``denoise`` maps an array to one of the same shape (an engine's call on one window); it gets
    each view as a contiguous array. Float32 of ``x``'s shape; 8 calls of ``denoise``.
    """
    total = np.zeros(x.shape, dtype=np.float32)
    for turns, mirrored in ORIENTATIONS:
        view = np.ascontiguousarray(oriented(x, turns, mirrored))
        total += restored(denoise(view), turns, mirrored)
    total /= VIEWS
    return total
