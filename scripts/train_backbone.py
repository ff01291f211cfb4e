"""Train the shipped `small` CNNT backbone on a CPU: real clean images with simulated detector noise, plus
pairs recorded through the simulated microscope.

    python scripts/train_backbone.py [--minutes 80] [--out livedenoise/weights/backbone-small] [--fields 48]

Data: every image in ../shared/data/clean (channels and z-slices as separate planes; some held out for
validation), noisy copies made on the fly over a range of photon levels, gains, offsets,
read noise and bit depths, with T = 1, 2 or 4 independent realisations per window; and `--fields` random
fields of the simulated microscope (line average 1-4 against 4 x 64), some more fields for validation.
Intensities are jittered (x0.5..x2, +-0.1 in normalised units) so the model does not depend on where a
fixed normalisation puts the signal. Not used: ../shared/data/pairs (all four pairs are the test folds of
scripts/eval_finetune.py) and ../shared/data/repeats (kept for testing calibration).

The card's normalisation suits the simulated microscope at its default settings, so the backbone works
out of the box in the demo; fine-tuning fits a new one to the user's data. At the end the backbone alone
is scored on the four pairs (report only; nothing is selected on them).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from livedenoise.acquisition import CHANNEL_GROUP, CHANNELS, DETECTOR, make_core
from livedenoise.model import CNNT, ModelCard, Normalization, build_model, preset, save_model
from livedenoise.training import (
    TILE,
    Batches,
    BatchPlan,
    LoopSettings,
    LossWeights,
    NoiseLevels,
    PairSource,
    SynthSource,
    denoise,
    fit_normalization,
    load_pairs,
    mean_quality,
    microscope_pairs,
    read_frames,
    train,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
ROWS_KEPT = {"imagej_hela-cells_3ch_uint16.tif": 476}  # below: an all-zero label box
VAL_FRACTION = 0.2
PLAN = BatchPlan(frames=(1, 1, 2, 4), gain=(0.5, 2.0), shift=0.1)
LOSS = LossWeights(ssim=1.0, l1=1.0, mse=0.0)
console = Console()


def clean_images(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(training, validation) planes of every clean image.

    Validation: the last 20% of the slices of a z-stack, else a bottom band of rows (at least a tile).
    """
    train_part, val_part, names = [], [], []
    for path in sorted(folder.glob("*.tif")):
        planes = read_frames(path)[:, : ROWS_KEPT.get(path.name)]
        n, h, _ = planes.shape
        if n >= 10:
            cut = n - round(VAL_FRACTION * n)
            train_part.append(planes[:cut])
            val_part.append(planes[cut:])
        else:
            cut = h - max(TILE, round(VAL_FRACTION * h))
            train_part.append(planes[:, :cut])
            val_part.append(planes[:, cut:])
        names.append(f"{path.relative_to(folder.parent)} {planes.shape}")
    return train_part, val_part, names


def default_microscope_normalization(fields: int = 4) -> Normalization:
    """Dark and bright level of the simulated microscope at its default settings, all channels."""
    core = make_core()
    core.setProperty(DETECTOR, "TimeScale", 0)
    core.setProperty(DETECTOR, "LineAverage", 16)
    frames = []
    for i in range(fields):
        core.setXYPosition(22.5 + 45 * i, 22.5)
        for channel in CHANNELS:
            core.setConfig(CHANNEL_GROUP, channel)
            core.snapImage()
            frames.append(core.getImage().astype(np.float32))
    return fit_normalization(frames)


