"""``livedenoise denoise``: image files in and out with the right shape, dtype and axes; frames denoised
in overlapping windows; files that are not usable images get a clear error."""

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
    # windows of frames 0-2, 2-4 and 3-5: frames 0 and 1 only in the first, frame 5 only in the last
    np.testing.assert_allclose(
        out.data[5], to_dtype(engine.denoise(frames[3:6])[2], frames.dtype), atol=1
    )
    np.testing.assert_allclose(
        out.data[1], to_dtype(engine.denoise(frames[0:3])[1], frames.dtype), atol=1
    )
    np.testing.assert_allclose(
        out.data[0], to_dtype(engine.denoise(frames[0:3])[0], frames.dtype), atol=1
    )


def test_ome_zarr_z_stack_keeps_scale_and_translation(
    small_model_path: Path, tmp_path: Path
) -> None:
    image = Image(
        stack((5, 32, 40)),
        "ZYX",
        scale={"Z": 2.0, "Y": 0.3, "X": 0.3},
        units={"Z": "micrometer", "Y": "micrometer", "X": "micrometer"},
        translation={"Z": 10.0, "Y": -120.5, "X": 300.25},
    )
    write_image(tmp_path / "in.ome.zarr", image)
    run(small_model_path, tmp_path / "in.ome.zarr", tmp_path / "out.ome.zarr", "--backend", "torch")
    out = read_image(tmp_path / "out.ome.zarr")
    assert out.axes == "ZYX" and out.data.shape == (5, 32, 40) and out.data.dtype == np.uint16
    assert (out.scale, out.units, out.translation) == (image.scale, image.units, image.translation)
    meta = json.loads((tmp_path / "out.ome.zarr" / "zarr.json").read_text())
    assert meta["zarr_format"] == 3 and meta["attributes"]["ome"]["version"] == "0.5"
    transforms = meta["attributes"]["ome"]["multiscales"][0]["datasets"][0][
        "coordinateTransformations"
    ]
    assert transforms[1] == {"type": "translation", "translation": [10.0, -120.5, 300.25]}
    yaozarrs.validate_ome_json((tmp_path / "out.ome.zarr" / "zarr.json").read_text())


def test_imagej_time_lapse_comes_back_as_a_calibrated_hyperstack(
    small_model_path: Path, tmp_path: Path
) -> None:
    """A TYX hyperstack with 0.13 um pixels and a 2 s interval: Fiji opens the output the same way."""
    tifffile.imwrite(
        tmp_path / "in.tif",
        stack((5, 24, 32)),
        imagej=True,
        resolution=(1 / 0.13, 1 / 0.13),
        metadata={"axes": "TYX", "unit": "um", "finterval": 2.0},
    )
    run(small_model_path, tmp_path / "in.tif", tmp_path / "out.tif", "--backend", "torch")
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.is_imagej and tif.series[0].axes == "TYX" and tif.series[0].shape == (5, 24, 32)
        meta = tif.imagej_metadata
        assert meta["frames"] == 5 and meta["hyperstack"] and "slices" not in meta
        assert meta["finterval"] == pytest.approx(2.0) and meta["unit"] == "um"
        assert 1 / tif.pages.first.get_resolution()[0] == pytest.approx(0.13)


def test_ome_tiff_output_for_an_ome_tif_name(small_model_path: Path, tmp_path: Path) -> None:
    image = Image(
        stack((3, 24, 32)),
        "ZYX",
        {"Z": 1.5, "Y": 0.2, "X": 0.2},
        dict.fromkeys("ZYX", "micrometer"),
    )
    write_image(tmp_path / "in.ome.zarr", image)
    run(small_model_path, tmp_path / "in.ome.zarr", tmp_path / "out.ome.tif", "--backend", "torch")
    with tifffile.TiffFile(tmp_path / "out.ome.tif") as tif:
        assert tif.is_ome and tif.series[0].axes == "ZYX"
    out = read_image(tmp_path / "out.ome.tif")
    assert out.scale == image.scale and out.units == image.units


