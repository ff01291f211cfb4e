"""The pieces between acquisition and sinks: ring buffer, windows, the OME-Zarr run store."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
import yaozarrs
import zarr

from livedenoise.frames import FrameIndex, FrameInfo, RunLayout
from livedenoise.pipeline.ring import FrameRing
from livedenoise.pipeline.windows import WindowAssembler, default_axis
from livedenoise.storage import RunStore, open_run
from livedenoise.storage.run_store import FrameMismatch


def test_ring_hands_frames_over_and_reports_overwritten_ones() -> None:
    ring = FrameRing(3)
    for i in range(5):
        info = ring.put(np.full((4, 5), i, np.uint16), FrameIndex(i, 0, 0, 0), float(i))
        assert info.seq == i
    assert ring.get(0) is None and ring.get(1) is None  # overwritten, never another frame's pixels
    frame, info = ring.get(3)
    assert info.index.t == 3 and (frame == 3).all()
    frame[:] = 99  # a copy: the slot is untouched
    assert (ring.get(3)[0] == 3).all()
    assert ring.newest() == 4


def test_ring_keeps_frames_of_another_shape_and_dtype_as_they_are() -> None:
    """A preset that changes the ROI or bit depth mid-run: each frame comes back exactly."""
    ring = FrameRing(2)
    small = np.full((4, 5), 300, np.uint16)
    wide = np.full((6, 3), 7, np.uint8)
    ring.put(small, FrameIndex(0, 0, 0, 0), 0.0)
    ring.put(wide, FrameIndex(0, 0, 1, 0), 0.0)
    ring.put(np.full((6, 3), 70000, np.uint32), FrameIndex(1, 0, 0, 0), 0.0)  # reuses slot 0
    frame, _ = ring.get(1)
    assert frame.dtype == np.uint8 and frame.shape == (6, 3) and (frame == 7).all()
    frame, _ = ring.get(2)
    assert frame.dtype == np.uint32 and (frame == 70000).all()


def test_ring_wakes_a_waiting_consumer_on_put_and_on_close() -> None:
    ring = FrameRing(2)
    results: list[bool] = []
    waiter = threading.Thread(target=lambda: results.append(ring.wait(0, timeout=5)))
    waiter.start()
    ring.put(np.ones((2, 2), np.uint8), FrameIndex(0, 0, 0, 0), 0.0)
    waiter.join()
    waiter = threading.Thread(target=lambda: results.append(ring.wait(1, timeout=5)))
    waiter.start()
    ring.close()
    waiter.join()
    assert results == [True, False]


def test_windows_hold_the_predecessors_of_the_same_stack() -> None:
    windows = WindowAssembler(size=3, axis="t")
    for t in range(5):
        for c in range(2):
            windows.add(FrameIndex(t, 0, c, 0), np.full((2, 2), 10 * t + c))
    window = windows.window(FrameIndex(4, 0, 1, 0))
    assert window[:, 0, 0].tolist() == [21, 31, 41]  # channel 1 only, the frame last
    assert windows.window(FrameIndex(3, 0, 0, 0))[:, 0, 0].tolist() == [20, 30]


def test_windows_from_only_the_usable_frames_are_the_windows_from_all() -> None:
    """Live mode copies only the frames that came during an engine call that a window can still
    hold: two channels, a z-stack that restarts, the newest frames of each stack."""
    indices = [FrameIndex(t, 0, c, 0) for t in range(6) for c in (0, 1)]
    indices += [FrameIndex(t, 0, 0, 0) for t in (0, 1)]  # channel 0 starts a new pass
    frames = [np.full((2, 2), i, np.uint16) for i in range(len(indices))]
    every, usable = WindowAssembler(3, "t"), WindowAssembler(3, "t")
    for index, frame in zip(indices[:2], frames[:2], strict=True):  # before the call
        every.add(index, frame)
        usable.add(index, frame)
    came = indices[2:]
    keep = usable.usable(came)
    assert keep[-1] and sum(keep) < len(came)
    for index, frame, kept in zip(came, frames[2:], keep, strict=True):
        every.add(index, frame)
        if kept:
            usable.add(index, frame)
    for index in (FrameIndex(1, 0, 0, 0), FrameIndex(5, 0, 1, 0)):
        np.testing.assert_array_equal(usable.window(index), every.window(index))


def test_z_windows_restart_with_each_stack_and_default_axis() -> None:
    windows = WindowAssembler(size=4, axis="z")
    for t in range(2):
        for z in range(3):
            windows.add(FrameIndex(t, 0, 0, z), np.full((1, 1), 100 * t + z))
    assert windows.window(FrameIndex(1, 0, 0, 1))[:, 0, 0].tolist() == [100, 101]
    assert default_axis(timepoints=1, slices=9) == "z"
    assert default_axis(timepoints=5, slices=9) == "t"


def _info(t: int, p: int, c: int, z: int, **meta) -> FrameInfo:
    return FrameInfo(0, FrameIndex(t, p, c, z), float(t), meta.pop("stage", None), meta)


def test_run_store_is_valid_ome_zarr_and_grows_as_frames_arrive(tmp_path: Path) -> None:
    layout = RunLayout(timepoints=1, channels=1, slices=1, pixel_size_um=0.5, z_step_um=2.0)
    store = RunStore(tmp_path / "run.ome.zarr", layout, {"model": {"name": "m"}})
    frame = np.arange(16 * 24, dtype=np.uint16).reshape(16, 24)
    store.write_raw(frame, _info(0, 0, 0, 0, channel="DAPI"))
    store.write_raw(frame + 1, _info(6, 1, 1, 2, channel="FITC", stage=(100.0, -50.0, 0.0)))
    store.write_denoised(FrameIndex(6, 1, 1, 2), frame * 0.5, denoised_s=1.7, latency_s=0.2)
    store.close({"denoised": 1})

    run = open_run(tmp_path / "run.ome.zarr")
    assert run.raw[1].shape == (7, 2, 3, 16, 24)  # grown to the frames written, along t, c and z
    np.testing.assert_array_equal(run.raw[1][6, 1, 2], frame + 1)
    np.testing.assert_allclose(run.denoised[1][6, 1, 2], frame * 0.5)
    assert np.isnan(run.denoised[0][0, 0, 0]).all()  # never denoised: NaN, not a fake zero
    assert run.timing["latency_ms"][6, 1, 1, 2] == pytest.approx(200.0)
    assert run.attrs["complete"] and run.attrs["model"]["name"] == "m"
    assert run.attrs["images"][1]["channels"] == ["channel 0", "FITC"]
    yaozarrs.validate_zarr_store(str(tmp_path / "run.ome.zarr"))
    # the stage position is the field's centre: the first pixel lies half a field up and left of it
    ome = zarr.open_group(tmp_path / "run.ome.zarr/raw/p1", mode="r").attrs["ome"]
    transforms = ome["multiscales"][0]["datasets"][0]["coordinateTransformations"]
    assert transforms[0]["scale"][2:] == [2.0, 0.5, 0.5]
    assert transforms[1] == {
        "type": "translation",
        "translation": [0.0, 0.0, 0.0, -50.0 - 8 * 0.5, 100.0 - 12 * 0.5],
    }
    # the display window spans the data, not the dtype: a 12-bit image does not open black
    window = ome["omero"]["channels"][1]["window"]
    assert (window["start"], window["end"]) == (1.0, 16 * 24.0)


def test_run_store_refuses_a_frame_that_does_not_fit_its_image(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.ome.zarr", RunLayout(), {})
    store.write_raw(np.zeros((8, 8), np.uint8), _info(0, 0, 0, 0))
    with pytest.raises(FrameMismatch, match="8x8 uint8"):
        store.write_raw(np.zeros((8, 8), np.uint16), _info(1, 0, 0, 0))  # never cast to uint8


def test_unfinished_run_still_opens_with_its_frames(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run.ome.zarr", RunLayout(timepoints=4), {})
    store.write_raw(np.full((8, 8), 5, np.uint8), _info(2, 0, 0, 0))
    del store  # a crash: close() never runs
    run = open_run(tmp_path / "run.ome.zarr")
    assert not run.attrs["complete"]
    assert (run.raw[0][2, 0, 0] == 5).all()


def test_run_store_refuses_to_overwrite_a_run(tmp_path: Path) -> None:
    RunStore(tmp_path / "run.ome.zarr", RunLayout(), {})
    with pytest.raises(FileExistsError, match="exists already; choose a new path"):
        RunStore(tmp_path / "run.ome.zarr", RunLayout(), {})


def test_mosaic_places_tiles_by_stage_position_and_blends_the_overlap(tmp_path: Path) -> None:
    from livedenoise.pipeline.mosaic import Mosaic

    world = np.random.default_rng(0).random((40, 60)).astype(np.float32)
    mosaic = Mosaic(pixel_size_um=0.5, tile_shape=(20, 32))
    # Two tiles side by side overlapping by 4 columns; stage x is the tile centre in micrometres.
    for col in (0, 28):
        for row in (0, 20):
            tile = world[row : row + 20, col : col + 32]
            mosaic.add(tile, x_um=(col + 16) * 0.5, y_um=(row + 10) * 0.5)
    stitched = mosaic.image(0)
    assert mosaic.tiles == 4
    np.testing.assert_allclose(stitched, world, atol=1e-5)  # same content: blending is exact
    saved = mosaic.save(tmp_path / "mosaic.tif")
    import tifffile

    np.testing.assert_allclose(tifffile.imread(saved).reshape(stitched.shape), stitched, atol=1e-6)
    with tifffile.TiffFile(saved) as tif:  # Fiji opens it calibrated: 0.5 um pixels
        assert tif.is_imagej and tif.imagej_metadata["unit"] == "um"
        x_per_unit = tif.pages[0].tags["XResolution"].value
        assert x_per_unit[0] / x_per_unit[1] == pytest.approx(2.0)
