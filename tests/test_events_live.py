"""What live runs emit (``livedenoise.events``): each frame with its typed payload, then the end."""

from __future__ import annotations

import os
from pathlib import Path
from unittest.mock import Mock

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
import useq

from livedenoise.app import Acquisition, RunRequest
from livedenoise.events import Events
from livedenoise.frames import FrameIndex, FrameInfo, RunLayout
from livedenoise.pipeline.live import LivePipeline, Policy, RunError
from livedenoise.pipeline.output import DenoisingOutput, RunSettings
from livedenoise.pipeline.ring import FrameRing
from livedenoise.pipeline.setup import apply_assignments
from livedenoise.pipeline.stats import RunSummary
from livedenoise.pipeline.windows import WindowAssembler
from livedenoise.storage import RunStore

SIGNALS = ("frameAcquired", "frameDenoised", "frameSkipped", "frameLost", "started", "failed")


class Halving:
    """An engine whose output is known without running it: half the newest frame of the window."""

    def denoise(self, window: np.ndarray) -> np.ndarray:
        return window.astype(np.float32) / 2


def _listen(events: Events) -> dict[str, Mock]:
    mocks = {name: Mock() for name in (*SIGNALS, "finished")}
    for name, mock in mocks.items():
        getattr(events, name).connect(mock)
    return mocks


def _frames(call_args_list: list) -> list[int]:
    """The sequence numbers of the frames a frame signal carried, in order."""
    return [call.args[-1].seq for call in call_args_list]


def test_an_mda_run_emits_every_frame_then_its_summary(sim_core, tmp_path: Path) -> None:
    output = DenoisingOutput(RunSettings(out=tmp_path / "run.ome.zarr", window=1), Halving())
    heard = _listen(output.events)
    sim_core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 6}), output=output)
    summary = output.finish()

    heard["started"].assert_called_once_with(output.pipeline)
    assert isinstance(output.pipeline, LivePipeline)
    assert sorted(_frames(heard["frameAcquired"].call_args_list)) == list(range(6))
    for call in heard["frameAcquired"].call_args_list:
        raw, info = call.args
        assert raw.shape == (64, 64) and isinstance(info, FrameInfo)
    assert _frames(heard["frameDenoised"].call_args_list) == list(range(6))
    for call in heard["frameDenoised"].call_args_list:
        raw, denoised, info = call.args
        np.testing.assert_array_equal(denoised, raw.astype(np.float32) / 2)
        assert info.index == FrameIndex(info.seq, 0, 0, 0)
    heard["finished"].assert_called_once_with(summary)
    assert isinstance(summary, RunSummary) and summary.acquired == summary.denoised == 6
    for name in ("frameSkipped", "frameLost", "failed"):
        heard[name].assert_not_called()


def _pipeline(tmp_path: Path, capacity: int, policy: Policy) -> LivePipeline:
    store = RunStore(tmp_path / "run.ome.zarr", RunLayout(timepoints=4), {})
    return LivePipeline(Halving(), store, FrameRing(capacity), WindowAssembler(1, "t"), policy)


def _put(pipeline: LivePipeline, frames: int) -> None:
    for t in range(frames):
        pipeline.put_frame(np.full((16, 16), t + 1, np.uint16), FrameIndex(t, 0, 0, 0))


def test_live_policy_names_each_frame_it_skips(tmp_path: Path) -> None:
    """Four frames wait when the worker starts: the newest is denoised, the three before skipped."""
    pipeline = _pipeline(tmp_path, capacity=8, policy=Policy.live)
    heard = _listen(pipeline.events)
    _put(pipeline, 4)
    pipeline.start()
    summary = pipeline.finish()

    assert _frames(heard["frameSkipped"].call_args_list) == [0, 1, 2]
    assert _frames(heard["frameDenoised"].call_args_list) == [3]
    assert summary.skipped == 3 and summary.error is None
    heard["finished"].assert_called_once_with(summary)


def test_frames_that_left_the_ring_are_lost_and_fail_the_run(tmp_path: Path) -> None:
    """A ring of two frames holds only the last two of four: the writer reports the first two lost,
    and the run fails once, naming its store."""
    pipeline = _pipeline(tmp_path, capacity=2, policy=Policy.record)
    heard = _listen(pipeline.events)
    _put(pipeline, 4)
    pipeline.start()
    summary = pipeline.finish()

    assert _frames(heard["frameLost"].call_args_list) == [0, 1]
    assert _frames(heard["frameAcquired"].call_args_list) == [2, 3]
    heard["failed"].assert_called_once()
    (error,) = heard["failed"].call_args.args
    assert isinstance(error, RunError) and "left the ring" in str(error)
    assert error.path == tmp_path / "run.ome.zarr" and summary.error == str(error)
    assert summary.dropped == 2


@pytest.fixture(scope="module")
def torch_engine(small_model_path: Path):
    from livedenoise.inference import load_engine

    return load_engine(small_model_path, "torch")


def test_an_acquisition_relays_each_run_and_says_why_it_failed(
    sim_core, small_model_path: Path, torch_engine, tmp_path: Path
) -> None:
    """A run that a device ends: every frame it acquired is announced, then the failure (already
    in ``last_error``), then the summary (already in ``last_summary``)."""
    apply_assignments(sim_core, ["Detector.FailAfterFrames=3"])
    request = RunRequest(model=small_model_path, backend="torch", window=1, out_dir=tmp_path)
    acquisition = Acquisition(sim_core, request, torch_engine)
    heard = _listen(acquisition.events)
    heard["failed"].side_effect = lambda error: seen.append(acquisition.last_error)
    heard["finished"].side_effect = lambda summary: seen.append(acquisition.last_summary)
    seen: list[object] = []
    summary = acquisition.run_sequence(useq.MDASequence(time_plan={"interval": 0, "loops": 8}))

    heard["started"].assert_called_once_with(acquisition.pipeline)
    assert _frames(heard["frameAcquired"].call_args_list) == [0, 1, 2]
    heard["failed"].assert_called_once()
    (error,) = heard["failed"].call_args.args
    assert isinstance(error, RunError) and "PMT stopped responding" in str(error)
    assert error.path == acquisition.last_out
    heard["finished"].assert_called_once_with(summary)
    assert seen == [str(error), summary]
