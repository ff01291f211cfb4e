"""The napari plugin's reader, sample and manifest, opened as a napari user opens them.

A 2x2 tiled run on the simulated microscope opens as raw and denoised layers, each tile at the stage
position the grid put it; napari's other readers keep every path that is not livedenoise's.

napari's window draws with OpenGL, which Qt's ``offscreen`` platform lacks: there (``make test``) the
tests open files in napari's viewer model, the viewer without its canvas (``viewer.open`` is the
model's); on a display (``xvfb-run -a pytest tests/test_napari_reader.py``) in napari's own
``make_napari_viewer`` window.
"""

from __future__ import annotations

import os
import shutil
from itertools import product
from pathlib import Path

import numpy as np
import pytest
import useq

pytest.importorskip("napari")
pytest.importorskip("npe2")

import dask.array as da
import npe2
import zarr
from napari.components import ViewerModel

from livedenoise.acquisition import make_core
from livedenoise.app.layers import open_layers
from livedenoise.napari.reader import get_reader
from livedenoise.napari.sample import record_tiled_run

# napari's fixtures (make_napari_viewer); its pytest plugin is off elsewhere (pyproject addopts), as
# it imports napari's Qt window for every test
pytest_plugins = ["napari.utils._testsupport"]

FRAME = 64
CHANNELS = ["FITC", "DAPI"]
SEQUENCE = useq.MDASequence(
    channels=CHANNELS,
    time_plan={"interval": 0, "loops": 2},
    grid_plan={"rows": 2, "columns": 2, "overlap": 0},
)


@pytest.fixture
def viewer(request: pytest.FixtureRequest) -> ViewerModel:
    """napari's test window where Qt can draw (a display), else the viewer's model with the installed
    plugins discovered (as a window discovers them)."""
    if os.environ.get("DISPLAY") and os.environ.get("QT_QPA_PLATFORM") != "offscreen":
        return request.getfixturevalue("make_napari_viewer")()
    npe2.PluginManager.instance().discover()
    return ViewerModel()


@pytest.fixture(scope="module")
def tiled_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_tiled_run(tmp_path_factory.mktemp("napari") / "tiles.ome.zarr", SEQUENCE)


@pytest.fixture(scope="module")
def microscope() -> tuple[float, float, float]:
    """The simulated microscope's pixel size and the stage's start position (x, y), in um."""
    core = make_core()
    try:
        return core.getPixelSizeUm(), *core.getXYPosition()
    finally:
        core.unloadAllDevices()


@pytest.fixture(scope="module")
def tile_corners(microscope: tuple[float, float, float]) -> set[tuple[float, float]]:
    """(y, x) of each tile's first pixel: a 2x2 grid of abutting fields of view centred on the
    stage's start position, each field's centre its stage position (Micro-Manager's convention)."""
    pixel, x0, y0 = microscope
    field = FRAME * pixel
    centres = product((y0 - field / 2, y0 + field / 2), (x0 - field / 2, x0 + field / 2))
    return {(round(y - field / 2, 6), round(x - field / 2, 6)) for y, x in centres}


def _corner(layer) -> tuple[float, float]:
    y, x = layer.translate[-2:]
    return round(float(y), 6), round(float(x), 6)


def test_viewer_opens_run_store_tiles_at_stage_positions(
    viewer: ViewerModel,
    tiled_store: Path,
    tile_corners: set[tuple[float, float]],
    microscope: tuple[float, float, float],
) -> None:
    viewer.open(str(tiled_store), plugin="livedenoise")

    layers = {layer.name: layer for layer in viewer.layers}
    # every tile, raw and denoised, one layer per channel
    assert len(layers) == 4 * 2 * len(CHANNELS)
    for kind, channel in product(("raw", "denoised"), CHANNELS):
        tiles = [
            layer for name, layer in layers.items() if name.startswith(kind) and channel in name
        ]
        assert len(tiles) == 4
        assert {_corner(layer) for layer in tiles} == tile_corners
        for layer in tiles:
            np.testing.assert_allclose(layer.scale[-2:], [microscope[0]] * 2)
            assert layer.visible == (kind == "denoised")  # raw hidden under its denoised twin
            # a tile's channels add up; its first covers the tiles below (no doubled seams)
            assert layer.blending == (
                "additive" if channel != CHANNELS[0] else "translucent_no_depth"
            )
            assert layer.data.shape == (2, 1, FRAME, FRAME)  # t, z, y, x
            # the colour the store gives the channel (omero), as Fiji and napari-ome-zarr show it
            color = zarr.open_group(tiled_store, mode="r")[layer.metadata["livedenoise"]["image"]]
            hex_color = color.attrs["ome"]["omero"]["channels"][CHANNELS.index(channel)]["color"]
            np.testing.assert_allclose(
                layer.colormap.colors[-1][:3],
                [int(hex_color[i : i + 2], 16) / 255 for i in (0, 2, 4)],
            )
    # the denoised frames are the store's, not zeros or NaN
    denoised = next(layer for name, layer in layers.items() if name.startswith("denoised"))
    frame = np.asarray(denoised.data[1, 0])
    assert np.isfinite(frame).all() and frame.std() > 0


