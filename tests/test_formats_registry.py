"""The image-format registry: a format defined here, registered through the registry alone, is read
and written by `livedenoise denoise` end to end, and named in the list of formats users read."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from livedenoise.cli import app
from livedenoise.imageio import (
    Image,
    ImageFileError,
    ImageFormat,
    format_of,
    formats,
    known_formats,
    register,
)

HEADER = struct.Struct("<4sIII")  # magic, frames, height, width; then uint16 pixels


def read_raw16(path: Path, name: str | None) -> Image:
    """A time series of uint16 frames after a 16-byte header."""
    blob = path.read_bytes()
    magic, n, h, w = HEADER.unpack_from(blob)
    if magic != b"RW16":
        raise ImageFileError(f"{path}: not a raw16 file.", path=path)
    return Image(np.frombuffer(blob, "<u2", offset=HEADER.size).reshape(n, h, w), "TYX")


def write_raw16(path: Path, image: Image) -> None:
    frames = image.in_order("TYX").data
    path.write_bytes(HEADER.pack(b"RW16", *frames.shape) + frames.astype("<u2").tobytes())


def check_raw16(path: Path, dtype: np.dtype) -> None:
    if dtype != np.uint16:
        raise ImageFileError(f"{path}: a raw16 file holds uint16 values, not {dtype}.", path=path)


RAW16 = ImageFormat(
    "raw16", "raw16 (.raw16)", (".raw16",), read_raw16, write_raw16, check_writable=check_raw16
)


@pytest.fixture
def raw16(monkeypatch: pytest.MonkeyPatch) -> ImageFormat:
    """The format registered for one test; the registry as it was afterwards."""
    import livedenoise.imageio.registry as registry

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    return register(RAW16)


def denoise(*args: object) -> tuple[int, str]:
    result = CliRunner().invoke(app, ["denoise", *map(str, args)], terminal_width=200)
    return result.exit_code, " ".join(result.output.split())


def test_a_registered_format_is_denoised_end_to_end(
    raw16: ImageFormat, identity_model_path: Path, tmp_path: Path
) -> None:
    frames = np.random.default_rng(0).poisson(200, (4, 64, 64)).astype(np.uint16)
    write_raw16(tmp_path / "in.raw16", Image(frames, "TYX"))
    out = tmp_path / "out.raw16"

    code, text = denoise(identity_model_path, tmp_path / "in.raw16", out, "--backend", "torch")

    assert code == 0, text
    assert out.read_bytes()[:4] == b"RW16"  # written by the format's own writer
    denoised = read_raw16(out, None).data
    assert denoised.shape == frames.shape and denoised.dtype == np.uint16
    np.testing.assert_allclose(denoised, frames, atol=2)  # the identity model returns its input
    # its own check refuses a dtype it cannot hold, before any work
    code, text = denoise(
        identity_model_path, tmp_path / "in.raw16", tmp_path / "f.raw16", "--float32"
    )
    assert code == 1 and "a raw16 file holds uint16 values, not float32" in text
    assert not (tmp_path / "f.raw16").exists()


def test_the_format_list_users_read_comes_from_the_registry(raw16: ImageFormat) -> None:
    assert formats()[-1] is raw16 and format_of(Path("x.RAW16")) is raw16
    assert "raw16 (.raw16)" in known_formats() and "OME-Zarr" in known_formats()
    with pytest.raises(ImageFileError, match=r"unknown image format '\.raw8'; use .*raw16"):
        format_of(Path("x.raw8"))