def test_axes_override_puts_y_and_x_last(small_model_path: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", stack((40, 48, 3)))  # time last, as some scripts save it
    run(
        small_model_path,
        tmp_path / "in.npy",
        tmp_path / "out.tif",
        "--axes",
        "YXT",
        "--backend",
        "torch",
    )
    with tifffile.TiffFile(tmp_path / "out.tif") as tif:
        assert tif.series[0].axes == "TYX" and tif.series[0].shape == (3, 40, 48)


def test_unnamed_axes_are_guessed_out_loud(small_model_path: Path, tmp_path: Path) -> None:
    tifffile.imwrite(tmp_path / "in.tif", stack((4, 24, 32)), photometric="minisblack")
    output = run(small_model_path, tmp_path / "in.tif", tmp_path / "out.tif", "--backend", "torch")
    said = " ".join(output.split())  # what was guessed, and how to say otherwise
    assert "axes TYX guessed" in said and "if they are wrong, give the axes (e.g. ZYX)" in said
    output = run(
        small_model_path,
        tmp_path / "in.tif",
        tmp_path / "z.tif",
        "--axes",
        "ZYX",
        "--backend",
        "torch",
    )
    assert "guessed:" not in output
    assert tifffile.TiffFile(tmp_path / "z.tif").imagej_metadata["slices"] == 4


def test_single_channel_model_denoises_each_channel_alone(
    small_model_path: Path, tmp_path: Path
) -> None:
    """A 3-channel image (as ImageJ's HeLa sample) with a model trained on one channel."""
    cells = stack((3, 32, 40))
    tifffile.imwrite(tmp_path / "in.tif", cells, imagej=True, metadata={"axes": "CYX"})
    output = run(small_model_path, tmp_path / "in.tif", tmp_path / "out.tif", "--backend", "torch")
    assert "1 frame(s) of 3 channel(s)" in output
    out = read_image(tmp_path / "out.tif")
    assert out.axes == "CYX" and out.data.shape == cells.shape
    engine = load_engine(small_model_path, "torch")
    for c in range(3):
        alone = to_dtype(engine.denoise(cells[c][None])[0], cells.dtype)
        np.testing.assert_allclose(out.data[c], alone, atol=1)


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
    (tmp_path / "a.png").write_bytes(b"\x89PNG")
    assert "unknown image format '.png'" in fails(
        small_model_path, tmp_path / "a.png", tmp_path / "o.tif"
    )
    (tmp_path / "tiles").mkdir()  # a folder of images, not one image
    assert "tiles: a folder, not an OME-Zarr image or run store; use TIFF" in fails(
        small_model_path, tmp_path / "tiles", tmp_path / "o.tif"
    )


def test_unknown_backend_is_one_line_that_lists_the_engines(
    small_model_path: Path, tmp_path: Path
) -> None:
    frames = stack((2, 16, 16))
    tifffile.imwrite(tmp_path / "in.tif", frames)
    said = fails(small_model_path, tmp_path / "in.tif", tmp_path / "o.tif", "--backend", "gpu")
    assert "unknown --backend 'gpu': choose one of auto," in said and "onnxruntime" in said
    assert "╭" not in said and not (tmp_path / "o.tif").exists()


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
        (
            np.zeros((1, 300), np.uint16),
            None,
            "frames of 1x300 px are smaller than the model's minimum of 8x8 px",
        ),
    ],
    ids=["1d", "7d", "time-and-z", "axes-too-short", "line-scan"],
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


def test_channels_the_model_lacks_are_refused(tmp_path: Path) -> None:
    assert runner.invoke(app, ["new", str(tmp_path / "two"), "--channels", "2"]).exit_code == 0
    np.save(tmp_path / "in.npy", stack((3, 16, 16)))
    output = fails(tmp_path / "two", tmp_path / "in.npy", tmp_path / "o.npy", "--axes", "CYX")
    assert "has 3 channel(s) but the model takes 2" in output
    assert "or check the axes, if they were misread (--axes)" in output


