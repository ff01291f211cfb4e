"""Train a CNNT backbone on real and synthetic noise, on a CPU or a CUDA GPU, in parts if need be.

    python scripts/train_backbone.py [--preset small] [--minutes 80] [--out livedenoise/weights/backbone-small]
    python scripts/train_backbone.py --resume livedenoise/weights/backbone-small --minutes 60   # one more part

Data (``--data``, default ../shared/data), as shares of the batches (``--w2s-share``, ``--hagen-share``; the
other sources keep their relative shares, ``SHARES``, in the rest):
- real noise, FMD: every ``fmd_test`` configuration except the three held out for
  ``scripts/bench_quality.py`` (``HELD_OUT``, one per modality), each 4 raw frames of a static field
  against the 50-frame average (FMD dataset, Zhang et al., CVPR 2019; Apache-2.0 redistribution), as
  windows of T = 1, 2 or 4 frames;
- real noise, W2S: widefield camera frames of human cells, one raw frame against the 400-frame average
  (T = 1), fields 1-70 of 80, all 3 channels (Zhou et al., ECCV Workshops 2020; the 8-bit version
  redistributed in ND-HowardGroup's Instant-Image-Denoising repository under GPL-3.0; the W2S authors
  state no licence for the images, which the card's training data says);
- real noise, Hagen: registered low/high-SNR pairs (T = 1), five of six, in 512 px tiles so that each
  window is normalised over a camera-frame-sized field (Hagen et al., GigaScience 2021, CC0; 8-bit renders
  redistributed in the same repository);
- synthetic noise: every image in ``clean`` with Poisson-Gaussian detector noise drawn on the fly over a
  range of photon levels, gains, offsets, read noise, bit depths and neighbour correlations (camera-like
  about 0.6, scanner-like under 0.1, as measured in FMD);
- ``--fields`` fields of the simulated microscope (line average 1-4 against 4 x 64), so the demo works.
W2S and Hagen references are scaled differently from their raw frames (the 8-bit versions were scaled
separately: fitted gains 0.3-0.95), so each reference is first fitted affinely onto its raw frame (least
squares a * reference + b), putting input and target in the same units before the window's percentile
normalisation.

Validation (selects the checkpoint): the bottom 20% of rows of every real training frame or tile, the last
20% of the z-slices of a clean stack (else a bottom band of rows) with synthetic noise, and other simulated
fields. Held out, never trained, validated or selected on, scored at the end (report only):
the FMD configurations ``HELD_OUT``, W2S fields 71-80, all channels (``W2S_HELD_OUT``; scored on their
central 256 px, per channel) and the Hagen pair ``HAGEN_HELD_OUT`` (scored on its central 1024 px): PSNR
after an affine fit, raw frame and backbone, in the table printed and in the card's metrics.
Not used: ``pairs`` (its frames are frames of the fmd_test confocal fields, held-out one included) and
``repeats`` (kept for testing calibration).

Every window is normalised by its own percentiles (``TRAINED_NORMALIZATION``), as inference does. Batches
are drawn by ``--workers`` processes (default: none on a CPU, 6 on a GPU) so a GPU is not kept waiting.
``--resume`` starts from a saved model's weights (a new warm-up and decay over this part's minutes), so a
long training can run in parts; the card counts the minutes of all parts and keeps the training data of
earlier parts.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import tifffile
import torch
from rich.console import Console
from rich.table import Table

from livedenoise.cli.train import TrainingBar
from livedenoise.metrics import affine_fit
from livedenoise.model import CNNT, ModelCard, build_model, load_model, preset, save_model
from livedenoise.model.config import PRESETS
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
W2S_HELD_OUT = range(71, 81)  # W2S fields of view (numbered from 1 in index.txt), all channels
W2S_HELD_OUT_NAME = f"fields {W2S_HELD_OUT.start}-{W2S_HELD_OUT.stop - 1}"
HAGEN_HELD_OUT = "actin-60x-noise1"
HAGEN_TILE = 512  # px: Hagen's 2048 px frames are trained as tiles of a common camera frame's size
W2S_CROP, HAGEN_CROP = 256, 1024  # px: central crops scored at the end (minutes on one core)
ROWS_KEPT = {"imagej_hela-cells_3ch_uint16.tif": 476}  # below: an all-zero label box
VAL_FRACTION = 0.2
PLAN = BatchPlan(frames=(1, 1, 2, 4), gain=(0.8, 1.25), shift=0.03)
LOSS = LossWeights(ssim=1.0, l1=1.0, mse=0.0)
W2S_DATA = (
    f"W2S (Zhou et al., ECCV Workshops 2020), widefield, one raw frame vs the 400-frame average: fields "
    f"1-{W2S_HELD_OUT.start - 1} x 3 channels, 8-bit version as redistributed in ND-HowardGroup "
    "Instant-Image-Denoising (GPL-3.0); the W2S authors state no licence for the images"
)
HAGEN_DATA = (
    "Hagen et al., GigaScience 2021 (GigaDB, CC0), low vs high SNR, 8-bit render as redistributed in "
    "ND-HowardGroup Instant-Image-Denoising"
)
SHARES = {"fmd": 0.45, "synthetic": 0.4, "microscope": 0.15}  # of the batches not from W2S or Hagen
console = Console()


def tiff_planes(path: Path) -> np.ndarray:
    """Every plane of a TIFF as ``[N, H, W]`` float32, channels and slices alike (the clean images are
    only a source of structure, so a colour image is three grey ones)."""
    data = np.asarray(tifffile.imread(path), dtype=np.float32)
    return data.reshape(-1, *data.shape[-2:])


def clean_images(folder: Path) -> tuple[list[np.ndarray], list[np.ndarray], list[str]]:
    """(training, validation) planes of every clean image.

    Validation: the last 20% of the slices of a z-stack, else a bottom band of rows (at least a tile).
    """
    train_part, val_part, names = [], [], []
    for path in sorted(folder.glob("*.tif")):
        planes = tiff_planes(path)[:, : ROWS_KEPT.get(path.name)]
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


def fitted_reference(noisy: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """Each clean frame mapped affinely onto its raw frame, so a window normalises both alike."""
    return np.stack([affine_fit(y, x) for x, y in zip(noisy, clean, strict=True)]).astype(
        np.float32
    )


def w2s_pairs(folder: Path) -> tuple[list[ImagePair], dict[int, ImagePair]]:
    """W2S as (training pairs, held-out pairs by channel): one raw frame vs the 400-frame average.

    ``index.txt`` names each frame's field and channel; held-out fields (``W2S_HELD_OUT``) are
    stacked per channel, central ``W2S_CROP`` px, for scoring.
    """
    noisy, clean = read_frames(folder / "noisy.tif"), read_frames(folder / "clean.tif")
    clean = fitted_reference(noisy, clean)
    labels = re.findall(
        r"^(\d+)\tFOV (\d+), channel (\d+)$", (folder / "index.txt").read_text(), re.M
    )
    if len(labels) != len(noisy):
        raise SystemExit(
            f"{folder / 'index.txt'}: names {len(labels)} frames, the stacks hold {len(noisy)}"
        )
    train_part, held_out = [], {}
    for index, field, channel in ((int(i), int(f), int(c)) for i, f, c in labels):
        if field in W2S_HELD_OUT:
            held_out.setdefault(channel, []).append(index)
        else:
            one = slice(index, index + 1)
            train_part.append(
                ImagePair(f"W2S field {field} channel {channel}", noisy[one], clean[one])
            )
    centre = _central(noisy.shape[1:], W2S_CROP)
    scored = {
        c: ImagePair(
            f"W2S {W2S_HELD_OUT_NAME} channel {c}", noisy[(idx, *centre)], clean[(idx, *centre)]
        )
        for c, idx in sorted(held_out.items())
    }
    return train_part, scored


def hagen_pairs(folder: Path) -> tuple[list[ImagePair], list[str], ImagePair]:
    """Hagen as (training tiles, their pairs' names, the held-out pair's central ``HAGEN_CROP`` px)."""
    tiles, names, held_out = [], [], None
    for path in sorted((folder / "noisy").glob("*.tif")):
        noisy = read_frames(path)
        clean = fitted_reference(noisy, read_frames(folder / "clean" / path.name))
        if path.stem == HAGEN_HELD_OUT:
            centre = _central(noisy.shape[1:], HAGEN_CROP)
            held_out = ImagePair(
                f"Hagen {path.stem}", noisy[(slice(None), *centre)], clean[(slice(None), *centre)]
            )
            continue
        names.append(f"{path.stem} {noisy.shape[1]}x{noisy.shape[2]}")
        _, h, w = noisy.shape
        for top in range(0, h - HAGEN_TILE + 1, HAGEN_TILE):
            for left in range(0, w - HAGEN_TILE + 1, HAGEN_TILE):
                tile = (slice(None), slice(top, top + HAGEN_TILE), slice(left, left + HAGEN_TILE))
                tiles.append(
                    ImagePair(f"Hagen {path.stem} tile {top},{left}", noisy[tile], clean[tile])
                )
    if held_out is None:
        raise SystemExit(f"{folder}: the held-out pair {HAGEN_HELD_OUT} is missing")
    return tiles, names, held_out


def _central(shape: tuple[int, ...], size: int) -> tuple[slice, slice]:
    """The central ``size`` x ``size`` px of a frame of ``shape`` (H, W)."""
    return tuple(slice((n - size) // 2, (n - size) // 2 + size) for n in shape)


def _rounded(shares: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 3) for k, v in shares.items()}


def batch_shares(w2s: float, hagen: float) -> dict[str, float]:
    """Shares of the batches per source: W2S's and Hagen's as given, the rest in ``SHARES``' proportions."""
    rest = 1.0 - w2s - hagen
    if min(w2s, hagen) < 0 or rest <= 0:
        raise SystemExit(
            f"--w2s-share {w2s} and --hagen-share {hagen} must be >= 0 and sum to under 1"
        )
    return {**{k: v * rest for k, v in SHARES.items()}, "w2s": w2s, "hagen": hagen}


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


