"""A run store lists every image the way OME-Zarr readers look for them.

ome-zarr-py 0.18 lists no image at a bioformats2raw root, and its ``finder`` and ome-zarr-models read
only numbered series; napari-ome-zarr 0.10 opens the root through ``OME/METADATA.ome.xml``, taking
each Image's ID after ``Image:`` as its path. The store therefore writes that XML (with ome-types) in
the order of ``OME``'s ``series``, and every series path is an NGFF 0.5 image of its own.

ome-zarr-py is not a dev dependency: it brings dask and scikit-image, and ome-zarr-models pins
pydantic below the project's. The metadata those readers rely on is tested here; where they are
installed, ``python scripts/check_ome_readers.py STORE`` opens a store with them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaozarrs
import zarr
from ome_types import from_xml

from livedenoise.frames import FrameIndex, FrameInfo, RunLayout
from livedenoise.storage import RunStore, open_run


def _info(t: int, p: int, c: int, channel: str, stage=None) -> FrameInfo:
    return FrameInfo(0, FrameIndex(t, p, c, 0), float(t), stage, {"channel": channel})


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    """Two stage positions, two channels, two timepoints; every frame denoised."""
    path = tmp_path / "run.ome.zarr"
    store = RunStore(path, RunLayout(timepoints=2, channels=2, pixel_size_um=0.5), {})
    for p, stage in enumerate([(0.0, 0.0, 0.0), (20.0, 0.0, 0.0)]):
        for t in range(2):
            for c, channel in enumerate(["DAPI", "FITC"]):
                frame = np.full((16, 24), 100 * p + 10 * t + c, np.uint16)
                store.write_raw(frame, _info(t, p, c, channel, stage))
                store.write_denoised(FrameIndex(t, p, c, 0), frame.astype("float32"), 1.0, 0.1)
    store.close({"denoised": 8})
    return path


def _series(path: Path) -> list[str]:
    return zarr.open_group(path / "OME", mode="r").attrs["ome"]["series"]


def test_the_ome_xml_lists_every_series_by_its_path(store_path: Path) -> None:
    series = _series(store_path)
    assert series == ["raw/p0", "denoised/p0", "raw/p1", "denoised/p1"]
    ome = from_xml(store_path / "OME" / "METADATA.ome.xml")
    assert [image.id for image in ome.images] == [f"Image:{path}" for path in series]
    run = open_run(store_path)
    arrays = [a for pair in zip(run.raw, run.denoised, strict=True) for a in pair]
    for path, image, arr in zip(series, ome.images, arrays, strict=True):
        pixels = image.pixels
        assert image.name == path.replace("/", " ")
        assert (pixels.size_t, pixels.size_c, pixels.size_z, pixels.size_y, pixels.size_x) == (
            arr.shape
        )
        assert pixels.type.value == ("uint16" if path.startswith("raw/") else "float")
        assert [ch.name for ch in pixels.channels] == ["DAPI", "FITC"]
        assert pixels.physical_size_x == 0.5 and pixels.time_increment == 1.0
        yaozarrs.validate_zarr_store(str(store_path / path))  # each path opens as an image
    yaozarrs.validate_zarr_store(str(store_path))


def test_an_unfinished_run_lists_the_images_it_has(tmp_path: Path) -> None:
    path = tmp_path / "run.ome.zarr"
    store = RunStore(path, RunLayout(timepoints=4), {})
    assert from_xml(path / "OME" / "METADATA.ome.xml").images == []
    store.write_raw(np.full((8, 8), 5, np.uint8), _info(2, 0, 0, "FITC"))
    store.flush()  # once a second during a run
    del store  # a crash: close() never runs
    ome = from_xml(path / "OME" / "METADATA.ome.xml")
    assert [image.id for image in ome.images] == ["Image:raw/p0", "Image:denoised/p0"]
    assert not list((path / "OME").glob("*.partial"))
