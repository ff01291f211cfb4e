"""Offline denoising reports through its ``Events``: the input and engine lines, progress up to the
total, and its result (or its error) at the end; the command line's display is one receiver."""

from __future__ import annotations

from pathlib import Path
from unittest.mock import Mock, call

import numpy as np
import pytest

from livedenoise.app.denoising import DenoiseError, DenoiseResult, denoise_file
from livedenoise.events import Events, Progress
from livedenoise.imageio import Image, read_image, write_image


@pytest.fixture(autouse=True)
def _private_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVEDENOISE_CACHE", str(tmp_path / "cache"))


def receivers(events: Events) -> dict[str, Mock]:
    """A Mock connected to each signal an offline task emits."""
    names = ("started", "status", "progress", "finished", "failed")
    mocks = {name: Mock() for name in names}
    for name, mock in mocks.items():
        getattr(events, name).connect(mock)
    return mocks


def test_a_denoising_reports_its_lines_its_progress_and_its_result(
    small_model_path: Path, tmp_path: Path
) -> None:
    frames = np.random.default_rng(0).poisson(50, (5, 2, 64, 64)).astype(np.uint16)
    write_image(tmp_path / "in.ome.zarr", Image(frames, "TCYX"))
    events = Events()
    got = receivers(events)
    result = denoise_file(
        small_model_path,
        tmp_path / "in.ome.zarr",
        tmp_path / "out.tif",
        backend="onnxruntime",
        window=3,
        events=events,
    )
    got["started"].assert_called_once_with(tmp_path / "in.ome.zarr")
    lines = [c.args[0] for c in got["status"].call_args_list]
    assert lines[0].startswith(f"{tmp_path / 'in.ome.zarr'}: ")
    assert "5 frame(s) of 2 channel(s)" in lines[0]
    assert lines[-1] == f"engine: {result.engine}"
    steps = [c.args[0] for c in got["progress"].call_args_list]
    assert steps[0].total is None  # the engine loading: a spinner, not a bar
    assert steps[-1] == Progress(10, 10, "denoising")  # 5 frames of each of 2 channels
    assert [s.done for s in steps[1:]] == list(range(1, 11))
    got["finished"].assert_called_once_with(result)
    assert isinstance(result, DenoiseResult)
    got["failed"].assert_not_called()
    assert read_image(tmp_path / "out.tif").data.shape == (5, 2, 64, 64)


def test_a_refused_denoising_reports_failed_with_its_error(
    small_model_path: Path, tmp_path: Path
) -> None:
    write_image(tmp_path / "in.ome.zarr", Image(np.ones((3, 64, 64), np.uint16), "TYX"))
    (tmp_path / "out.npy").write_bytes(b"kept")
    events = Events()
    got = receivers(events)
    with pytest.raises(DenoiseError) as refused:
        denoise_file(
            small_model_path, tmp_path / "in.ome.zarr", tmp_path / "out.npy", events=events
        )
    got["failed"].assert_called_once_with(refused.value)
    assert got["progress"].call_args_list == [] and got["finished"].call_args_list == []
    assert got["started"].call_args == call(tmp_path / "in.ome.zarr")
    assert (tmp_path / "out.npy").read_bytes() == b"kept"
