"""Re-denoising a recording later: a run store's images one by one (``--image raw/p1``) or all of them
into a new run store of the same layout, tiles in their places."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from livedenoise.cli import app
from livedenoise.imageio import read_image
from livedenoise.storage import open_run

runner = CliRunner()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEDENOISE_CACHE", str(tmp_path / "cache"))


def invoke(*args: object) -> str:
    result = runner.invoke(app, ["denoise", *map(str, args)], terminal_width=200)
    return " ".join(result.output.split()) + f" (exit {result.exit_code})"


def test_one_image_of_a_run_store(
    recording: Path, identity_model_path: Path, tmp_path: Path
) -> None:
    out = invoke(
        identity_model_path,
        recording,
        tmp_path / "p1.ome.zarr",
        "--image",
        "raw/p1",
        "--backend",
        "torch",
    )
    assert out.endswith("(exit 0)"), out
    raw = read_image(recording, "raw/p1")
    denoised = read_image(tmp_path / "p1.ome.zarr")
    assert denoised.axes == "TCZYX" and denoised.data.shape == raw.data.shape == (3, 2, 1, 64, 64)
    assert denoised.translation == raw.translation and denoised.translation  # the tile stays put
    assert denoised.channels == ["FITC", "DAPI"]
    np.testing.assert_allclose(denoised.data, raw.data, atol=1)  # the identity model


def test_a_run_store_without_image_names_its_choices(
    recording: Path, small_model_path: Path, tmp_path: Path
) -> None:
    out = invoke(small_model_path, recording, tmp_path / "out.tif")
    assert "(exit 1)" in out and "run store of 2 image(s)" in out and "e.g. raw/p0 (--image)" in out


def test_every_raw_image_into_a_new_run_store(
    recording: Path, identity_model_path: Path, tmp_path: Path
) -> None:
    out = invoke(identity_model_path, recording, tmp_path / "again.ome.zarr", "--backend", "torch")
    assert out.endswith("(exit 0)"), out
    before, after = open_run(recording), open_run(tmp_path / "again.ome.zarr")
    assert len(after.raw) == len(after.denoised) == 2
    for p in range(2):
        np.testing.assert_array_equal(after.raw[p], before.raw[p])
        np.testing.assert_allclose(after.denoised[p], before.raw[p], atol=1)  # identity model
        assert read_image(tmp_path / "again.ome.zarr", f"denoised/p{p}").translation == (
            read_image(recording, f"raw/p{p}").translation
        )
    assert after.attrs["model"]["name"] == "identity" and after.attrs["denoised_from"] == str(
        recording
    )
    assert [i["channels"] for i in after.attrs["images"]] == [["FITC", "DAPI"]] * 2
    np.testing.assert_array_equal(after.timing["acquired_s"], before.timing["acquired_s"])


def test_one_test_tells_a_run_store_from_other_inputs(recording: Path, tmp_path: Path) -> None:
    """The in-memory and chunked paths share it: a recording is one; one of its images, a plain
    OME-Zarr image, a TIFF or nothing is not."""
    from livedenoise.imageio import Image, write_image
    from livedenoise.storage import is_run_store

    frames = np.zeros((2, 16, 16), np.uint16)
    write_image(tmp_path / "plain.ome.zarr", Image(frames, "TYX"))
    write_image(tmp_path / "plain.tif", Image(frames, "TYX"))
    assert is_run_store(recording)
    assert not is_run_store(recording / "raw" / "p0")  # one image of it
    assert not is_run_store(tmp_path / "plain.ome.zarr")
    assert not is_run_store(tmp_path / "plain.tif")
    assert not is_run_store(tmp_path / "missing.ome.zarr")
