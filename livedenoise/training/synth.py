"""Pretraining pairs: realistic detector noise on clean images, and pairs from the simulated microscope.

Clean images become noisy through the same Poisson-Gaussian detector chain the simulated microscope uses
(``acquisition.noise``: photon counts, gain with excess noise, read noise, offset, quantisation and
clipping to the ADC), over a range of photon levels, gains and offsets, with noise that is independent
from pixel to pixel or correlated between horizontal neighbours as a camera's processing makes it
(neighbour correlation about 0.6 in widefield frames of the FMD dataset, 0.05-0.08 in confocal and
two-photon ones; Zhang et al., CVPR 2019). T independent realisations of one static patch make a window,
which teaches the attention to average frames. The microscope pairs go
through a real Micro-Manager core: a field at a low line average against the same field at a high one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from pymmcore_plus import CMMCorePlus
from scipy.ndimage import correlate1d

from livedenoise.acquisition import CHANNEL_GROUP, CHANNELS, DETECTOR, make_core
from livedenoise.acquisition.noise import DetectorModel, average_passes
from livedenoise.model import Normalization
from livedenoise.training.augment import random_crop
from livedenoise.training.normalize import fit_normalization
from livedenoise.training.pairs import ImagePair

CLEAN_PASSES = 64 * 4  # clean microscope reference: 4 frames at line average 64


def _log_uniform(rng: np.random.Generator, bounds: tuple[float, float]) -> float:
    return float(np.exp(rng.uniform(np.log(bounds[0]), np.log(bounds[1]))))


@dataclass(frozen=True)
class NoiseLevels:
    """Ranges of the recording conditions that noisy pairs are drawn from."""

    # photons per pixel at the bright level, log-uniform
    photons: tuple[float, float] = (3.0, 300.0)
    gain: tuple[float, float] = (0.5, 30.0)  # ADU per photon, log-uniform
    offset: tuple[float, float] = (0.0, 120.0)  # ADU
    read_noise: tuple[float, float] = (0.0, 3.0)  # ADU rms
    excess_noise: tuple[float, float] = (1.0, 1.5)  # 1 for a camera, about 1.2-1.5 for a PMT
    background: tuple[float, float] = (0.0, 0.05)  # autofluorescence, fraction of the bright level
    # horizontal neighbour correlation of the noise: a camera's (share of draws) or a scanner's
    camera_correlation: tuple[float, float] = (0.4, 0.7)
    scanner_correlation: tuple[float, float] = (0.0, 0.1)
    camera_share: float = 0.3

    def draw(self, rng: np.random.Generator) -> tuple[DetectorModel, float, float, float]:
        """A detector, the photons at the bright level, the background (fraction of it), the correlation."""
        photons, gain = _log_uniform(rng, self.photons), _log_uniform(rng, self.gain)
        offset = rng.uniform(*self.offset)
        background = rng.uniform(*self.background)
        bright = gain * photons * (1 + background) + offset
        # the smallest ADC that holds the bright level, allowing a little saturation, as real data has
        bits = 8 if bright <= 1.1 * 255 else 12 if bright <= 4095 else 16
        det = DetectorModel(
            gain=gain,
            excess_noise=rng.uniform(*self.excess_noise),
            read_noise=rng.uniform(*self.read_noise),
            offset=offset,
            bit_depth=bits,
        )
        camera = rng.random() < self.camera_share
        correlation = rng.uniform(
            *(self.camera_correlation if camera else self.scanner_correlation)
        )
        return det, photons, background, correlation


def unit_range(image: np.ndarray) -> np.ndarray:
    """A clean image with its dark level at 0 and its bright level at 1 (negatives clipped)."""
    return np.clip(fit_normalization([image]).forward(image), 0, None)


def noisy_window(
    clean: np.ndarray,
    frames: int,
    det: DetectorModel,
    photons: float,
    background: float,
    rng: np.random.Generator,
    correlation: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """T noisy recordings of a unit-range ``clean`` image and its expected value, both in ADU (float32).

    ``correlation`` (0 to 0.7) is the noise's correlation between horizontal neighbours.
    """
    expected_photons = photons * (clean + background)
    noisy = average_passes(np.broadcast_to(expected_photons, (frames, *clean.shape)), 1, det, rng)
    full_scale = 2**det.bit_depth - 1
    expected = np.clip(det.gain * expected_photons + det.offset, 0, full_scale).astype(np.float32)
    noisy = noisy.astype(np.float32)
    if correlation > 0:
        noisy = np.clip(
            np.rint(expected + correlate_rows(noisy - expected, correlation)), 0, full_scale
        )
    return noisy, expected


def correlate_rows(noise: np.ndarray, correlation: float) -> np.ndarray:
    """``noise`` filtered along x by ``[a, 1, a]`` so neighbours correlate as asked, variance kept.

    The kernel's lag-1 correlation is 2a / (1 + 2a^2), solved for a (at most 1/sqrt(2)).
    """
    rho = min(correlation, 0.7)
    a = (1 - np.sqrt(1 - 2 * rho**2)) / (2 * rho)
    kernel = np.array([a, 1.0, a]) / np.sqrt(1 + 2 * a**2)
    return correlate1d(noise, kernel, axis=-1, mode="reflect").astype(np.float32)


class SynthSource:
    """Noisy windows of clean images under random recording conditions, made on the fly.

    ``images`` are clean recordings as ``[N, H, W]`` (planes of channels or z): each image is drawn
    equally often, then one of its planes, so a 60-slice stack does not crowd out single images. A
    window is normalised as inference would normalise the frame around it: ``norm`` taken of a
    ``CONTEXT`` px field (at every second pixel, which costs a quarter and changes percentiles little).
    """

    CONTEXT = 256

    def __init__(
        self,
        images: Sequence[np.ndarray],
        levels: NoiseLevels,
        norm: Normalization,
        max_frames: int = 4,
    ) -> None:
        self.images = [np.stack([unit_range(plane) for plane in im]) for im in images]
        self.levels = levels
        self.norm = norm
        self._max_frames = max_frames

    @property
    def max_frames(self) -> int:
        return self._max_frames

    @property
    def max_patch(self) -> int:
        return min(min(im.shape[1:]) for im in self.images)

    def draw(
        self, size: int, frames: int, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        image = self.images[rng.integers(len(self.images))]
        (context,) = random_crop([image[rng.integers(image.shape[0])]], self.CONTEXT, rng)
        (patch,) = random_crop([context], size, rng)
        det, photons, background, correlation = self.levels.draw(rng)
        conditions = (det, photons, background, rng, correlation)
        noisy, expected = noisy_window(patch, frames, *conditions)
        sample, _ = noisy_window(context[::2, ::2], frames, *conditions)
        norm = self.norm.fitted(sample)
        return norm.forward(noisy), norm.forward(np.broadcast_to(expected, noisy.shape))


def microscope_pairs(
    fields: int,
    size: int = 256,
    frames: int = 4,
    seed: int = 0,
    line_averages: Sequence[int] = (1, 2, 4),
) -> list[ImagePair]:
    """Random fields through the simulated microscope's core, as a user would record pairs.

    Noisy: T frames at one of ``line_averages``; clean: the mean of 4 frames at line average 64; random
    channel, zoom, focus, laser power, gain, offset and read noise. Bleaching is off, so the field is
    static. Fields whose signal barely rises above the clean reference's own noise (an empty field, a
    plane above the cells) teach nothing and are drawn again.
    """
    rng = np.random.default_rng(seed)
    core = make_core()
    settings: dict[str, str | int] = {
        "TimeScale": 0,
        "Photobleaching": "Off",
        "FrameWidth": size,
        "FrameHeight": size,
    }
    for name, value in settings.items():
        core.setProperty(DETECTOR, name, value)
    pitch = 45.0  # um between cells of the simulated specimen: centre fields near a cell
    pairs: list[ImagePair] = []
    for _ in range(20 * fields):
        if len(pairs) == fields:
            break
        core.setConfig(CHANNEL_GROUP, str(rng.choice(list(CHANNELS))))
        cell = (rng.integers(-200, 200, 2) + 0.5) * pitch + rng.uniform(-15, 15, 2)
        core.setXYPosition(float(cell[0]), float(cell[1]))
        core.setPosition(float(rng.uniform(-0.5, 5.0)))
        detector = {
            "Zoom": int(rng.choice([1, 2, 4])),
            "LaserPower_mW": _log_uniform(rng, (1.0, 30.0)),
            "Gain": _log_uniform(rng, (5.0, 60.0)),
            "Offset": float(rng.uniform(0, 200)),
            "ReadNoise_ADU": float(rng.uniform(0, 5)),
            "ExcessNoiseFactor": float(rng.uniform(1.0, 1.6)),
        }
        for name, level in detector.items():
            core.setProperty(DETECTOR, name, level)
        passes = int(rng.choice(line_averages))
        noisy = _snaps(core, passes, frames)
        clean = _snaps(core, 64, CLEAN_PASSES // 64).mean(axis=0, keepdims=True)
        clean_noise = float((noisy[0] - clean[0]).std()) * np.sqrt(passes / CLEAN_PASSES)
        if fit_normalization([clean]).scale >= 30 * clean_noise:
            name = f"simulated field {len(pairs)}"
            pairs.append(ImagePair(name, noisy, np.broadcast_to(clean, noisy.shape)))
    return pairs


def _snaps(core: CMMCorePlus, line_average: int, count: int) -> np.ndarray:
    """``count`` frames of the current field at ``line_average``, as ``[count, H, W]`` float32."""
    core.setProperty(DETECTOR, "LineAverage", line_average)
    frames = []
    for _ in range(count):
        core.snapImage()
        frames.append(core.getImage().astype(np.float32))
    return np.stack(frames)