def score_frames(model: CNNT, pair: ImagePair) -> tuple[float, float]:
    """PSNR (dB, after an affine fit) of the raw frames and of the backbone on each frame alone."""
    raw = mean_quality([(pair.noisy, pair.clean)]).psnr
    single = mean_quality([(denoise(model, TRAINED_NORMALIZATION, pair.noisy), pair.clean)]).psnr
    return raw, single


def score_fields(model: CNNT, fields: Sequence[ImagePair]) -> dict[str, tuple[float, float, float]]:
    """Per FMD field: PSNR (dB) of the raw frames, the backbone per frame, and with the window of 4."""
    scores = {}
    for p in fields:
        window = mean_quality([(denoise(model, TRAINED_NORMALIZATION, p.noisy, 4), p.clean)]).psnr
        scores[p.name] = (*score_frames(model, p), window)
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
    parser.add_argument(
        "--w2s-share", type=float, default=0.2, help="share of the batches from W2S (0: none)"
    )
    parser.add_argument(
        "--hagen-share", type=float, default=0.15, help="share of the batches from Hagen (0: none)"
    )
    args = parser.parse_args()
    shares = batch_shares(args.w2s_share, args.hagen_share)
    for folder in ("fmd_test", "clean", "w2s", "hagen"):
        if not (args.data / folder).is_dir():
            raise SystemExit(f"{args.data / folder}: not found; --data must hold {folder}/")
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
        w2s, w2s_held_out = w2s_pairs(args.data / "w2s")
        w2s_train, w2s_val = split_rows(w2s, VAL_FRACTION)
        hagen, hagen_names, hagen_held_out = hagen_pairs(args.data / "hagen")
        hagen_train, hagen_val = split_rows(hagen, VAL_FRACTION)
        levels = NoiseLevels()
        parts = {  # (training source, validation source) per share
            "fmd": (fmd_train, fmd_val),
            "synthetic": (
                SynthSource(train_clean, levels, TRAINED_NORMALIZATION),
                SynthSource(val_clean, levels, TRAINED_NORMALIZATION),
            ),
            "microscope": (sim_train, sim_val),
            "w2s": (w2s_train, w2s_val),
            "hagen": (hagen_train, hagen_val),
        }
        sources: list[tuple[Source, float]] = []
        val_sources: list[tuple[Source, float]] = []
        for key, share in shares.items():
            if share > 0:
                train_part, val_part = (
                    p if isinstance(p, SynthSource) else PairSource(p, TRAINED_NORMALIZATION)
                    for p in parts[key]
                )
                sources.append((train_part, share))
                val_sources.append((val_part, share))
        val_rng = np.random.default_rng(args.seed + 1)
        validation = [Batches(val_sources, PLAN)(val_rng) for _ in range(32)]
    console.print(
        f"data ready in {time.perf_counter() - started:.0f} s on {device}: {len(fmd_train)} FMD "
        f"fields (held out: {', '.join(HELD_OUT)}), {len(train_clean)} clean images, "
        f"{len(sim_train)} + {len(sim_val)} simulated fields, {len(w2s)} W2S frames (held out: "
        f"{W2S_HELD_OUT_NAME}), {len(hagen)} Hagen tiles (held "
        f"out: {HAGEN_HELD_OUT}); batch shares {_rounded(shares)}; {workers} batch workers"
    )

    earlier: dict[str, float] = {}
    earlier_data: list[str] = []
    if args.resume is not None:
        model, parent = load_model(args.resume)
        cfg = parent.config
        earlier = parent.metrics
        earlier_data = parent.trained_on
    else:
        cfg = preset(args.preset)
        model = build_model(cfg, seed=args.seed)
    loop = LoopSettings(
        lr=args.lr,
        minutes=args.minutes,
        warmup_steps=100,
        eval_every=100,
        patience=20,
        restarts=2,
        seed=args.seed,
    )
    draw = batch_stream(Batches(sources, plan), workers, args.seed, device.type == "cuda")
    with TrainingBar(console, "backbone") as events:
        result = train(model, draw, validation, LOSS, loop, "backbone", events)
    model.cpu()

    with console.status("scoring the held-out data"):
        held_out = score_fields(model, [p for p in fmd if p.name in HELD_OUT])
        held_out_w2s = {c: score_frames(model, p) for c, p in w2s_held_out.items()}
        held_out_hagen = score_frames(model, hagen_held_out)
    previous_minutes = earlier.get("train_minutes", 0.0)
    kind = "gpu" if device.type == "cuda" else "cpu"
    minutes = {k: earlier.get(f"{k}_minutes", 0.0) for k in ("cpu", "gpu")}
    minutes[kind] += result.seconds / 60
    steps = {k: earlier.get(f"steps_{k}", 0.0) for k in ("cpu", "gpu")}
    steps[kind] += result.steps
    gains = [single - raw for raw, single, _ in held_out.values()]
    w2s_gains = {c: single - raw for c, (raw, single) in held_out_w2s.items()}
    metrics = {
        "val_psnr_start": result.history[0][2],
        "val_psnr": result.best_psnr,
        "steps": earlier.get("steps", 0.0) + result.steps,  # every part's, as the cards before
        "steps_last_part": float(result.steps),
        **{f"steps_{k}": v for k, v in steps.items()},
        "train_minutes": previous_minutes + result.seconds / 60,
        **{f"{k}_minutes": v for k, v in minutes.items()},
        "cpu_hours": minutes["cpu"] / 60,
        "heldout_psnr_gain_mean": float(np.mean(gains)),
        **{
            f"heldout_psnr_gain_{name}": single - raw for name, (raw, single, _) in held_out.items()
        },
        **{f"heldout_psnr_gain_window4_{n}": w - raw for n, (raw, _, w) in held_out.items()},
        "heldout_psnr_w2s": float(np.mean([single for _, single in held_out_w2s.values()])),
        "heldout_psnr_gain_w2s": float(np.mean(list(w2s_gains.values()))),
        **{f"heldout_psnr_gain_w2s_channel{c}": gain for c, gain in w2s_gains.items()},
        f"heldout_psnr_hagen_{HAGEN_HELD_OUT}": held_out_hagen[1],
        f"heldout_psnr_gain_hagen_{HAGEN_HELD_OUT}": held_out_hagen[1] - held_out_hagen[0],
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
        *[W2S_DATA] * (args.w2s_share > 0),
        *(f"{HAGEN_DATA}: {name}" for name in hagen_names * (args.hagen_share > 0)),
    ]
    trained_on += [line for line in earlier_data if line not in trained_on]  # earlier parts
    resumed = f"resumed from {args.resume} ({previous_minutes:.1f} min before); " * bool(
        args.resume
    )
    preset_name = next((name for name, c in PRESETS.items() if c == cfg), "custom")
    notes = (
        f"`{preset_name}` preset; {resumed}this part {result.steps} steps in {result.seconds / 60:.1f} "
        f"min on {device_name(device)} (stopped: {result.stopped}; warm restarts at steps "
        f"{result.restart_steps or 'none'}; best validation at step "
        f"{result.best_step}); AdamW lr {args.lr:g} with warm-up and cosine decay, loss {LOSS}; "
        f"patches {plan.patch_sizes}, {plan.pixels} px a batch, T in {sorted(set(plan.frames))}, "
        f"batch shares {_rounded(shares)}; process frames in {TILE} px tiles, each window normalised by its "
        f"own percentiles. Validation: the bottom {VAL_FRACTION:.0%} of rows of the FMD training "
        "fields, W2S training frames and Hagen training tiles, of the clean images (or their last "
        "z-slices) with synthetic noise, and other simulated fields. Never trained or validated on "
        f"the FMD configurations {list(HELD_OUT)} (the test set of scripts/bench_quality.py; "
        "heldout_* is the backbone alone on their 4 frames), W2S "
        f"{W2S_HELD_OUT_NAME} (heldout_*w2s*: their central {W2S_CROP} "
        f"px), the Hagen pair {HAGEN_HELD_OUT} (heldout_*hagen*: its central {HAGEN_CROP} px), "
        "../shared/data/pairs or ../shared/data/repeats. W2S and Hagen references were fitted "
        "affinely onto their raw frames."
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

    table = Table(title=f"backbone {card.lineage} on the held-out data: PSNR (dB)")
    for column in ("held out", "raw", "backbone", "window of 4"):
        table.add_column(column, justify="right")
    for name, (raw, single, window) in held_out.items():
        table.add_row(f"FMD {name}", f"{raw:.2f}", f"{single:.2f}", f"{window:.2f}")
    for c, (raw, single) in held_out_w2s.items():
        table.add_row(w2s_held_out[c].name, f"{raw:.2f}", f"{single:.2f}", "")
    table.add_row(hagen_held_out.name, *(f"{v:.2f}" for v in held_out_hagen), "")
    console.print(table)
    console.print(
        f"validation PSNR {metrics['val_psnr_start']:.2f} -> {result.best_psnr:.2f} dB; "
        f"{result.steps} steps; total {(time.perf_counter() - started) / 60:.1f} min; "
        f"wrote {out}.safetensors and .json"
    )


if __name__ == "__main__":
    main()
