"""Preview of the simulated microscope: one field at line averages 1, 4 and 16, and a tile mosaic.

    python scripts/sim_preview.py [--out docs/simulated_microscope.png] [--seed 0]

Everything is acquired as a user would: make_core(), properties, config groups and a useq MDA.
The mosaic is a 3 x 3 grid (10% overlap) in three channels (DAPI blue, FITC green, TRITC red),
each tile placed by the stage position in its frame metadata. Needs matplotlib.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import useq

from livedenoise.acquisition import DETECTOR, make_core

FIELD = (22.5, 22.5)  # a cell of the seed-0 world
MOSAIC_CHANNELS = {"TRITC": 0, "FITC": 1, "DAPI": 2}  # channel -> RGB plane


def stretch(img: np.ndarray, low: float = 1, high: float = 99.7) -> np.ndarray:
    """Map the low..high percentiles to 0..1 for display."""
    lo, hi = np.percentile(img, [low, high])
    return np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)


def averages(core, passes: tuple[int, ...]) -> list[np.ndarray]:
    """The same field (zoom 2, FITC) at each line average."""
    core.setProperty(DETECTOR, "Zoom", 2)
    core.setConfig("Channel", "FITC")
    core.setXYPosition(*FIELD)
    frames = []
    for n in passes:
        core.setProperty(DETECTOR, "LineAverage", n)
        core.snapImage()
        frames.append(core.getImage().astype(np.float32))
    return frames


def mosaic(core) -> np.ndarray:
    """An RGB mosaic of a 3 x 3 grid, tiles placed by their stage positions."""
    core.setProperty(DETECTOR, "Zoom", 1)
    core.setProperty(DETECTOR, "LineAverage", 4)
    tiles: list[tuple[np.ndarray, dict, str]] = []
    core.mda.events.frameReady.connect(
        lambda img, event, meta: tiles.append((img.astype(np.float32), meta, event.channel.config))
    )
    seq = useq.MDASequence(
        stage_positions=[(FIELD[0] + 40, FIELD[1] + 40)],
        grid_plan=useq.GridRowsColumns(rows=3, columns=3, overlap=10),
        channels=list(MOSAIC_CHANNELS),
    )
    core.mda.run(seq)
    pixel = core.getPixelSizeUm()
    h, w = tiles[0][0].shape
    xs = [m["position"]["x"] for _, m, _ in tiles]
    ys = [m["position"]["y"] for _, m, _ in tiles]
    x0, y0 = min(xs), min(ys)
    size = (round((max(ys) - y0) / pixel) + h, round((max(xs) - x0) / pixel) + w)
    rgb = np.zeros((*size, 3), np.float32)
    for img, meta, channel in tiles:
        r = round((meta["position"]["y"] - y0) / pixel)
        c = round((meta["position"]["x"] - x0) / pixel)
        rgb[r : r + h, c : c + w, MOSAIC_CHANNELS[channel]] = img
    for plane in range(3):
        rgb[..., plane] = stretch(rgb[..., plane], 1, 99.5)
    return rgb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/simulated_microscope.png"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    core = make_core()
    core.setProperty(DETECTOR, "Seed", args.seed)
    core.setProperty(DETECTOR, "TimeScale", 0)  # no need to wait out the frame times here
    passes = (1, 4, 16)
    frames = averages(core, passes)
    exposures = []
    for n in passes:
        core.setProperty(DETECTOR, "LineAverage", n)
        exposures.append(core.getExposure())
    rgb = mosaic(core)

    fig = plt.figure(figsize=(12, 10.5), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 2])
    for ax, frame, n, ms in zip(top.subplots(1, 3), frames, passes, exposures, strict=True):
        ax.imshow(stretch(frame), cmap="gray")
        ax.set_title(f"line average {n}  ({ms:.0f} ms per frame)")
        ax.set_axis_off()
    ax = bottom.subplots()
    ax.imshow(rgb)
    ax.set_title(
        "3 x 3 tiles, 10% overlap, line average 4: DAPI, FITC (microtubules), TRITC (actin)"
    )
    ax.set_axis_off()
    fig.suptitle(
        "livedenoise simulated laser-scanning confocal (51 um fields at 0.1 um/pixel above)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