def test_a_stride_longer_than_the_window_names_its_flag_on_the_command_line_only(
    small_model_path: Path, tmp_path: Path
) -> None:
    from livedenoise.app.denoising import DenoiseError, denoise_file

    np.save(tmp_path / "in.npy", stack((6, 16, 16)))
    args = (small_model_path, tmp_path / "in.npy", tmp_path / "o.npy")
    output = fails(*args, "-t", 4, "--stride", 5)
    assert "a stride of 5 frame(s) does not fit windows of 4 frame(s); give 1..4" in output
    assert output.endswith("(--stride)")
    with pytest.raises(DenoiseError) as refused:  # a script is told its parameter, not a flag
        denoise_file(*args, window=4, stride=5)
    assert refused.value.option == "stride" and "--" not in str(refused.value)
    assert not (tmp_path / "o.npy").exists()


def test_output_names_of_no_format_are_refused_before_any_work(tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", stack((16, 16)))
    # the model does not exist: the output name is refused before the model (or input) is opened
    assert "unknown image format '.png'" in fails(
        tmp_path / "nomodel", tmp_path / "in.npy", tmp_path / "o.png"
    )
    np.save(tmp_path / "int32.npy", stack((16, 16), np.int32))
    assert "an ImageJ TIFF holds uint8, uint16 or float32 values, not int32" in fails(
        tmp_path / "nomodel", tmp_path / "int32.npy", tmp_path / "o.tif"
    )
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "o.tif").exists()


def test_chunked_options_that_do_nothing_are_refused(tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", stack((16, 16)))
    args = (tmp_path / "nomodel", tmp_path / "in.npy", tmp_path / "o.npy")
    assert "add --workers N or --scheduler" in fails(*args, "--block-frames", 4)
    assert "give one of them" in fails(*args, "--workers", 2, "--scheduler", "tcp://host:8786")
    assert not (tmp_path / "o.npy").exists()


def test_existing_output_is_kept_unless_asked(small_model_path: Path, tmp_path: Path) -> None:
    np.save(tmp_path / "in.npy", stack((16, 16)))
    np.save(tmp_path / "out.npy", np.ones(3))
    assert "out.npy exists; overwrite replaces it (--overwrite)" in fails(
        small_model_path, tmp_path / "in.npy", tmp_path / "out.npy"
    )
    assert np.load(tmp_path / "out.npy").shape == (3,)


def test_ctrl_c_stops_denoising_without_touching_the_input(tmp_path: Path) -> None:
    """SIGINT to a real `livedenoise denoise` of a long stack: a clear line, exit 130, no traceback."""
    from conftest import LivedenoiseProcess

    stack = tmp_path / "long.tif"
    frames = np.random.default_rng(0).poisson(50, (400, 256, 256)).astype(np.uint16)
    tifffile.imwrite(stack, frames)
    out = tmp_path / "out.tif"
    run = LivedenoiseProcess(
        "denoise", "backbone-small", str(stack), str(out), "--backend", "torch"
    )
    run.wait_for("engine:")  # loaded: denoising the 400 frames now
    run.interrupt()
    code, output = run.finish()
    assert code == 130, output
    assert "stopped by Ctrl-C" in output and "Traceback" not in output
    np.testing.assert_array_equal(tifffile.imread(stack), frames)


def test_a_nan_frame_fails_before_the_engine_loads(small_model_path: Path, tmp_path: Path) -> None:
    frames = stack((6, 32, 32)).astype(np.float32)
    frames[4, 3, 3] = np.nan
    tifffile.imwrite(tmp_path / "nan.tif", frames, imagej=True, metadata={"axes": "TYX"})
    out = fails(small_model_path, tmp_path / "nan.tif", tmp_path / "out.tif")
    assert "frames [4] (counted from 0) contain NaN" in out
    assert "engine" not in out and not (tmp_path / "out.tif").exists()  # no engine was loaded