def score_on_pairs(model: CNNT, pairs_dir: Path) -> dict[str, tuple[float, float]]:
    """Backbone alone on each real pair, normalised by a fit to that pair (report only)."""
    scores = {}
    for p in load_pairs(pairs_dir):
        norm = fit_normalization([p.clean])
        raw = mean_quality([(p.noisy, p.clean)]).psnr
        out = mean_quality([(denoise(model, norm, p.noisy), p.clean)]).psnr
        scores[Path(p.name).stem] = (raw, out)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=80.0, help="training time budget")
    parser.add_argument("--out", type=Path, default=Path("livedenoise/weights/backbone-small"))
    parser.add_argument("--fields", type=int, default=48, help="simulated microscope fields")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    started = time.perf_counter()

    with console.status("preparing data"):
        train_clean, val_clean, clean_names = clean_images(args.data / "clean")
        sim_train = microscope_pairs(args.fields, size=256, seed=args.seed)
        sim_val = microscope_pairs(max(2, args.fields // 8), size=256, seed=args.seed + 1000)
        levels = NoiseLevels()
        sources = [
            (SynthSource(train_clean, levels), 0.7),
            (PairSource.from_pairs(sim_train, None), 0.3),
        ]
        val_sources = [
            (SynthSource(val_clean, levels), 0.7),
            (PairSource.from_pairs(sim_val, None), 0.3),
        ]
        val_rng = np.random.default_rng(args.seed + 1)
        validation = [Batches(val_sources, PLAN)(val_rng) for _ in range(24)]
        norm = default_microscope_normalization()
    prep_s = time.perf_counter() - started
    console.print(
        f"data ready in {prep_s:.0f} s: {len(train_clean)} clean images, "
        f"{len(sim_train)} + {len(sim_val)} simulated fields"
    )

    cfg = preset("small")
    model = build_model(cfg, seed=args.seed)
    loop = LoopSettings(
        lr=args.lr,
        minutes=args.minutes,
        warmup_steps=100,
        eval_every=100,
        patience=15,
        seed=args.seed,
    )
    result = train(model, Batches(sources, PLAN), validation, LOSS, loop, "backbone", console)

    pixels = sum(im.size for im in train_clean) + sum(p.noisy.size for p in sim_train)
    epochs = result.steps * PLAN.pixels / pixels
    pair_scores = score_on_pairs(model, args.data / "pairs")
    gains = [out - raw for raw, out in pair_scores.values()]
    metrics = {
        "val_psnr_start": result.history[0][2],
        "val_psnr": result.best_psnr,
        "steps": float(result.steps),
        "epochs": epochs,
        "train_minutes": result.seconds / 60,
        "total_minutes": (time.perf_counter() - started) / 60,
        "pairs_psnr_gain_mean": float(np.mean(gains)),
        **{f"pairs_psnr_gain_{name}": out - raw for name, (raw, out) in pair_scores.items()},
    }
    trained_on = [
        *(f"../shared/data/{name}" for name in clean_names),
        f"simulated microscope: {len(sim_train)} fields 256x256 (seed {args.seed}), "
        "line average 1-4 vs 4 x 64",
        "synthetic Poisson-Gaussian noise: "
        + ", ".join(f"{k} {v[0]:g}..{v[1]:g}" for k, v in vars(levels).items()),
    ]
    notes = (
        f"`small` preset trained from scratch on a CPU for {result.steps} steps ({epochs:.1f} epochs of "
        f"the training pixels) in {result.seconds / 60:.1f} min (stopped: {result.stopped}; best "
        f"validation at step {result.best_step}); AdamW lr {args.lr:g} with warm-up and cosine decay, "
        f"loss {LOSS}; patches {PLAN.patch_sizes}, T in {sorted(set(PLAN.frames))}, intensity jitter "
        f"x{PLAN.gain[0]:g}..{PLAN.gain[1]:g} +-{PLAN.shift:g}; process frames in {TILE} px tiles. "
        f"Validation: the last {VAL_FRACTION:.0%} of z-slices or a bottom band of rows of every clean "
        f"image with synthetic noise, and {len(sim_val)} other simulated fields "
        "(PSNR in normalised units, no intensity fit). NOT trained on ../shared/data/pairs (all four "
        "pairs are the test folds of scripts/eval_finetune.py; pairs_psnr_gain_* is the backbone "
        "alone on them, normalised by a fit to each pair's clean image) nor on ../shared/data/repeats "
        "(kept for calibration). Normalisation: the simulated microscope's default settings "
        "(fine-tuning fits its own)."
    )
    card = ModelCard(
        name=args.out.stem,
        config=cfg,
        normalization=norm,
        trained_on=trained_on,
        tile=TILE,
        metrics=metrics,
        notes=notes,
    )
    card = save_model(model, card, args.out)

    table = Table(title=f"backbone {card.lineage}: PSNR (dB) on the four pairs, never trained on")
    for column in ("pair", "raw", "backbone", "gain"):
        table.add_column(column, justify="right")
    for name, (raw, out) in pair_scores.items():
        table.add_row(name, f"{raw:.2f}", f"{out:.2f}", f"{out - raw:+.2f}")
    table.add_row("mean", "", "", f"{np.mean(gains):+.2f}")
    console.print(table)
    console.print(
        f"validation PSNR {metrics['val_psnr_start']:.2f} -> {result.best_psnr:.2f} dB; "
        f"{result.steps} steps, {epochs:.1f} epochs, total {metrics['total_minutes']:.1f} min; "
        f"wrote {args.out}.safetensors and .json"
    )


if __name__ == "__main__":
    main()
