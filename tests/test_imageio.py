"""Image files as microscopists have them: axes and calibration read from ImageJ, OME-TIFF and OME-Zarr
0.4/0.5 metadata, images chosen inside collections, guesses flagged where a file names no axes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import zarr

from livedenoise.errors import LivedenoiseError
from livedenoise.imageio import Image, ImageFileError, list_images, read_image, write_image
from livedenoise.imageio.omezarr import write_zarr

UM = "micrometer"


def test_ome_tiff_calibration_and_channel_names_round_trip(tmp_path: Path) -> None:
    image = Image(
        np.arange(2 * 3 * 8 * 10, dtype=np.uint16).reshape(2, 3, 8, 10),
        "TCYX",
        scale={"T": 0.5, "Y": 0.2, "X": 0.2},
        units={"T": "second", "Y": UM, "X": UM},
        translation={"Y": 40.0, "X": -12.5},
        channels=["DAPI", "FITC", "TRITC"],
    )
    write_image(tmp_path / "a.ome.tif", image)
    back = read_image(tmp_path / "a.ome.tif")
    assert back.axes == "TCYX" and not back.axes_guessed
    np.testing.assert_array_equal(back.data, image.data)
    assert (back.scale, back.units, back.translation) == (
        image.scale,
        image.units,
        image.translation,
    )
    assert back.channels == image.channels


def test_imagej_z_stack_with_origin(tmp_path: Path) -> None:
    tifffile.imwrite(
        tmp_path / "z.tif",
        np.zeros((4, 8, 10), np.uint8),
        imagej=True,
        resolution=(10.0, 10.0),
        metadata={"axes": "ZYX", "unit": "micron", "spacing": 0.7, "xorigin": 50, "yorigin": -20},
    )
    image = read_image(tmp_path / "z.tif")
    assert image.axes == "ZYX" and not image.axes_guessed
    assert image.scale == pytest.approx({"Z": 0.7, "Y": 0.1, "X": 0.1})
    assert image.units == dict.fromkeys("ZYX", UM)
    assert image.translation == pytest.approx({"X": -5.0, "Y": 2.0})


def test_imagej_plain_stack_of_slices_is_a_z_stack(tmp_path: Path) -> None:
    """A stack as ImageJ saves one (slices=, no hyperstack flag) is read as the z-stack it says it is."""
    description = "ImageJ=1.54f\nimages=60\nslices=60\nunit=micron\nspacing=0.5\nloop=false\n"
    tifffile.imwrite(
        tmp_path / "z.tif",
        np.zeros((60, 8, 10), np.uint16),
        photometric="minisblack",
        description=description,
        metadata=None,
    )
    image = read_image(tmp_path / "z.tif")
    assert image.axes == "ZYX" and not image.axes_guessed and image.scale["Z"] == 0.5


def test_plain_tiff_stack_axes_are_a_guess(tmp_path: Path) -> None:
    tifffile.imwrite(
        tmp_path / "pages.tif", np.zeros((5, 8, 10), np.uint16), photometric="minisblack"
    )
    image = read_image(tmp_path / "pages.tif")
    assert image.axes == "TYX" and image.axes_guessed and image.scale == {}
    assert image.with_axes("zyx").axes == "ZYX"
    # tifffile stores 3 planes as RGB unless told otherwise, as in ImageJ's HeLa sample: the file
    # says they are the colours of one image
    tifffile.imwrite(tmp_path / "rgb.tif", np.zeros((3, 8, 10), np.uint16), photometric="rgb")
    image = read_image(tmp_path / "rgb.tif")
    assert image.axes == "CYX" and image.rgb and not image.axes_guessed


def test_ome_zarr_0_4_image_in_a_group_without_suffix(tmp_path: Path) -> None:
    """NGFF 0.4 (zarr v2) with multiscale-level transforms, in a folder named without .zarr."""
    group = zarr.open_group(tmp_path / "field", mode="w", zarr_format=2)
    group.create_array("0", data=np.ones((2, 8, 10), np.uint16))
    axes = [
        {"name": "t", "type": "time", "unit": "second"},
        {"name": "y", "type": "space", "unit": UM},
        {"name": "x", "type": "space", "unit": UM},
    ]
    dataset = {
        "path": "0",
        "coordinateTransformations": [
            {"type": "scale", "scale": [3.0, 0.5, 0.5]},
            {"type": "translation", "translation": [0.0, 1.0, 2.0]},
        ],
    }
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": axes,
            "datasets": [dataset],
            "coordinateTransformations": [{"type": "scale", "scale": [1.0, 2.0, 2.0]}],
        }
    ]
    image = read_image(tmp_path / "field")
    assert image.axes == "TYX" and image.data.shape == (2, 8, 10)
    assert image.scale == {"T": 3.0, "Y": 1.0, "X": 1.0}
    assert image.translation == {"Y": 2.0, "X": 4.0}
    assert image.units == {"T": "second", "Y": UM, "X": UM}


def test_collection_images_are_chosen_by_name(tmp_path: Path) -> None:
    """A bioformats2raw collection of two images: the reader lists them and reads the one named."""
    root = zarr.open_group(tmp_path / "plate.ome.zarr", mode="w", zarr_format=3)
    root.attrs["ome"] = {"version": "0.5", "bioformats2raw.layout": 3}
    for i in range(2):
        write_zarr(tmp_path / "plate.ome.zarr" / str(i), Image(np.full((8, 10), i, np.uint8), "YX"))
    assert list_images(tmp_path / "plate.ome.zarr") == ["0", "1"]
    with pytest.raises(
        ImageFileError, match=r"holds 2 images \(0, 1\); choose one by its name"
    ) as err:
        read_image(tmp_path / "plate.ome.zarr")
    assert err.value.option == "image"  # the parameter that fixes it, for each front end to name
    assert read_image(tmp_path / "plate.ome.zarr", "1").data.max() == 1
    assert read_image(tmp_path / "plate.ome.zarr" / "1").data.max() == 1  # the group itself
    with pytest.raises(ImageFileError, match="has no image 7; it has 0, 1"):
        read_image(tmp_path / "plate.ome.zarr", "7")
    with pytest.raises(ImageFileError, match="not an OME-Zarr image"):
        read_image(tmp_path / "plate.ome.zarr", "")


def test_npy_axes_follow_the_standard_order_on_writing(tmp_path: Path) -> None:
    data = np.arange(4 * 8 * 10, dtype=np.float32).reshape(8, 10, 4)
    write_image(tmp_path / "a.npy", Image(data, "YXT"))
    back = read_image(tmp_path / "a.npy")
    assert back.axes == "TYX" and back.axes_guessed
    np.testing.assert_array_equal(back.data, np.moveaxis(data, 2, 0))


def test_file_errors_name_the_parameter_that_fixes_them_not_a_flag(tmp_path: Path) -> None:
    """Viewer and script users never typed a flag: the library names its parameter (option)."""
    with tifffile.TiffWriter(tmp_path / "two.ome.tif", ome=True) as tif:
        for _ in range(2):
            tif.write(np.zeros((8, 10), np.uint8))
    np.save(tmp_path / "a.npy", np.zeros((8, 10), np.uint8))
    int32 = Image(np.zeros((8, 10), np.int32), "YX")
    causes = [
        ("image", lambda: read_image(tmp_path / "two.ome.tif")),  # several series, none chosen
        ("image", lambda: read_image(tmp_path / "a.npy", "1")),  # a .npy holds one image
        ("float32", lambda: write_image(tmp_path / "i.tif", int32)),  # not in an ImageJ TIFF
        ("axes", lambda: Image(np.zeros((8, 10)), "TYX")),
    ]
    for option, cause in causes:
        with pytest.raises(LivedenoiseError) as err:
            cause()
        assert isinstance(err.value, ImageFileError) and isinstance(err.value, ValueError)
        assert err.value.option == option and "--" not in str(err.value)
