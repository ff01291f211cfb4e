"""``livedenoise denoise``: image files in and out with the right shape, dtype and axes; frames denoised
in windows centred on them; files that are not usable images get a clear error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import yaozarrs
from typer.testing import CliRunner

from livedenoise.app.denoising import to_dtype
from livedenoise.cli import app
from livedenoise.imageio import Image, read_image, write_image
from livedenoise.inference import load_engine

runner = CliRunner()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEDENOISE_CACHE", str(tmp_path / "cache"))


def stack(shape: tuple[int, ...], dtype: type = np.uint16, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) * 200).astype(dtype)


def run(*args: object) -> str:
    result = runner.invoke(app, ["denoise", *map(str, args)], terminal_width=200)
    assert result.exit_code == 0, result.output
    return result.output


def fails(*args: object) -> str:
    result = runner.invoke(app, ["denoise", *map(str, args)], terminal_width=200)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    return " ".join(result.output.split())


def test_tiff_time_series_round_trip(small_model_path: Path, tmp_path: Path) -> None:
    frames = stack((6, 40, 48))
    tifffile.imwrite(tmp_path / "in.tif", frames)  # a plain multi-page TIFF, no axes recorded
    run(small_model_path, tmp_path / "in.tif", tmp_path / "out.tif", "--backend", "torch", "-t", 3)
    out = read_image(tmp_path / "out.tif")
    assert out.axes == "TYX" and out.data.shape == frames.shape and out.data.dtype == np.uint16
    engine = load_engine(small_model_path, "torch")
    # frame 2 was denoised with frames 1-3 around it; frame 0, at the start, with frames 0-2
    np.testing.assert_allclose(
        out.data[2], to_dtype(engine.denoise(frames[1:4])[1], frames.dtype), atol=1
    )
    np.testing.assert_allclose(
        out.data[0], to_dtype(engine.denoise(frames[0:3])[0], frames.dtype), atol=1
    )


def test_ome_zarr_z_stack_round_trip(small_model_path: Path, tmp_path: Path) -> None:
    image = Image(
        stack((5, 32, 40)), "ZYX", scale={"Z": 2.0, "Y": 0.3, "X": 0.3}, units={"Z": "micrometer"}
    )
    write_image(tmp_path / "in.ome.zarr", image)
    run(small_model_path, tmp_path / "in.ome.zarr", tmp_path / "out.ome.zarr", "--backend", "torch")
    out = read_image(tmp_path / "out.ome.zarr")
    assert out.axes == "ZYX" and out.data.shape == (5, 32, 40) and out.data.dtype == np.uint16
    assert out.scale == image.scale and out.units == image.units
    meta = json.loads((tmp_path / "out.ome.zarr" / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and meta["attributes"]["ome"]["version"] == "0.5"
    yaozarrs.validate_ome_json((tmp_path / "out.ome.zarr" / "zarr.json").read_text())


def test_2d_npy_to_float32(small_model_path: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", stack((36, 44), np.uint8))
    run(
        small_model_path,
        tmp_path / "in.npy",
        tmp_path / "out.npy",
        "--backend",
        "torch",
        "--float32",
    )
    out = np.load(tmp_path / "out.npy")
    assert out.shape == (36, 44) and out.dtype == np.float32


def test_channels_are_kept_in_place(tmp_path: Path) -> None:
    assert runner.invoke(app, ["new", str(tmp_path / "two"), "--channels", "2"]).exit_code == 0
    tifffile.imwrite(tmp_path / "in.tif", stack((4, 2, 24, 32)), metadata={"axes": "TCYX"})
    run(tmp_path / "two", tmp_path / "in.tif", tmp_path / "out.tif", "--backend", "torch")
    out = read_image(tmp_path / "out.tif")
    assert out.axes == "TCYX" and out.data.shape == (4, 2, 24, 32)


def test_file_that_is_not_an_image(small_model_path: Path, tmp_path: Path) -> None:
    (tmp_path / "notes.tif").write_text("acquisition notes, not pixels")
    assert "notes.tif: not a readable TIFF image" in fails(
        small_model_path, tmp_path / "notes.tif", tmp_path / "out.tif"
    )
    (tmp_path / "notes.npy").write_text("not an array either")
    assert "not a NumPy .npy array" in fails(
        small_model_path, tmp_path / "notes.npy", tmp_path / "o.npy"
    )
    assert "unknown image format '.png'" in fails(
        small_model_path, tmp_path / "a.png", tmp_path / "o.tif"
    )


@pytest.mark.parametrize(
    ("data", "axes", "message"),
    [
        (
            np.zeros(64, np.uint16),
            None,
            "an image has 2 to 5 dimensions (YX to TZCYX), this one has 1",
        ),
        (np.zeros((2, 2, 2, 2, 2, 8, 8), np.uint16), None, "this one has 7"),
        (np.zeros((3, 4, 16, 16), np.uint16), "TZYX", "has both time (T) and z (Z) axes"),
        (np.zeros((4, 16, 16), np.uint16), "YX", "axes 'YX' name 2 dimensions but the image has 3"),
        (np.zeros((2, 16, 16), np.uint16), "CYX", "has 2 channel(s) but the model takes 1"),
    ],
    ids=["1d", "7d", "time-and-z", "axes-too-short", "channels"],
)
def test_wrong_dimensions_are_clear_errors(
    small_model_path: Path, tmp_path: Path, data: np.ndarray, axes: str | None, message: str
) -> None:
    np.save(tmp_path / "in.npy", data)
    options = ["--axes", axes] if axes else []
    output = fails(
        small_model_path, tmp_path / "in.npy", tmp_path / "o.npy", "--backend", "torch", *options
    )
    assert message in output


def test_existing_output_is_kept_unless_asked(small_model_path: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", stack((16, 16)))
    np.save(tmp_path / "out.npy", np.ones(3))
    assert "out.npy exists; pass --overwrite" in fails(
        small_model_path, tmp_path / "in.npy", tmp_path / "out.npy"
    )
    assert np.load(tmp_path / "out.npy").shape == (3,)
