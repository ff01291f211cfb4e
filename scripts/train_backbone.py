"""Train a CNNT backbone on real and synthetic noise, on a CPU or a CUDA GPU, in parts if need be.

    python scripts/train_backbone.py [--preset small] [--minutes 80] [--out livedenoise/weights/backbone-small]
    python scripts/train_backbone.py --resume livedenoise/weights/backbone-small --minutes 60   # one more part

Data (``--data``, default ../shared/data):
- real noise: every ``fmd_test`` configuration except the three held out for ``scripts/bench_quality.py``
  (``HELD_OUT``, one per modality: never seen here, not even for validation), each 4 raw frames of a
  static field against the 50-frame average (FMD dataset, Zhang et al., CVPR 2019), as windows of
  T = 1, 2 or 4 frames; the bottom 20% of rows of each field validates;
- synthetic noise: every image in ``clean`` with Poisson-Gaussian detector noise drawn on the fly over a
  range of photon levels, gains, offsets, read noise, bit depths and neighbour correlations (camera-like
  about 0.6, scanner-like under 0.1, as measured in FMD); validation: the last 20% of the z-slices of a
  stack, else a bottom band of rows;
- ``--fields`` fields of the simulated microscope (line average 1-4 against 4 x 64), so the demo works.
Not used: ``pairs`` (its frames are frames of the fmd_test confocal fields, held-out one included) and
``repeats`` (kept for testing calibration).

Every window is normalised by its own percentiles (``TRAINED_NORMALIZATION``), as inference does. Batches
are drawn by ``--workers`` processes (default: none on a CPU, 6 on a GPU) so a GPU is not kept waiting.
``--resume`` starts from a saved model's weights (a new warm-up and decay over this part's minutes), so a
long training can run in parts; the card counts the minutes of all parts. The model is scored at the end
on the held-out configurations (report only: nothing is selected on them).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from livedenoise.model import CNNT, ModelCard, build_model, load_model, preset, save_model
from livedenoise.training import (
    TILE,
    TRAINED_NORMALIZATION,
    Batch,
    Batches,
    BatchPlan,
    ImagePair,
    LoopSettings,
    LossWeights,
    NoiseLevels,
    PairSource,
    SynthSource,
    denoise,
    mean_quality,
    microscope_pairs,
    pick_device,
    read_frames,
    split_rows,
    train,
)
from livedenoise.training.batches import Source

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
HELD_OUT = ("Confocal_MICE", "TwoPhoton_BPAE_R", "WideField_BPAE_G")  # as scripts/bench_quality.py
ROWS_KEPT = {"imagej_hela-cells_3ch_uint16.tif": 476}  # below: an all-zero label box
VAL_FRACTION = 0.2
PLAN = BatchPlan(frames=(1, 1, 2, 4), gain=(0.8, 1.25), shift=0.03)
LOSS = LossWeights(ssim=1.0, l1=1.0, mse=0.0)
SHARES = {"fmd": 0.45, "synthetic": 0.4, "microscope": 0.15}  # of the batches
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
        names.append(f"{path.name} {planes.shape}")
    return train_part, val_part, names


def fmd_fields(folder: Path, names: Sequence[str] | None = None) -> list[ImagePair]:
    """FMD fields as pairs: the 4 raw frames against the 50-frame average (broadcast to 4 frames)."""
    pairs = []
    for path in sorted((folder / "noisy").glob("*.tif")):
        if names is not None and path.stem not in names:
            continue
        noisy = read_frames(path)
        clean = read_frames(folder / "clean" / path.name)
        pairs.append(ImagePair(path.stem, noisy, np.broadcast_to(clean, noisy.shape)))
    return pairs


class _Stream(torch.utils.data.IterableDataset):
    """Endless batches, each worker with its own random stream."""

    def __init__(self, batches: Batches, seed: int) -> None:
        self.batches, self.seed = batches, seed

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        rng = np.random.default_rng([self.seed, 0 if info is None else info.id + 1])
        while True:
            b = self.batches(rng)
            yield b.inputs, b.targets


def batch_stream(batches: Batches, workers: int, seed: int, pin: bool):
    """A ``BatchFn`` drawing from ``workers`` processes (0: in this process)."""
    if workers == 0:
        return batches
    loader = torch.utils.data.DataLoader(
        _Stream(batches, seed),
        batch_size=None,
        num_workers=workers,
        prefetch_factor=8,
        pin_memory=pin,
        persistent_workers=True,
    )
    it = iter(loader)
    return lambda _rng: Batch(*next(it))


def device_name(device: torch.device) -> str:
    """The device for the card's notes: the GPU's name, or the CPU."""
    return f"an {torch.cuda.get_device_name(device)} GPU" if device.type == "cuda" else "a CPU"


def score_fields(model: CNNT, fields: Sequence[ImagePair]) -> dict[str, tuple[float, float, float]]:
    """Per field: PSNR (dB) of the raw frames, the backbone per frame, and with the window of 4."""
    scores = {}
    for p in fields:
        raw = mean_quality([(p.noisy, p.clean)]).psnr
        single = mean_quality([(denoise(model, TRAINED_NORMALIZATION, p.noisy), p.clean)]).psnr
        window = mean_quality([(denoise(model, TRAINED_NORMALIZATION, p.noisy, 4), p.clean)]).psnr
        scores[p.name] = (raw, single, window)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="small")
    parser.add_argument("--minutes", type=float, default=80.0, help="training time of this part")
    parser.add_argument("--out", type=Path, default=None, help="default: weights/backbone-PRESET")
    parser.add_argument("--resume", type=Path, default=None, help="start from this model's weights")
    parser.add_argument("--fields", type=int, default=24, help="simulated microscope fields")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-pixels", type=int, default=PLAN.pixels, help="B x T x P x P")
    parser.add_argument(
        "--frames", default=",".join(map(str, PLAN.frames)), help="window lengths T to draw from"
    )
    parser.add_argument("--workers", type=int, default=None, help="batch-drawing processes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args()
    out = args.out or Path(f"livedenoise/weights/backbone-{args.preset}")
    device = pick_device()
    workers = args.workers if args.workers is not None else (6 if device.type == "cuda" else 0)
    frames = tuple(int(t) for t in args.frames.split(","))
    plan = replace(PLAN, pixels=args.batch_pixels, frames=frames)
    started = time.perf_counter()

    with console.status("preparing data"):
        train_clean, val_clean, clean_names = clean_images(args.data / "clean")
        fmd = fmd_fields(args.data / "fmd_test")
        fmd_train, fmd_val = split_rows([p for p in fmd if p.name not in HELD_OUT], VAL_FRACTION)
        sim_train = microscope_pairs(args.fields, size=256, seed=args.seed)
        sim_val = microscope_pairs(max(2, args.fields // 8), size=256, seed=args.seed + 1000)
        levels = NoiseLevels()
        sources: list[tuple[Source, float]] = [
            (PairSource(fmd_train, TRAINED_NORMALIZATION), SHARES["fmd"]),
            (SynthSource(train_clean, levels, TRAINED_NORMALIZATION), SHARES["synthetic"]),
            (PairSource(sim_train, TRAINED_NORMALIZATION), SHARES["microscope"]),
        ]
        val_sources: list[tuple[Source, float]] = [
            (PairSource(fmd_val, TRAINED_NORMALIZATION), SHARES["fmd"]),
            (SynthSource(val_clean, levels, TRAINED_NORMALIZATION), SHARES["synthetic"]),
            (PairSource(sim_val, TRAINED_NORMALIZATION), SHARES["microscope"]),
        ]
        val_rng = np.random.default_rng(args.seed + 1)
        validation = [Batches(val_sources, PLAN)(val_rng) for _ in range(32)]
    console.print(
        f"data ready in {time.perf_counter() - started:.0f} s on {device}: {len(fmd_train)} FMD "
        f"fields (held out: {', '.join(HELD_OUT)}), {len(train_clean)} clean images, "
        f"{len(sim_train)} + {len(sim_val)} simulated fields; {workers} batch workers"
    )

    previous_minutes = 0.0
    if args.resume is not None:
        model, parent = load_model(args.resume)
        cfg = parent.config
        previous_minutes = parent.metrics.get("train_minutes", 0.0)
    else:
        cfg = preset(args.preset)
        model = build_model(cfg, seed=args.seed)
    loop = LoopSettings(
        lr=args.lr,
        minutes=args.minutes,
        warmup_steps=100,
        eval_every=100,
        patience=20,
        seed=args.seed,
    )
    draw = batch_stream(Batches(sources, plan), workers, args.seed, device.type == "cuda")
    result = train(model, draw, validation, LOSS, loop, "backbone", console)
    model.cpu()

    held_out = score_fields(model, [p for p in fmd if p.name in HELD_OUT])
    gains = [single - raw for raw, single, _ in held_out.values()]
    metrics = {
        "val_psnr_start": result.history[0][2],
        "val_psnr": result.best_psnr,
        "steps": float(result.steps),
        "train_minutes": previous_minutes + result.seconds / 60,
        "heldout_psnr_gain_mean": float(np.mean(gains)),
        **{
            f"heldout_psnr_gain_{name}": single - raw for name, (raw, single, _) in held_out.items()
        },
        **{f"heldout_psnr_gain_window4_{n}": w - raw for n, (raw, _, w) in held_out.items()},
    }
    trained_on = [
        *(
            f"FMD test set (Zhang et al., CVPR 2019), 4 raw frames and 50-frame average: {p.name}"
            for p in fmd_train
        ),
        *(f"clean image: {name}" for name in clean_names),
        f"simulated microscope: {len(sim_train)} fields 256x256 (seed {args.seed}), "
        "line average 1-4 vs 4 x 64",
        "synthetic Poisson-Gaussian noise: "
        + ", ".join(f"{k} {v}" for k, v in vars(levels).items()),
    ]
    resumed = f"resumed from {args.resume} ({previous_minutes:.1f} min before); " * bool(
        args.resume
    )
    notes = (
        f"`{args.preset}` preset; {resumed}this part {result.steps} steps in {result.seconds / 60:.1f} "
        f"min on {device_name(device)} (stopped: {result.stopped}; best validation at step "
        f"{result.best_step}); AdamW lr {args.lr:g} with warm-up and cosine decay, loss {LOSS}; "
        f"patches {plan.patch_sizes}, {plan.pixels} px a batch, T in {sorted(set(plan.frames))}, "
        f"batch shares {SHARES}; process frames in {TILE} px tiles, each window normalised by its "
        f"own percentiles. Validation: the bottom {VAL_FRACTION:.0%} of rows of the FMD training "
        "fields, of the clean images (or their last z-slices) with synthetic noise, and other "
        f"simulated fields. Never trained or validated on the FMD configurations {list(HELD_OUT)} "
        "(the test set of scripts/bench_quality.py; heldout_* is the backbone alone on their 4 "
        "frames), ../shared/data/pairs or ../shared/data/repeats."
    )
    card = ModelCard(
        name=out.stem,
        config=cfg,
        normalization=TRAINED_NORMALIZATION,
        trained_on=trained_on,
        tile=TILE,
        metrics=metrics,
        notes=notes,
    )
    card = save_model(model, card, out)

    table = Table(title=f"backbone {card.lineage} on the held-out FMD configurations: PSNR (dB)")
    for column in ("configuration", "raw", "backbone", "window of 4"):
        table.add_column(column, justify="right")
    for name, (raw, single, window) in held_out.items():
        table.add_row(name, f"{raw:.2f}", f"{single:.2f}", f"{window:.2f}")
    console.print(table)
    console.print(
        f"validation PSNR {metrics['val_psnr_start']:.2f} -> {result.best_psnr:.2f} dB; "
        f"{result.steps} steps; total {(time.perf_counter() - started) / 60:.1f} min; "
        f"wrote {out}.safetensors and .json"
    )


if __name__ == "__main__":
    main()
