"""Training: realistic pairs, a loop that learns, fine-tuned models with lineage, clear data errors,
and `livedenoise finetune` as a user runs it.

Tiny models, tiny images, a few steps: what a user would notice, in seconds.
"""

from __future__ import annotations

from pathlib import Path
from unittest.mock import Mock, call

import numpy as np
import pytest
import tifffile
import torch
from scipy.ndimage import gaussian_filter
from typer.testing import CliRunner

from livedenoise.acquisition.noise import DetectorModel
from livedenoise.cli import app
from livedenoise.events import Events, Progress
from livedenoise.imageio import Image, write_image
from livedenoise.inference import denoise_stack, load_engine
from livedenoise.metrics import ssim as numpy_ssim
from livedenoise.model import ModelCard, Normalization, build_model, load_model, preset, save_model
from livedenoise.training import (
    TILE,
    TRAINED_NORMALIZATION,
    Batch,
    Batches,
    BatchPlan,
    FinetuneSettings,
    LoopSettings,
    LossWeights,
    PairsError,
    PairSource,
    denoise,
    finetune_folder,
    fit_normalization,
    load_pairs,
    microscope_pairs,
    ssim,
    train,
)
from livedenoise.training.noise_law import NoiseLaw, ResampledSource
from livedenoise.training.pairs import ImagePair
from livedenoise.training.synth import noisy_window

TINY = preset("small", stem_channels=4, block_channels=(4, 8, 8), heads=2)
QUICK = FinetuneSettings(
    minutes=None, epochs=0.5, eval_every=2, plan=BatchPlan(patch_sizes=(32,), pixels=4 * 32 * 32)
)


def specimen(rng: np.random.Generator, size: int = 64) -> np.ndarray:
    """Blobs and filaments on a dark background, 8-bit-like levels."""
    img = gaussian_filter(rng.random((size, size)) ** 8, 1.5)
    return (5 + 200 * img / img.max()).astype(np.float32)


