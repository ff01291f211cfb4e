"""What a point-scanning detector adds to the light: photon statistics, gain noise, read noise, ADC.

One pass over a pixel records N ~ Poisson(lambda) photons. A PMT multiplies each photon by a random
gain g with mean G and relative variance F - 1 (F is the excess noise factor), the amplifier adds
Gaussian read noise, and the ADC adds an offset, rounds and clips. The variance of one pass is
therefore F * G * S + read_noise^2 above the offset, where S = G * lambda is the mean signal.

Line averaging averages n independent passes. Instead of drawing n passes we draw their sum
exactly: n Poisson draws sum to one Poisson draw of n * lambda, the photon gains are independent
and gamma distributed (gamma draws with a common scale add up to one gamma draw), and n Gaussian
read noises sum to one Gaussian with n times the variance. The average of n passes then has the
variance of one pass divided by n, at the cost of a single pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class DetectorModel:
    """The settings of the detector chain that shape the noise of a frame."""

    gain: float  # mean ADU per detected photon
    excess_noise: float  # excess noise factor F >= 1 of the gain (1 = noiseless gain)
    read_noise: float  # ADU rms added per pass
    offset: float  # ADU added to every pixel
    bit_depth: int  # ADC resolution: values are clipped to 0 .. 2**bit_depth - 1

    @property
    def dtype(self) -> type[np.unsignedinteger]:
        """The smallest unsigned type that holds the ADC range."""
        return np.uint8 if self.bit_depth <= 8 else np.uint16


def average_passes(
    photons_per_pass: np.ndarray, passes: int, det: DetectorModel, rng: np.random.Generator
) -> np.ndarray:
    """Return the ADC image of `passes` averaged scan passes of the expected photon counts."""
    photons = rng.poisson(photons_per_pass * passes)
    charge: np.ndarray
    if det.excess_noise > 1.0:
        shape = 1.0 / (det.excess_noise - 1.0)  # gamma gain: relative variance 1 / shape
        charge = rng.gamma(photons * shape, det.gain / shape)
    else:
        charge = photons * det.gain
    if det.read_noise > 0:
        charge = charge + rng.normal(0.0, det.read_noise * np.sqrt(passes), charge.shape)
    value = np.rint(charge / passes + det.offset)
    return np.clip(value, 0, 2**det.bit_depth - 1).astype(det.dtype)
