"""Input files read as what they are (issue 28): every series of a multi-position TIFF is reachable and
none is dropped without a word, a TIFF of 4 planes is 4 frames, RGB stays RGB, and ``calibrate`` names
an option it has when a file holds several images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile
import useq
from typer.testing import CliRunner

from livedenoise.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEDENOISE_CACHE", str(tmp_path / "cache"))


def _cli(*args: object) -> tuple[int, str]:
    result = runner.invoke(app, [str(a) for a in args], terminal_width=200)
    assert "Traceback" not in result.output
    return result.exit_code, " ".join(result.output.split())


def _noisy(shape: tuple[int, ...], level: int, dtype: type = np.uint16) -> np.ndarray:
    rng = np.random.default_rng(level)
    return (level + rng.integers(0, 20, shape)).astype(dtype)


def test_multi_position_ome_tiff_is_refused_with_its_series_then_denoised_as_chosen(
    identity_model_path: Path, tmp_path: Path
) -> None:
    """Two positions in one OME-TIFF: no silent first series; --image picks the one denoised."""
    first, second = _noisy((5, 64, 64), 150), _noisy((3, 64, 64), 300)
    source = tmp_path / "plate.ome.tif"
    with tifffile.TiffWriter(source, ome=True) as tif:
        for data, name in ((first, "A1"), (second, "B2")):
            tif.write(data, photometric="minisblack", metadata={"axes": "TYX", "Name": name})
    out = tmp_path / "out.tif"

    code, text = _cli("denoise", identity_model_path, source, out, "--backend", "torch")
    assert code == 1 and not out.exists()
    assert "2 series" in text and "'A1'" in text and "'B2'" in text and "--image" in text

    code, text = _cli(
        "denoise", identity_model_path, source, out, "--backend", "torch", "--image", "1"
    )
    assert code == 0, text
    denoised = tifffile.imread(out)
    assert denoised.shape == second.shape  # position B2's 3 frames, not A1's 5
    np.testing.assert_allclose(denoised, second, atol=2)  # the identity model returns its input


def test_four_plane_tiff_is_four_frames_not_four_channels(
    small_model_path: Path, tmp_path: Path
) -> None:
    """``tifffile.imwrite`` of a (4, Y, X) array stores RGB plus an extra sample: 4 frames, guessed.

    A NaN in the third plane is reported as frame 2 (it was frame 0: one frame of 4 channels).
    """
    frames = _noisy((4, 64, 64), 100).astype(np.float32)
    frames[2, 5, 5] = np.nan
    source = tmp_path / "four.tif"
    tifffile.imwrite(source, frames, photometric="rgb", planarconfig="separate")
    with tifffile.TiffFile(source) as tif:  # the layout tifffile picks for such an array
        assert tif.series[0].axes == "SYX" and tif.pages.first.samplesperpixel == 4

    code, text = _cli("denoise", small_model_path, source, tmp_path / "o.tif", "--backend", "torch")
    assert code == 1 and "frames [2] " in text


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
def test_rgb_tiff_stays_rgb(identity_model_path: Path, tmp_path: Path, dtype: type) -> None:
    """Each colour is denoised as a channel and written back as an RGB image, colours in place."""
    colour = np.stack([_noisy((64, 64), level, dtype) for level in (110, 160, 220)], axis=-1)
    source = tmp_path / "colour.tif"
    tifffile.imwrite(source, colour, photometric="rgb")
    out = tmp_path / "out.tif"

    code, text = _cli("denoise", identity_model_path, source, out, "--backend", "torch")
    assert code == 0, text
    with tifffile.TiffFile(out) as tif:
        page = tif.pages.first
        assert page.photometric == tifffile.PHOTOMETRIC.RGB and page.samplesperpixel == 3
        assert tif.series[0].axes == "YXS"
        denoised = tif.asarray()
    assert denoised.shape == colour.shape and denoised.dtype == colour.dtype
    np.testing.assert_allclose(denoised, colour, atol=2)  # red still red, blue still blue


def test_calibrate_on_a_run_store_names_its_own_image_option(
    sim_core, small_model_path: Path, identity_model_path: Path, tmp_path: Path
) -> None:
    """A run store of two positions holds several images: calibrate says to choose one with
    --image, and --image raw/p1 calibrates on that position's repeats."""
    from livedenoise.app import denoising_output

    store = tmp_path / "run.ome.zarr"
    sequence = useq.MDASequence(
        stage_positions=[(0.0, 0.0, 0.0), (22.5, 22.5, 0.0)],  # the second on a cell
        time_plan={"interval": 0, "loops": 8},
    )
    output = denoising_output(store, small_model_path, backend="torch")
    sim_core.mda.run(sequence, output=output)
    assert output.finish().error is None
    calibrate = ("calibrate", "--model", identity_model_path, "--backend", "torch")

    code, text = _cli(*calibrate, "--from-stack", store, "--out", tmp_path / "whole")
    assert code == 1 and "choose one by its name (--image)" in text and "raw/p0" in text
    assert not (tmp_path / "whole").exists()
    code, text = _cli(
        *calibrate, "--from-stack", store, "--image", "raw/p1", "--out", tmp_path / "p1"
    )
    assert code == 0, text
    assert (tmp_path / "p1" / "profile.json").is_file()