def write_pairs(folder: Path, count: int = 2, size: int = 64, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for sub in ("noisy", "clean"):
        (folder / sub).mkdir(parents=True)
    for i in range(count):
        clean = specimen(rng, size)
        noisy = (4 * rng.poisson(clean / 4)).astype(np.float32)
        if i % 2:  # both readers: NumPy and TIFF
            np.save(folder / "noisy" / f"p{i}.npy", noisy)
            np.save(folder / "clean" / f"p{i}.npy", clean)
        else:
            tifffile.imwrite(folder / "noisy" / f"p{i}.tif", noisy)
            tifffile.imwrite(folder / "clean" / f"p{i}.tif", clean)
    return folder


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("backbone") / "tiny-backbone"
    save_model(build_model(TINY, seed=3), ModelCard(name="tiny-backbone", config=TINY), path)
    return path


def test_synthetic_noise_is_poisson_gaussian_and_independent_per_frame() -> None:
    rng = np.random.default_rng(0)
    clean = np.full((64, 64), 0.5, np.float32)
    det = DetectorModel(gain=4.0, excess_noise=1.0, read_noise=2.0, offset=10.0, bit_depth=12)
    noisy, expected = noisy_window(clean, 4, det, 50.0, 0.0, rng)
    assert noisy.shape == (4, 64, 64)
    assert expected.mean() == pytest.approx(10 + 4 * 25)
    # variance = gain x signal + read noise^2 (+ rounding), as on a real detector
    assert noisy.var() == pytest.approx(4 * 100 + 4 + 1 / 12, rel=0.1)
    # T realisations of one static field: independent noise from frame to frame
    a, b = (noisy[0] - expected).ravel(), (noisy[1] - expected).ravel()
    assert abs(np.corrcoef(a, b)[0, 1]) < 0.05
    # and independent from pixel to pixel, as a scanner's
    assert abs(np.corrcoef(noisy[0, :, :-1].ravel(), noisy[0, :, 1:].ravel())[0, 1]) < 0.05


@pytest.mark.parametrize("correlation", [0.06, 0.6])
def test_synthetic_noise_correlates_horizontal_neighbours_as_asked(correlation: float) -> None:
    """Widefield cameras' noise correlates neighbours (about 0.6 in FMD), scanners' barely."""
    rng = np.random.default_rng(5)
    clean = np.full((128, 128), 0.5, np.float32)
    det = DetectorModel(gain=2.0, excess_noise=1.0, read_noise=1.0, offset=20.0, bit_depth=12)
    noisy, expected = noisy_window(clean, 2, det, 200.0, 0.0, rng, correlation)
    residual = noisy[0] - expected
    horizontal = np.corrcoef(residual[:, :-1].ravel(), residual[:, 1:].ravel())[0, 1]
    vertical = np.corrcoef(residual[:-1].ravel(), residual[1:].ravel())[0, 1]
    assert horizontal == pytest.approx(correlation, abs=0.03)
    assert abs(vertical) < 0.03
    # variance kept: gain^2 x photons + read noise^2 + rounding
    assert residual.var() == pytest.approx(2.0**2 * 100 + 1 + 1 / 12, rel=0.1)


def test_simulated_microscope_pairs_are_noisy_frames_of_a_cleaner_field() -> None:
    (pair,) = microscope_pairs(1, size=32, frames=2, seed=3)
    assert pair.noisy.shape == pair.clean.shape == (2, 32, 32)
    assert not np.array_equal(pair.noisy[0], pair.noisy[1])  # independent realisations
    err_single = np.mean((pair.noisy[0] - pair.clean[0]) ** 2)
    err_mean = np.mean((pair.noisy.mean(0) - pair.clean[0]) ** 2)
    assert err_mean < err_single  # averaging the noisy frames approaches the clean field


def test_noise_law_of_a_pair_is_recovered_and_resampled_at_it() -> None:
    """Fine-tuning draws fresh noise on the user's clean images at the law their own pairs show."""
    rng = np.random.default_rng(1)
    clean = np.repeat(np.linspace(10, 150, 128, dtype=np.float32)[None], 128, axis=0)
    noisy = np.clip(np.rint(4.0 * rng.poisson((clean - 3.0) / 4.0) + 3.0), 0, 255)
    law = NoiseLaw.fit(ImagePair("ramp", noisy[None], clean[None]))
    assert law.gain == pytest.approx(4.0, rel=0.1)
    assert law.offset == pytest.approx(3.0, abs=3.0)
    fresh = np.stack([law.sample(clean, rng) for _ in range(4)])
    assert not np.array_equal(fresh[0], fresh[1])  # a new realisation every time
    bright = clean > 100  # variance gain x (mean - offset), as in the recording
    assert fresh[:, bright].var(axis=0, ddof=1).mean() == pytest.approx(
        4.0 * (clean[bright].mean() - 3.0), rel=0.15
    )
    source = ResampledSource.of(
        [ImagePair("ramp", noisy[None], clean[None])], Normalization(offset=0, scale=255)
    )
    assert source is not None
    x, y = source.draw(32, 3, rng)
    assert x.shape == y.shape == (3, 32, 32)
    assert np.allclose(y[0], y[2]) and not np.allclose(x[0], x[2])


def test_pairs_without_signal_dependent_noise_are_not_resampled() -> None:
    """A pair whose noise law cannot be fitted is trained on as recorded, not given invented noise."""
    clean = np.repeat(np.linspace(10, 240, 64, dtype=np.float32)[None], 64, axis=0)[None]
    flat = ImagePair("noise-free", clean.copy(), clean)
    with pytest.raises(ValueError, match="does not grow with the signal"):
        NoiseLaw.fit(flat)
    assert ResampledSource.of([flat], Normalization(offset=0, scale=255)) is None


def test_batches_mix_patch_sizes_keep_pairs_registered_and_fit_a_pixel_budget() -> None:
    rng = np.random.default_rng(1)
    frames = rng.random((3, 80, 80)).astype(np.float32)
    # identical input and target
    source = PairSource([ImagePair("f", frames, frames.copy())], TRAINED_NORMALIZATION)
    plan = BatchPlan(patch_sizes=(16, 32), frames=(1, 2), pixels=8 * 32 * 32)
    batches = Batches([(source, 1.0)], plan)
    shapes = set()
    for _ in range(12):
        b = batches(rng)
        assert torch.equal(b.inputs, b.targets)  # crops, flips, rotations applied to both alike
        bsz, t, c, h, w = b.inputs.shape
        assert c == 1 and h == w and bsz * t * h * w == pytest.approx(plan.pixels, rel=0.25)
        shapes.add((t, h))
    assert {h for _, h in shapes} == {16, 32} and {t for t, _ in shapes} == {1, 2}


def test_normalisation_maps_dark_and_bright_levels_to_zero_and_one() -> None:
    img = np.linspace(100, 1100, 100_000, dtype=np.float32)
    norm = fit_normalization([img])
    low, high = norm.forward(np.array([norm.offset, norm.offset + norm.scale]))
    assert (low, high) == pytest.approx((0.0, 1.0))
    assert norm.offset == pytest.approx(105, abs=1) and norm.scale == pytest.approx(994, abs=2)


def test_torch_ssim_agrees_with_the_reported_metric() -> None:
    rng = np.random.default_rng(2)
    clean = specimen(rng, 96) / 255
    noisy = clean + rng.normal(0, 0.05, clean.shape).astype(np.float32)
    as_tensor = [torch.from_numpy(a)[None, None, None] for a in (noisy, clean)]
    assert float(ssim(as_tensor[1], as_tensor[1])) == pytest.approx(1.0)
    ours = float(ssim(*as_tensor))
    assert ours == pytest.approx(numpy_ssim(noisy, clean, data_range=1.0), abs=0.03)


def test_training_steps_lower_the_loss_on_a_fixed_batch() -> None:
    rng = np.random.default_rng(4)
    clean = np.stack([specimen(rng) for _ in range(4)]) / 255
    noisy = clean + rng.normal(0, 0.1, clean.shape).astype(np.float32)
    batch = Batch(*(torch.from_numpy(a)[:, None, None] for a in (noisy, clean)))
    model = build_model(TINY, seed=0)
    loss = LossWeights(ssim=1.0, l1=1.0, mse=0.0)
    with torch.no_grad():
        before = float(loss(model(batch.inputs), batch.targets))
    settings = LoopSettings(lr=3e-3, minutes=None, max_steps=8, warmup_steps=0, eval_every=1)
    events, progress, status = Events(), Mock(), Mock()
    events.progress.connect(progress)
    events.status.connect(status)
    result = train(model, lambda _: batch, [batch], loss, settings, events=events)
    with torch.no_grad():
        after = float(loss(model(batch.inputs), batch.targets))
    assert after < 0.9 * before
    assert result.best_psnr > result.history[0][2]
    # a bar's worth of signals: each step of the 8, then the end; a status line per validation
    steps = [Progress(i, 8, "steps") for i in range(9)]
    assert [c.args[0] for c in progress.call_args_list] == [*steps, Progress(8, 8, "steps")]
    assert status.call_count == len(result.history) == 9
    assert f"(best {result.best_psnr:.2f})" in status.call_args.args[0]


def test_finetuning_reports_through_events(backbone: Path, tmp_path: Path) -> None:
    """Progress, status and a warning for the blank pair reach receivers as typed payloads."""
    pairs_dir = write_pairs(tmp_path / "pairs")
    for sub in ("noisy", "clean"):
        np.save(pairs_dir / sub / "shutter.npy", np.zeros((64, 64), np.float32))
    events, progress, status, warning = Events(), Mock(), Mock(), Mock()
    events.progress.connect(progress)
    events.status.connect(status)
    events.warning.connect(warning)
    _, report = finetune_folder(pairs_dir, tmp_path / "m", backbone, QUICK, events=events)
    warning.assert_called_once()
    assert "skipped 1 blank pair" in warning.call_args.args[0]
    assert "shutter.npy" in warning.call_args.args[0]
    steps = report.result.steps
    assert progress.call_args_list[0] == call(Progress(0, steps, "steps"))  # epochs: steps known
    assert progress.call_args_list[-1] == call(Progress(steps, steps, "steps"))
    assert all(
        isinstance(c.args[0], str) and "val PSNR" in c.args[0] for c in status.call_args_list
    )


def test_finetuned_model_saves_and_reloads_with_its_lineage(backbone: Path, tmp_path: Path) -> None:
    pairs_dir = write_pairs(tmp_path / "pairs")
    out = tmp_path / "models" / "my-experiment"
    card, report = finetune_folder(pairs_dir, out, backbone, QUICK)
    model, reloaded = load_model(out)
    _, parent = load_model(backbone)
    assert reloaded == card
    assert reloaded.parent == parent.lineage
    assert reloaded.trained_on == [f"{pairs_dir}/{{noisy,clean}}/{n}" for n in ("p0.tif", "p1.npy")]
    # normalised per window, whatever the parent did, so any units work
    pairs = load_pairs(pairs_dir)
    assert reloaded.normalization == TRAINED_NORMALIZATION
    assert set(report.quality) == {"raw", "backbone", "fine-tuned"}
    assert reloaded.metrics["heldout_psnr_finetuned"] == report.quality["fine-tuned"].psnr
    noisy = pairs[0].noisy
    again = denoise(model, reloaded.normalization, noisy)
    assert again.shape == noisy.shape and np.isfinite(again).all()


def test_training_evaluation_denoises_as_the_saved_model_will(tmp_path: Path) -> None:
    model, norm = build_model(TINY, seed=4), Normalization(offset=10.0, scale=200.0)
    card = ModelCard(name="tiny", config=TINY, normalization=norm, tile=TILE)
    save_model(model, card, tmp_path / "tiny")
    frames = np.stack([specimen(np.random.default_rng(i), size=160) for i in range(5)])
    reported = denoise(model, norm, frames, window=3)  # what the fine-tuning report scores
    used = denoise_stack(load_engine(tmp_path / "tiny", "torch"), frames, window=3)
    # frames larger than the tile: both tiled alike, each frame in the 3 frames around it
    assert reported.shape == frames.shape
    np.testing.assert_allclose(reported, used, rtol=1e-5, atol=1e-3)


def test_self_supervised_finetuning_uses_odd_even_frames_of_stacks(
    backbone: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    folder = tmp_path / "noisy-only"
    folder.mkdir()
    clean = specimen(rng)
    np.save(
        folder / "repeats.npy", rng.poisson(np.broadcast_to(clean, (4, 64, 64))).astype(np.uint16)
    )
    card, report = finetune_folder(folder, tmp_path / "ss", backbone, QUICK, self_supervised=True)
    assert "odd/even" in report.mode
    assert load_model(tmp_path / "ss")[1].parent == load_model(backbone)[1].lineage
    assert card.trained_on == [str(folder / "repeats.npy")]


@pytest.mark.parametrize(
    ("breakage", "message"),
    [
        ("missing", r"noisy/p1\.npy has no partner: .*clean/p1\.npy is missing"),
        ("shape", r"p0\.tif: noisy is 64x64 but clean is 32x64"),
        ("unreadable", r"clean/p1\.npy: cannot be read"),
    ],
)
def test_broken_pairs_folder_names_the_file(tmp_path: Path, breakage: str, message: str) -> None:
    folder = write_pairs(tmp_path / "pairs")
    if breakage == "missing":
        (folder / "clean" / "p1.npy").unlink()
    elif breakage == "shape":
        tifffile.imwrite(folder / "clean" / "p0.tif", np.zeros((32, 64), np.float32))
    else:
        (folder / "clean" / "p1.npy").write_bytes(b"not an array")
    with pytest.raises(PairsError, match=message):
        load_pairs(folder)


def test_pairs_are_read_in_any_image_format_ome_zarr_included(tmp_path: Path) -> None:
    """Pair files go through livedenoise.imageio: OME-Zarr images (folders) pair as files do."""
    rng = np.random.default_rng(6)
    clean = specimen(rng)
    noisy = rng.poisson(np.broadcast_to(clean, (3, 64, 64))).astype(np.uint16)
    write_image(tmp_path / "noisy" / "field.ome.zarr", Image(noisy, "TYX"))
    write_image(tmp_path / "clean" / "field.ome.zarr", Image(clean, "YX"))
    (pair,) = load_pairs(tmp_path)
    assert pair.name == "field.ome.zarr" and pair.noisy.dtype == np.float32
    np.testing.assert_array_equal(pair.noisy, noisy)
    np.testing.assert_array_equal(pair.clean, np.broadcast_to(clean, noisy.shape))


# ---- the command line -------------------------------------------------------------------

runner = CliRunner()


def run_cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, ["finetune", *args], terminal_width=200)
    return result.exit_code, " ".join(result.output.split())


def test_finetune_reports_held_out_quality_and_writes_a_child_model(
    backbone: Path, tmp_path: Path
) -> None:
    pairs = write_pairs(tmp_path / "pairs")
    args = [str(pairs), "--out", str(tmp_path / "exp1"), "--backbone", str(backbone)]
    code, output = run_cli(*args, "--epochs", "1")
    assert code == 0, output
    for row in ("raw", "backbone", "fine-tuned", "PSNR"):
        assert row in output
    _, card = load_model(tmp_path / "exp1")
    assert card.parent == load_model(backbone)[1].lineage
    assert f"parent {card.parent}" in output


def test_self_supervised_finetune_of_single_images_masks_pixels(
    backbone: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "noisy"
    folder.mkdir()
    np.save(folder / "a.npy", np.random.default_rng(0).poisson(specimen(np.random.default_rng(1))))
    args = [
        str(folder),
        "--out",
        str(tmp_path / "ss"),
        "--backbone",
        str(backbone),
        "--epochs",
        "1",
    ]
    code, output = run_cli(*args, "--self-supervised")
    assert code == 0, output
    assert "masking" in output and (tmp_path / "ss.safetensors").is_file()


def test_broken_pairs_are_a_clear_error_not_a_traceback(backbone: Path, tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs")
    (pairs / "noisy" / "p0.tif").write_bytes(b"garbage")
    code, output = run_cli(str(pairs), "--out", str(tmp_path / "x"), "--backbone", str(backbone))
    assert code == 1
    assert "noisy/p0.tif" in output and "cannot be read" in output and "Traceback" not in output
    assert not (tmp_path / "x.json").exists()


def test_missing_backbone_says_how_to_get_one(tmp_path: Path) -> None:
    pairs = write_pairs(tmp_path / "pairs")
    code, output = run_cli(
        str(pairs), "--out", str(tmp_path / "x"), "--backbone", str(tmp_path / "no")
    )
    assert code == 1
    assert "no backbone model" in output and "train_backbone.py" in output


def test_finetune_refuses_an_output_it_cannot_write_before_training(backbone: Path, tmp_path):
    pairs = write_pairs(tmp_path / "pairs")
    code, output = run_cli(str(pairs), "--out", "/proc/exp", "--backbone", str(backbone))
    assert code == 1 and "cannot save a model in /proc" in output


def test_finetune_refuses_a_learning_rate_that_cannot_train(backbone: Path, tmp_path) -> None:
    pairs = write_pairs(tmp_path / "pairs")
    for lr in ("0", "-1"):
        args = (str(pairs), "--out", str(tmp_path / "m"), "--backbone", str(backbone), "--lr", lr)
        code, output = run_cli(*args)
        assert code == 1 and "a learning rate must be above 0" in output
    assert not (tmp_path / "m.json").exists()


def test_a_learning_rate_that_blows_up_training_is_a_clear_error(backbone: Path, tmp_path) -> None:
    """The loss turns NaN at the second step: one line naming the learning rate's flag, no model."""
    pairs = write_pairs(tmp_path / "pairs")
    args = (str(pairs), "--out", str(tmp_path / "m"), "--backbone", str(backbone), "--lr", "1e30")
    code, output = run_cli(*args, "--minutes", "5")  # it fails long before the minutes run out
    assert code == 1 and "Traceback" not in output
    assert "the loss became" in output and "at step 1; lower the learning rate (--lr)" in output
    assert not (tmp_path / "m.json").exists()


def test_ctrl_c_ends_finetuning_with_the_best_weights_saved(backbone: Path, tmp_path: Path) -> None:
    """SIGINT to a real `livedenoise finetune`: the model so far is saved and says so."""
    import time

    from conftest import LivedenoiseProcess

    pairs = write_pairs(tmp_path / "pairs")
    args = ["finetune", str(pairs), "--out", str(tmp_path / "cut"), "--backbone", str(backbone)]
    run = LivedenoiseProcess(*args, "--minutes", "10")
    run.wait_for("fine-tuning")
    time.sleep(3)  # a few steps in
    run.interrupt()
    code, output = run.finish()
    assert code == 130, output
    assert "stopped by Ctrl-C" in output and "Traceback" not in output
    _, card = load_model(tmp_path / "cut")
    assert card.parent == load_model(backbone)[1].lineage
