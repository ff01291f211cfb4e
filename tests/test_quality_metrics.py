"""Quality metrics behave as a microscopist reads them: more noise, worse numbers; gain and offset free."""

from __future__ import annotations

import numpy as np
import pytest

from livedenoise.metrics import quality


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    yy, xx = np.mgrid[0:96, 0:96]
    return 100 + 80 * np.sin(xx / 7.0) * np.cos(yy / 11.0)


def test_identical_image_is_perfect(reference: np.ndarray) -> None:
    q = quality(reference, reference)
    assert q.psnr == float("inf") and q.ssim == pytest.approx(1.0) and q.nrmse == 0.0


def test_gain_and_offset_do_not_count(reference: np.ndarray) -> None:
    q = quality(3.0 * reference + 17.0, reference)
    assert q.ssim == pytest.approx(1.0) and q.nrmse < 1e-9


def test_more_noise_is_worse_in_every_metric(reference: np.ndarray) -> None:
    rng = np.random.default_rng(0)
    low = quality(reference + rng.normal(0, 5, reference.shape), reference)
    high = quality(reference + rng.normal(0, 20, reference.shape), reference)
    assert low.psnr > high.psnr + 10  # 4x the noise: about 12 dB
    assert low.ssim > high.ssim
    assert low.nrmse < high.nrmse
    # PSNR of Gaussian noise of sigma s over a range R is 20 log10(R / s).
    data_range = reference.max() - reference.min()
    assert low.psnr == pytest.approx(20 * np.log10(data_range / 5), abs=0.3)
