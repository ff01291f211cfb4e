"""Leave-one-out evaluation of fine-tuning on the four real confocal pairs of ../shared/data/pairs.

    python scripts/eval_finetune.py [--backbone backbone-small] [--minutes 8] [--clock cpu]
        [--restarts 0 --smoothing 1]  # early stopping as it was before restarts (a before/after)

Each pair in turn is the test image; the backbone is fine-tuned on the other three (their bottom rows
held out for early stopping) and scored on the test pair, against: the raw input, a Gaussian filter whose
width is tuned on the same three pairs, and the backbone alone (with the normalisation fine-tuning fits
to those three pairs, so only the weights differ). PSNR after an affine intensity fit to the clean image
(livedenoise.metrics), as in the FMD benchmark. Mind what the backbone saw: these pairs' noisy frames are
frames of the FMD test fields, and the shipped backbone trained on the confocal BPAE_G, BPAE_R and fish
fields (only Confocal_MICE is held out of its training), so only the mice fold is new to it.
``--clock cpu`` counts the budget in this process's CPU time, so that other work on a shared machine
does not shorten one run more than another (before/after comparisons).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table
from scipy.ndimage import gaussian_filter

from livedenoise.cli.train import TrainingBar
from livedenoise.model import load_model
from livedenoise.training import (
    FinetuneSettings,
    ImagePair,
    denoise,
    finetune_pairs,
    fit_normalization,
    load_pairs,
    mean_quality,
)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SIGMAS = np.round(np.arange(0.3, 3.01, 0.1), 2)
console = Console()


def blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    return np.stack([gaussian_filter(f, sigma) for f in frames])


def tune_sigma(pairs: Sequence[ImagePair]) -> float:
    """The Gaussian width with the best mean PSNR over ``pairs``."""
    scores = [
        np.mean([mean_quality([(blur(p.noisy, s), p.clean)]).psnr for p in pairs]) for s in SIGMAS
    ]
    return float(SIGMAS[int(np.argmax(scores))])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbone", type=Path, default=Path("backbone-small"))
    parser.add_argument("--minutes", type=float, default=8.0, help="fine-tuning budget per fold")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what the minutes count: wall time, or this process's CPU time (all its threads)",
    )
    defaults = FinetuneSettings()
    parser.add_argument(
        "--restarts",
        type=int,
        default=defaults.restarts,
        help="warm restarts when patience runs out (0: stop there, as before they existed)",
    )
    parser.add_argument(
        "--smoothing",
        type=int,
        default=defaults.smoothing,
        help="validations averaged for patience (1: the last one alone)",
    )
    parser.add_argument("--data", type=Path, default=DATA / "pairs")
    args = parser.parse_args()
    pairs = load_pairs(args.data)
    _, backbone_card = load_model(args.backbone)

    rows, stops = [], []
    for test in pairs:
        train_pairs = [p for p in pairs if p is not test]
        sigma = tune_sigma(train_pairs)
        model, parent = load_model(args.backbone)
        norm = fit_normalization(p.clean for p in train_pairs)
        backbone_out = denoise(model, norm, test.noisy)
        name = f"loo-{Path(test.name).stem}"
        with TrainingBar(console, f"fine-tuning {name}") as events:
            card, report = finetune_pairs(
                model,
                parent,
                train_pairs,
                name,
                FinetuneSettings(
                    minutes=args.minutes,
                    clock=args.clock,
                    restarts=args.restarts,
                    smoothing=args.smoothing,
                ),
                events=events,
            )
        result = report.result
        minutes = result.seconds / 60
        scores = [
            mean_quality([(out, test.clean)]).psnr
            for out in (
                test.noisy,
                blur(test.noisy, sigma),
                backbone_out,
                denoise(model, card.normalization, test.noisy),
            )
        ]
        rows.append((Path(test.name).stem.removeprefix("confocal_"), sigma, *scores, minutes))
        restarts = ",".join(map(str, result.restart_steps)) or "none"
        stops.append(
            f"{result.stopped} (best step {result.best_step} of {result.steps}; "
            f"restarts at {restarts})"
        )
        console.print(f"{rows[-1][0]}: raw {scores[0]:.2f}, fine-tuned {scores[3]:.2f} dB")

    table = Table(
        title=f"Leave-one-out PSNR (dB) on {args.data}, backbone {backbone_card.lineage}",
        caption="each row: fine-tuned on the other three pairs, tested on this one; "
        f"gain = fine-tuned - raw; min = fine-tuning minutes used ({args.clock} clock)",
    )
    columns = ("test pair", "raw", "Gaussian", "sigma", "backbone", "fine-tuned", "gain", "min")
    for column in (*columns, "stopped"):
        table.add_column(column, justify="right")
    for (name, sigma, raw, gauss, bb, ft, minutes), stop in zip(rows, stops, strict=True):
        scores = (raw, gauss, sigma, bb, ft, ft - raw, minutes)
        table.add_row(name, *(f"{v:.2f}" for v in scores[:-1]), f"{minutes:.1f}", stop)
    raw, gauss, bb, ft, minutes = (np.mean([r[i] for r in rows]) for i in range(2, 7))
    mean = (raw, gauss, bb, ft, ft - raw)
    table.add_row(
        "mean",
        *(f"{v:.2f}" for v in mean[:2]),
        "",
        *(f"{v:.2f}" for v in mean[2:]),
        f"{minutes:.1f}",
        "",
        style="bold",
    )
    console.print(table)
    longest = max(r[-1] for r in rows)
    checks = [
        (ft - raw >= 5, f"fine-tuned improves on raw by >= 5 dB ({ft - raw:+.2f})"),
        (
            ft > bb,
            f"fine-tuned beats the backbone alone ({ft - bb:+.2f}; backbone {bb - raw:+.2f} over raw)",
        ),
        (ft > gauss, f"fine-tuned beats the tuned Gaussian filter ({ft - gauss:+.2f})"),
        (longest <= 10, f"fine-tuning <= 10 min per fold (longest {longest:.1f})"),
    ]
    for ok, text in checks:
        console.print(f"[{'green' if ok else 'red'}]{'PASS' if ok else 'FAIL'}[/] {text}")


if __name__ == "__main__":
    main()
