"""Early stopping that uses the budget: smoothed patience, warm restarts, never worse than the start.

Tiny models on 64 px images, runs bounded by steps (not minutes), so every run is the same everywhere.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter

from livedenoise.model import build_model, preset
from livedenoise.training import Batch, FinetuneSettings, LoopSettings, LossWeights, train
from livedenoise.training.loop import Patience, SettingsError

TINY = preset("small", stem_channels=4, block_channels=(4, 8, 8), heads=2)
LOSS = LossWeights(ssim=0.0, l1=1.0, mse=0.0)


def denoising_batch(seed: int) -> Batch:
    """Four 64 px crops of blobs (0-1) with Gaussian noise: inputs noisy, targets clean."""
    rng = np.random.default_rng(seed)
    clean = np.stack([gaussian_filter(rng.random((64, 64)) ** 8, 1.5) for _ in range(4)])
    clean = (clean / clean.max(axis=(1, 2), keepdims=True)).astype(np.float32)
    noisy = clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)
    return Batch(*(torch.from_numpy(a)[:, None, None] for a in (noisy, clean)))


def weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_a_restart_at_a_lower_learning_rate_rescues_a_run_whose_first_cycle_only_hurt() -> None:
    """lr 0.3 wrecks a tiny model; without restarts the run stops with the starting weights, with a
    restart from them at a hundredth of the rate it learns and ends better than it began."""
    batch, validation = denoising_batch(0), [denoising_batch(1)]
    plain_settings = LoopSettings(
        lr=0.3, minutes=None, max_steps=60, warmup_steps=2, eval_every=2, patience=3
    )
    start = build_model(TINY, seed=0)

    plain = build_model(TINY, seed=0)
    once = train(plain, lambda _: batch, validation, LOSS, plain_settings)
    assert once.stopped == "early" and once.restart_steps == [] and once.best_step == 0
    assert all(torch.equal(v, weights(start)[k]) for k, v in weights(plain).items())

    model = build_model(TINY, seed=0)
    settings = replace(plain_settings, restarts=1, restart_lr=0.01)
    result = train(model, lambda _: batch, validation, LOSS, settings)
    assert result.restart_steps == [6]  # patience 3 x every 2 steps: the first cycle only hurt
    assert result.best_step > 6
    assert result.best_psnr > once.best_psnr + 0.5  # dB over the starting weights


def test_a_run_that_never_improves_returns_exactly_the_starting_weights() -> None:
    """Fine-tuning a denoiser on pairs that teach the opposite contrast: the restart fails too, the
    run stops early and the model is bit for bit the one it started from (the backbone is the first best)."""
    like = denoising_batch(0)
    inverted = Batch(like.inputs, 1 - like.targets)  # pairs whose clean image is the negative
    validation = [denoising_batch(1)]
    model = build_model(TINY, seed=0)  # a backbone that denoises: trained on a batch like these
    learn = LoopSettings(lr=3e-3, minutes=None, max_steps=40, warmup_steps=2, eval_every=40)
    train(model, lambda _: denoising_batch(0), validation, LOSS, learn)
    start = weights(model)
    settings = LoopSettings(
        lr=3e-3, minutes=None, max_steps=200, eval_every=2, patience=3, smoothing=2, restarts=2
    )
    result = train(model, lambda _: inverted, validation, LOSS, settings)
    assert result.stopped == "early" and result.steps < 200
    assert len(result.restart_steps) == 1  # a restart that did not help ends the run
    assert result.best_step == 0 and result.best_psnr == result.history[0][2]
    assert all(torch.equal(v, start[k]) for k, v in weights(model).items())


def test_one_lucky_validation_does_not_end_a_run_that_keeps_improving() -> None:
    """A spike of +1 dB then a steady rise of 0.1 dB per validation: counted one by one, three
    validations fall short of the spike and patience 3 ends the run; smoothed over 3 they do not."""
    scores = [31.0, 30.3, 30.4, 30.5, 30.6, 30.7, 30.8, 30.9, 31.1, 31.2]
    one_by_one, smoothed = Patience(30.0), Patience(30.0, smoothing=3)
    assert max(one_by_one.update(s) for s in scores) >= 3
    assert max(smoothed.update(s) for s in scores) < 3
    assert smoothed.stale == 0  # the rise is still counted as one


def test_a_dip_after_a_plateau_counts_as_no_improvement_not_as_a_stop() -> None:
    """Smoothing delays neither the count on a real plateau nor resets it on noise."""
    plateau = Patience(30.0, smoothing=3)
    stale = [plateau.update(s) for s in (30.0, 29.9, 30.0, 30.0, 29.8)]
    assert stale == [1, 2, 3, 4, 5]


def test_finetuning_smooths_and_restarts_by_default_and_refuses_settings_that_cannot() -> None:
    defaults = FinetuneSettings()
    assert defaults.smoothing > 1 and defaults.restarts >= 1 and 0 < defaults.restart_lr < 1
    with pytest.raises(SettingsError, match="restart_lr"):
        LoopSettings(restart_lr=0.0)
    with pytest.raises(SettingsError, match="smoothing 0"):
        LoopSettings(smoothing=0)
