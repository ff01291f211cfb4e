"""Outputs that would destroy an input, or cannot be written, are refused in one line before any work.

A run store recorded on the simulated microscope is the input a user most fears to lose: denoising one of
its images "back into" it, with or without ``--overwrite`` and on either path (in memory, chunked on
Dask), must leave every byte of it as it was.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import tifffile
from typer.testing import CliRunner

from livedenoise.cli import app

ROOT = Path(__file__).resolve().parents[1]
TIRF = ROOT.parent / "shared" / "data" / "repeats" / "tirf_microtubules_20x5ms.tif"
CHUNKED = ["--workers", "1"]

runner = CliRunner()


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEDENOISE_CACHE", str(tmp_path / "cache"))


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def refused(*args: object) -> str:
    """The one line a refused command prints (exit 1, no traceback, nothing else said)."""
    result = runner.invoke(app, [str(a) for a in args], terminal_width=200)
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    assert lines[0].startswith("error:"), result.output
    return lines[0]


@pytest.mark.parametrize("options", [[], CHUNKED], ids=["in memory", "chunked"])
@pytest.mark.parametrize("source", [["raw/p0"], ["", "--image", "raw/p0"]], ids=["path", "--image"])
def test_denoising_an_image_back_into_its_run_store_is_refused_and_the_run_kept(
    recording: Path, small_model_path: Path, options: list[str], source: list[str]
) -> None:
    before = snapshot(recording)
    input, *image = source
    line = refused(
        "denoise", small_model_path, recording / input, recording, *image, "--overwrite", *options
    )
    assert ("holds the INPUT" if image == [] else "OUTPUT is the INPUT") in line, line
    assert snapshot(recording) == before


@pytest.mark.parametrize("options", [[], CHUNKED], ids=["in memory", "chunked"])
@pytest.mark.parametrize("inside", ["denoised.ome.zarr", "raw/p0/denoised.ome.zarr"])
def test_an_output_inside_the_input_is_refused(
    recording: Path, small_model_path: Path, options: list[str], inside: str
) -> None:
    before = snapshot(recording)
    args = ["--image", "raw/p0", "--overwrite", *options]
    line = refused("denoise", small_model_path, recording, recording / inside, *args)
    assert "lies inside the INPUT" in line, line
    assert snapshot(recording) == before


def test_an_output_that_is_the_input_by_another_name_is_refused(
    small_model_path: Path, tmp_path: Path
) -> None:
    frames = np.arange(4 * 32 * 32, dtype=np.uint16).reshape(4, 32, 32)
    tifffile.imwrite(tmp_path / "in.tif", frames, imagej=True, metadata={"axes": "TYX"})
    (tmp_path / "link.tif").symlink_to(tmp_path / "in.tif")
    os.link(tmp_path / "in.tif", tmp_path / "hard.tif")  # one file, two names
    (tmp_path / "sub").mkdir()
    others = ("link.tif", "hard.tif", "sub/../in.tif")
    for output in (tmp_path / name for name in others):
        line = refused("denoise", small_model_path, tmp_path / "in.tif", output, "--overwrite")
        assert "OUTPUT is the INPUT" in line, line
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "in.tif"), frames)


def unwritable_places(tmp_path: Path) -> list[Path]:
    """Folders no file can be written in, even by root: under /proc, and under a plain file; and a
    folder without write permission where this user cannot write there (not root)."""
    (tmp_path / "notes.txt").write_text("a file, not a folder")
    places = [Path("/proc"), tmp_path / "notes.txt" / "sub"]
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    if not os.access(locked, os.W_OK):
        places.append(locked)
    return places


@pytest.mark.parametrize("options", [[], CHUNKED], ids=["in memory", "chunked"])
def test_denoise_to_an_unwritable_folder_is_refused_before_reading(
    small_model_path: Path, tmp_path: Path, options: list[str]
) -> None:
    frames = np.arange(4 * 32 * 32, dtype=np.uint16).reshape(4, 32, 32)
    tifffile.imwrite(tmp_path / "in.tif", frames, imagej=True, metadata={"axes": "TYX"})
    source = tmp_path / ("in.ome.zarr" if options else "in.tif")
    if options:
        assert (
            runner.invoke(
                app,
                [
                    "denoise",
                    str(small_model_path),
                    str(tmp_path / "in.tif"),
                    str(source),
                    "--backend",
                    "torch",
                ],
            ).exit_code
            == 0
        )
    for folder in unwritable_places(tmp_path):
        output = folder / "denoised.ome.zarr"
        line = refused("denoise", small_model_path, source, output, *options)
        assert "cannot write in" in line and "choose another OUTPUT" in line, line
        assert not output.exists()


def test_calibrate_to_an_unwritable_folder_is_refused_before_calibrating(
    identity_model_path: Path, tmp_path: Path
) -> None:
    for folder in unwritable_places(tmp_path):
        out = folder / "tirf"
        args = ("--model", identity_model_path, "--from-stack", TIRF, "--out", out)
        line = refused("calibrate", *args)
        assert "cannot write in" in line and "choose another output folder" in line, line
        assert "(--out)" in line, line
        assert not out.exists()


def test_calibrate_overwrite_of_a_folder_holding_its_stack_is_refused(
    identity_model_path: Path, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()
    stack = tmp_path / "data" / "repeats.tif"
    stack.write_bytes(TIRF.read_bytes())
    args = ("--model", identity_model_path, "--from-stack", stack, "--out", tmp_path / "data")
    line = refused("calibrate", *args, "--overwrite")
    assert "holds the stack" in line, line
    assert stack.read_bytes() == TIRF.read_bytes()


def test_acquire_into_a_folder_of_another_run_store_is_refused(
    recording: Path, small_model_path: Path
) -> None:
    """From the fresh-user trial: `acquire --out RUN.ome.zarr/raw/x.ome.zarr` made the new run a
    member of the old store's raw group (deleting one would delete the other)."""
    before = snapshot(recording)
    for out in (recording / "raw" / "x.ome.zarr", recording / "new.ome.zarr"):
        message = refused(
            "acquire", "--duration", "1", "--headless", "--model", small_model_path, "--out", out
        )
        assert "lies inside the Zarr store" in message and str(recording) in message
    assert snapshot(recording) == before
