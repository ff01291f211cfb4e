"""Open a run store with the OME-Zarr readers people use, where they are installed.

    pip install ome-zarr napari napari-ome-zarr      # in an environment of its own (see README)
    python scripts/check_ome_readers.py runs/NAME.ome.zarr

ome-zarr-py reads each image at the path the store lists for it (it lists no image at a
bioformats2raw root); napari-ome-zarr opens the root through ``OME/METADATA.ome.xml``. Prints, per
image, whether each reader got the same pixels as ``livedenoise.storage.open_run``; exits 1 if not.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from ome_types import from_xml

from livedenoise.storage import open_run


def main(store: Path) -> int:
    from napari_ome_zarr._reader import napari_get_reader
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    images = from_xml(store / "OME" / "METADATA.ome.xml").images
    run = open_run(store)
    arrays = [a for pair in zip(run.raw, run.denoised, strict=True) for a in pair]
    layers = napari_get_reader(str(store))()
    ok = len(layers) == len(images)
    print(f"napari-ome-zarr: {len(layers)} layer group(s) for {len(images)} image(s)")
    for image, arr in zip(images, arrays, strict=True):
        path = image.id.removeprefix("Image:")
        nodes = list(Reader(parse_url(str(store / path)))())
        same = len(nodes) == 1 and np.array_equal(np.asarray(nodes[0].data[0]), np.asarray(arr))
        ok &= same
        print(f"ome-zarr-py {path}: {'same pixels' if same else 'DIFFERENT'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
