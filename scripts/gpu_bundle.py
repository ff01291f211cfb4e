"""Pack what an offline GPU machine needs to train or check livedenoise: wheels and training data.

    python scripts/gpu_bundle.py [--out gpu-bundle] [--python 3.12] [--data ../shared/data] [--crop]

A GPU machine with a CUDA build of torch but no network (a cluster node, a lent cloud box) lacks some of
the project's pure-Python and small binary dependencies. This downloads, here where pip can reach an
index, the wheels of ``--packages`` for the GPU machine's Python (x86-64 Linux), at the versions
installed in this environment (the versions the tests ran with), without their dependencies, and copies
the backbone's training data (``fmd_test``, ``clean``, ``w2s`` and ``hagen``). ``--out`` then holds
``wheels/``, ``data/`` and ``run.sh`` (142 MiB in all; 48 MiB with ``--crop``, a subset of W2S and Hagen
for machines reached through a small transfer: see ``crop_data``). ``run.sh`` installs the wheels onto
``PYTHONPATH`` with the working directory and runs the command it is given; run it from the checkout's
root, wherever the bundle lies:

    bash gpu-bundle/run.sh python3 scripts/gpu_check.py
    bash gpu-bundle/run.sh python3 scripts/train_backbone.py --data gpu-bundle/data --resume \\
        engines/training/backbone-small --minutes 4.5 --batch-pixels 1179648 --workers 6 --lr 1e-3 \\
        --out "$OUT/backbone-small"

(The default ``--fields`` and ``--frames`` are those of the CPU parts, so validation figures compare.)

The default package list is what the team's H200 image (torch 2.11, Python 3.12) lacked; step 1 of
``scripts/gpu_check.py`` names any package still missing on another machine.

Raises SystemExit (pip's message) when a wheel for that Python and platform does not exist.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
MISSING_ON_GPU_IMAGE = [
    "annotated-types",
    "donfig",
    "google-crc32c",
    "numcodecs",
    "ome-types",
    "ome-writers",
    "platformdirs",
    "psygnal",
    "pydantic",
    "pydantic-core",
    "pydantic-extra-types",
    "pymmcore",
    "pymmcore-plus",
    "shapely",
    "typing-inspection",
    "useq-schema",
    "xsdata",
    "yaozarrs",
    "zarr",
]
# pip matches a manylinux tag exactly: offer the ones current wheels are built for.
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
DATA_FOLDERS = ("fmd_test", "clean", "w2s", "hagen")
RUN_SH = """#!/usr/bin/env bash
# Run from the checkout's root: install the bundled wheels into a folder of their own (nothing else is
# touched), put it and the checkout on PYTHONPATH, and run "$@".
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
have="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
if [ "$have" != "@PYTHON@" ]; then
    echo "error: this bundle holds wheels for Python @PYTHON@, but python3 here is $have;" \\
        "make one with: python scripts/gpu_bundle.py --python $have" >&2
    exit 1