def test_layers_are_lazy_and_share_one_window_per_channel(
    tiled_store: Path, tmp_path: Path
) -> None:
    store = shutil.copytree(tiled_store, tmp_path / "copy.ome.zarr")
    # every frame after the first time point unreadable: opening must not touch them
    for chunk in (store / "raw").glob("p*/0/c/1/**/*"):
        if chunk.is_file():
            chunk.write_bytes(b"not a frame")
    layers = open_layers(store)
    assert [layer.image for layer in layers] == [
        *(f"raw/p{n}" for n in range(4)),
        *(f"denoised/p{n}" for n in range(4)),
    ]
    for layer in layers:
        assert isinstance(layer.data, da.Array)  # nothing read until a plane is shown
        assert layer.channels == CHANNELS
    for kind in ("raw", "denoised"):
        windows = {tuple(layer.contrast_limits) for layer in layers if layer.kind == kind}
        assert len(windows) == 1  # tiles compare: one display window per channel
        for low, high in next(iter(windows)):
            assert low < high
    with pytest.raises(RuntimeError, match="decompression"):
        layers[0].data[1].compute()  # the frames are read when shown, and only then


def test_reader_leaves_other_paths_to_other_readers(tmp_path: Path, tiled_store: Path) -> None:
    plain = zarr.open_group(tmp_path / "plain.zarr", mode="w")
    plain.create_array("0", shape=(4, 4), dtype="uint8")
    (tmp_path / "notes.zarr").write_text("not a zarr store")
    assert get_reader(str(tmp_path / "plain.zarr")) is None
    assert get_reader(str(tmp_path / "notes.zarr")) is None
    assert get_reader(str(tmp_path / "missing.zarr")) is None
    assert get_reader([str(tiled_store), str(tmp_path / "plain.zarr")]) is None
    assert get_reader(str(tiled_store)) is not None


def test_chunked_denoise_output_opens_where_its_input_lay(
    viewer: ViewerModel, tmp_path: Path
) -> None:
    """A chunked ``denoise`` output is livedenoise's (its progress record says so); the in-memory
    input beside it is any NGFF image, left to other readers."""
    from distributed import LocalCluster

    from livedenoise.app.chunked import denoise_chunked
    from livedenoise.imageio import Image, write_image

    frames = np.random.default_rng(0).poisson(50, (6, 32, 32)).astype(np.uint16)
    image = Image(frames, "TYX", scale={"Y": 0.5, "X": 0.5}, translation={"Y": 10.0, "X": -4.0})
    write_image(tmp_path / "in.ome.zarr", image)
    out = tmp_path / "out.ome.zarr"
    with LocalCluster(n_workers=1, processes=False, dashboard_address=":0") as cluster:
        denoise_chunked(
            "sim-confocal-small",
            tmp_path / "in.ome.zarr",
            out,
            backend="onnxruntime",
            window=2,
            scheduler=cluster.scheduler_address,
        )

    assert get_reader(str(tmp_path / "in.ome.zarr")) is None
    viewer.open(str(out), plugin="livedenoise")
    (layer,) = viewer.layers
    np.testing.assert_allclose(layer.scale[-2:], [0.5, 0.5])
    np.testing.assert_allclose(layer.translate[-2:], [10.0, -4.0])
    assert layer.data.shape == frames.shape


def test_manifest_is_valid() -> None:
    """What ``npe2 validate livedenoise --imports`` checks: the installed distribution's manifest
    (found by its entry point) matches npe2's schema and every command it names imports."""
    manifest = npe2.PluginManifest.from_distribution("livedenoise")
    manifest.validate_imports()
    assert [reader.command for reader in manifest.contributions.readers or []] == [
        "livedenoise.get_reader"
    ]
    assert [sample.key for sample in manifest.contributions.sample_data or []] == ["tiled_run"]


def test_sample_is_a_simulated_tiled_run(viewer: ViewerModel) -> None:
    viewer.open_sample("livedenoise", "tiled_run")
    names = [layer.name for layer in viewer.layers]
    # 2x2 tiles, raw and denoised, two channels each
    assert len(names) == 16
    assert sum(name.startswith("denoised") for name in names) == 8
    corners = {_corner(layer) for layer in viewer.layers}
    assert len(corners) == 4  # four tiles in four places