fi
site="${TMPDIR:-/tmp}/livedenoise-site"
PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --no-index --no-deps --no-compile \\
    --no-cache-dir --upgrade --target "$site" "$here"/wheels/*.whl
export PYTHONPATH="$site:$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
exec "$@"
"""


def download(packages: list[str], python: str, wheels: Path) -> None:
    try:
        pins = [f"{name}=={importlib.metadata.version(name)}" for name in packages]
    except importlib.metadata.PackageNotFoundError as err:
        raise SystemExit(
            f"error: run this script with the project's environment (.venv/bin/python): {err.name} is "
            f"not installed in {sys.executable}, so the version to bundle is unknown."
        ) from None
    platforms = [arg for tag in PLATFORMS for arg in ("--platform", tag)]
    command = [
        *(sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"),
        *("--only-binary=:all:", "--python-version", python, "--implementation", "cp"),
        *platforms,
        *("--dest", str(wheels), *pins),
    ]
    if subprocess.run(command).returncode != 0:
        raise SystemExit(
            f"error: pip could not download wheels for Python {python}: {' '.join(pins)}"
        )


def crop_data(data: Path, to: Path) -> None:
    """Copy the training data with W2S and Hagen cut down (W2S is 92 MB, Hagen 23 MB), recompressed (LZMA).

    W2S keeps every held-out field and the odd training fields, each frame's central ``W2S_CROP`` px;
    Hagen keeps each pair's central ``HAGEN_CROP`` px. The held-out scores of ``train_backbone.py`` are
    computed on exactly these central crops, so they equal the full data's; its validation PSNR does
    not (re-measure a result on the full data: ``--resume RESULT --minutes 0.01``).
    """
    from train_backbone import HAGEN_CROP, W2S_CROP, W2S_HELD_OUT, _central

    def write(path: Path, frames: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(path, np.ascontiguousarray(frames), compression="lzma")

    for path in sorted((data / "fmd_test").rglob("*.tif")) + sorted((data / "clean").glob("*.tif")):
        write(to / path.relative_to(data), tifffile.imread(path))
    rows = re.findall(
        r"^(\d+)\tFOV (\d+), channel (\d+)$", (data / "w2s/index.txt").read_text(), re.M
    )
    keep = [int(i) for i, field, _ in rows if int(field) in W2S_HELD_OUT or int(field) % 2 == 1]
    (to / "w2s").mkdir(parents=True)
    (to / "w2s/index.txt").write_text(
        "".join(f"{n}\tFOV {rows[i][1]}, channel {rows[i][2]}\n" for n, i in enumerate(keep))
    )
    for name in ("noisy", "clean"):
        frames = tifffile.imread(data / f"w2s/{name}.tif")[keep]
        write(to / f"w2s/{name}.tif", frames[(slice(None), *_central(frames.shape[1:], W2S_CROP))])
    for path in sorted((data / "hagen").glob("*/*.tif")):
        image = tifffile.imread(path)
        write(to / path.relative_to(data), image[_central(image.shape, HAGEN_CROP)])


def is_bundle(folder: Path) -> bool:
    """Whether ``folder`` holds nothing but what this script writes (so it may be replaced)."""
    return {p.name for p in folder.iterdir()} <= {"wheels", "data", "run.sh"}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=ROOT / "gpu-bundle",
        help="folder to write; an earlier bundle there is replaced, any other folder refused",
    )
    parser.add_argument("--python", default="3.12", help="the GPU machine's Python version")
    parser.add_argument(
        "--data", type=Path, default=DATA, help="folder holding fmd_test/, clean/, w2s/ and hagen/"
    )
    parser.add_argument(
        "--crop",
        action="store_true",
        help="a data subset (W2S odd and held-out fields, central crops; Hagen central crops) to fit a "
        "64 MiB transfer",
    )
    parser.add_argument(
        "--packages",
        nargs="+",
        default=MISSING_ON_GPU_IMAGE,
        help="distributions to bundle, at the versions installed here",
    )
    args = parser.parse_args()
    out = args.out.resolve()
    if out.exists() and not (out.is_dir() and is_bundle(out)):
        parser.error(f"--out {out} exists and is not a bundle this script wrote; name a new folder")
    if not args.data.is_dir():
        parser.error(
            f"the training data folder {args.data} does not exist; pass --data with the folder "
            "holding fmd_test/, clean/, w2s/ and hagen/"
        )
    missing = [name for name in DATA_FOLDERS if not (args.data / name).is_dir()]
    if missing:
        parser.error(f"--data {args.data} has no {' or '.join(missing)} folder")

    # built beside it and swapped in at the end: a failed download leaves an earlier bundle as it was
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))
    try:
        download(args.packages, args.python, staging / "wheels")
        if args.crop:
            crop_data(args.data, staging / "data")
        else:
            for name in DATA_FOLDERS:
                shutil.copytree(args.data / name, staging / "data" / name)
        (staging / "run.sh").write_text(RUN_SH.replace("@PYTHON@", args.python))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    wheels = len(list((out / "wheels").glob("*.whl")))
    print(f"{out}: {wheels} wheels and data, {size / 2**20:.0f} MiB")


if __name__ == "__main__":
    main()
