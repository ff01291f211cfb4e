"""The simulated laser-scanning microscope, driven only through the Micro-Manager API."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import numpy as np
import pytest
import useq
from pymmcore_plus import CMMCorePlus

from livedenoise.acquisition import CHANNELS, DETECTOR, LASER, SIMULATED_CFG, make_core

CELL = (22.5, 22.5)  # a cell of the seed-0 world (another lies 45 um further in y)
SMALL = {"FrameWidth": 64, "FrameHeight": 64, "TimeScale": 0, "Photobleaching": "Off"}


def configure(core: CMMCorePlus, **props: object) -> None:
    for name, value in props.items():
        core.setProperty(DETECTOR, name, value)


def snap(core: CMMCorePlus) -> np.ndarray:
    core.snapImage()
    return core.getImage().astype(np.float64)


def corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


@pytest.fixture
def core() -> CMMCorePlus:
    """The simulated microscope with small frames, no waiting and no bleaching, over a cell."""
    core = make_core()
    configure(core, **SMALL)
    core.setXYPosition(*CELL)
    return core


def test_variance_is_gain_times_mean_plus_read_noise_squared(core: CMMCorePlus) -> None:
    """Across repeated frames of a static field: var = F * gain * (mean - offset) + read^2 (+1/12
    from rounding), with F the excess noise factor of the detector gain (1: a noiseless gain)."""
    gain, read, offset = 10.0, 4.0, 100.0
    for excess in (1.0, 1.5):
        configure(
            core,
            Gain=gain,
            ExcessNoiseFactor=excess,
            ReadNoise_ADU=read,
            Offset=offset,
            BitDepth=16,
        )
        stack = np.stack([snap(core) for _ in range(60)])
        assert stack.max() < 2**16 - 1 and stack.min() > 0  # nothing clipped
        mean, var = stack.mean(0), stack.var(0, ddof=1)
        predicted = excess * gain * (mean - offset) + read**2 + 1 / 12
        bins = np.quantile(mean, [0, 0.5, 0.8, 0.95, 1])
        assert mean.max() - offset > 20 * gain  # the brightest pixels collect > 20 photons
        for low, high in itertools.pairwise(bins):
            sel = (mean >= low) & (mean <= high)
            assert var[sel].mean() == pytest.approx(predicted[sel].mean(), rel=0.10)
    core.setShutterOpen(False)  # no light: the read noise alone
    dark = np.stack([snap(core) for _ in range(20)])
    assert dark.var(0, ddof=1).mean() == pytest.approx(read**2 + 1 / 12, rel=0.10)


def test_line_averaging_divides_noise_variance_by_the_number_of_passes(core: CMMCorePlus) -> None:
    noise, signal = {}, {}
    for passes in (1, 4, 16):
        configure(core, LineAverage=passes)
        stack = np.stack([snap(core) for _ in range(40)])
        noise[passes] = stack.var(0, ddof=1).mean() - 1 / 12  # less the rounding noise
        signal[passes] = stack.mean()
    for passes in (4, 16):
        assert noise[1] / noise[passes] == pytest.approx(passes, rel=0.10)
        assert signal[passes] == pytest.approx(signal[1], rel=0.01)  # averaging keeps the signal


def test_frame_time_is_lines_times_averages_times_line_period_and_is_spent(
    core: CMMCorePlus,
) -> None:
    configure(core, FrameHeight=16, LinePeriod_us=1000, Flyback_ms=2)
    core.snapImage()  # render this field once, so that only the scan is timed below
    configure(core, TimeScale=1)
    for passes in (1, 8):
        configure(core, LineAverage=passes)
        expected_ms = 16 * passes * 1.0 + 2
        assert core.getExposure() == pytest.approx(expected_ms)
        start = time.perf_counter()
        core.snapImage()
        took_ms = (time.perf_counter() - start) * 1000
        assert expected_ms * 0.95 <= took_ms <= expected_ms + 100
    configure(core, Bidirectional="On", LineAverage=64)  # lines recorded both ways: half the time
    expected_ms = 16 * 64 * 0.5 + 2
    assert core.getExposure() == pytest.approx(expected_ms)
    configure(core, TimeScale=0.1)  # tests and demos may run faster than the microscope
    start = time.perf_counter()
    core.snapImage()
    took_ms = (time.perf_counter() - start) * 1000
    assert 0.095 * expected_ms <= took_ms < 0.3 * expected_ms


def test_frame_time_and_line_average_are_in_the_frame_metadata(core: CMMCorePlus) -> None:
    configure(core, LineAverage=4)
    core.startSequenceAcquisition(2, 0, True)
    while core.isSequenceRunning():
        time.sleep(0.005)
    _, meta = core.popNextImageAndMD()
    assert float(meta["FrameTime_ms"]) == pytest.approx(64 * 4 * 0.125 + 1)
    assert meta["LineAverage"] == "4"


def test_setting_the_exposure_picks_the_nearest_line_average(core: CMMCorePlus) -> None:
    core.setExposure(70)  # 64 lines x 0.125 ms = 8 ms per pass, + 1 ms flyback
    assert core.getProperty(DETECTOR, "LineAverage") == 9
    assert core.getExposure() == pytest.approx(73)


def test_adjacent_grid_tiles_agree_where_they_overlap(core: CMMCorePlus) -> None:
    configure(core, LineAverage=64)
    grid = useq.GridRowsColumns(rows=1, columns=2, overlap=25)  # 16 of 64 columns shared
    tiles: dict[int, list[np.ndarray]] = {0: [], 1: []}
    core.mda.events.frameReady.connect(lambda img, ev, _: tiles[ev.index["g"]].append(img))
    seq = useq.MDASequence(
        stage_positions=[CELL], grid_plan=grid, time_plan={"interval": 0, "loops": 4}
    )
    core.mda.run(seq)
    left, right = (np.mean(tiles[g], axis=0) - 100 for g in (0, 1))
    assert left[:, 48:].mean() > 20  # there is structure in the overlap
    aligned = np.abs(left[:, 48:] - right[:, :16]).mean()
    assert aligned < 0.1 * left[:, 48:].mean()
    assert corr(left[:, 48:], right[:, :16]) > 0.95
    assert np.abs(left[:, 32:48] - right[:, :16]).mean() > 3 * aligned  # not just similar


def test_focus_changes_what_is_seen(core: CMMCorePlus) -> None:
    configure(core, LineAverage=16)
    first, again = snap(core), snap(core)
    core.setPosition(2.0)
    higher = snap(core)
    assert corr(first, again) > 0.95
    assert corr(first, higher) < 0.5


def test_the_same_seed_gives_the_same_frames() -> None:
    def frames(seed: int) -> list[np.ndarray]:
        core = make_core()
        configure(core, FrameWidth=64, FrameHeight=64, TimeScale=0, Seed=seed)
        core.setXYPosition(*CELL)
        return [snap(core) for _ in range(3)]

    first, second, other = frames(7), frames(7), frames(8)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], first[1])  # fresh noise in every frame
    assert not np.array_equal(first[0], other[0])


def test_out_of_range_values_are_refused_with_the_reason(core: CMMCorePlus) -> None:
    with pytest.raises(ValueError, match=r"'LineAverage': \(1, 64\)"):
        core.setProperty(DETECTOR, "LineAverage", 65)
    with pytest.raises(ValueError, match="whole number"):
        core.setProperty(DETECTOR, "LineAverage", 2.5)
    with pytest.raises(ValueError, match=r"Allowed values: \['8', '12', '16'\]"):
        core.setProperty(DETECTOR, "BitDepth", 10)
    with pytest.raises(ValueError, match="outside the stage travel"):
        core.setXYPosition(60_000, 0)
    assert core.getProperty(DETECTOR, "LineAverage") == 1
    assert core.getProperty(DETECTOR, "BitDepth") == 12
    core.setProperty(DETECTOR, "BitDepth", "8")  # text, as from a configuration file
    assert core.getImageBitDepth() == 8


def test_a_grid_z_stack_time_lapse_in_two_channels_gives_48_frames_with_metadata(
    core: CMMCorePlus,
) -> None:
    seq = useq.MDASequence(
        stage_positions=[CELL],
        time_plan={"interval": 0, "loops": 2},
        grid_plan=useq.GridRowsColumns(rows=2, columns=2, overlap=10),
        z_plan={"range": 2.0, "step": 1.0},
        channels=["DAPI", "FITC"],
        axis_order="tpgcz",
    )
    got: list[tuple[np.ndarray, useq.MDAEvent, dict]] = []
    core.mda.events.frameReady.connect(lambda img, ev, meta: got.append((img, ev, meta)))
    core.mda.run(seq)

    assert len(got) == 48
    seen = {(e.index["t"], e.index["g"], e.index["c"], e.index["z"]) for _, e, _ in got}
    assert seen == {
        (t, g, c, z) for t in range(2) for g in range(4) for c in range(2) for z in range(3)
    }
    for img, event, meta in got:
        assert img.shape == (64, 64)
        assert meta["exposure_ms"] == pytest.approx(64 * 0.125 + 1)
        assert meta["pixel_size_um"] == pytest.approx(0.2)
        laser = {(v["dev"], v["prop"]): v["val"] for v in meta["property_values"]}
        assert laser[(LASER, "Label")] == CHANNELS[event.channel.config]
        pos = meta["position"]
        assert (pos["x"], pos["y"], pos["z"]) == pytest.approx(
            (event.x_pos, event.y_pos, event.z_pos)
        )
    by_index = {(e.index["t"], e.index["g"], e.index["c"], e.index["z"]): img for img, e, _ in got}
    assert corr(by_index[0, 0, 0, 1], by_index[0, 0, 1, 1]) < 0.8  # the channels differ
    assert len({e.x_pos for _, e, _ in got}) == 2 and len({e.z_pos for _, e, _ in got}) == 3


def _tiles_in_two_channels(core: CMMCorePlus) -> list[np.ndarray]:
    """Downstream code as livedenoise writes it: Micro-Manager calls and an MDA, nothing else."""
    for name, value in SMALL.items():
        core.setProperty(DETECTOR, name, value)
    frames: list[np.ndarray] = []
    core.mda.events.frameReady.connect(lambda img, *_: frames.append(img.copy()))
    grid = useq.GridRowsColumns(rows=1, columns=2)
    core.mda.run(
        useq.MDASequence(stage_positions=[CELL], grid_plan=grid, channels=["TRITC", "Cy5"])
    )
    return frames


def test_a_core_from_the_configuration_file_runs_the_same_code_to_the_same_frames() -> None:
    from_code, from_file = make_core(), make_core(SIMULATED_CFG)
    a, b = _tiles_in_two_channels(from_code), _tiles_in_two_channels(from_file)
    assert len(a) == len(b) == 4
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_the_configuration_file_describes_the_same_microscope_as_make_core() -> None:
    def describe(core: CMMCorePlus) -> dict:
        props = {
            (dev, str(prop)): (
                core.getAllowedPropertyValues(dev, prop),
                core.hasPropertyLimits(dev, prop)
                and (core.getPropertyLowerLimit(dev, prop), core.getPropertyUpperLimit(dev, prop)),
            )
            for dev in core.getLoadedDevices()
            for prop in core.getDevicePropertyNames(dev)
        }
        presets = {
            (group, name): sorted(map(tuple, core.getConfigData(group, name)))
            for group in core.getAvailableConfigGroups()
            for name in core.getAvailableConfigs(group)
        }
        pixels = {
            name: (
                core.getPixelSizeUmByID(name),
                list(map(tuple, core.getPixelSizeConfigData(name))),
            )
            for name in core.getAvailablePixelSizeConfigs()
        }
        roles = (core.getCameraDevice(), core.getXYStageDevice(), core.getFocusDevice())
        state = (core.getShutterDevice(), core.getChannelGroup(), core.getAutoShutter())
        return {"props": props, "presets": presets, "pixels": pixels, "roles": roles + state}

    assert describe(make_core()) == describe(make_core(SIMULATED_CFG))


def test_zoom_changes_the_pixel_size_and_magnifies_the_same_sample(core: CMMCorePlus) -> None:
    configure(core, LineAverage=64)
    wide = snap(core)
    configure(core, Zoom=2)
    assert core.getPixelSizeUm() == pytest.approx(0.1)
    assert core.getCurrentPixelSizeConfig() == "Zoom2x"
    close = snap(core)
    binned = close.reshape(32, 2, 32, 2).mean(axis=(1, 3))
    assert corr(binned, wide[16:48, 16:48]) > 0.9
    core.setPixelSizeAffine("Zoom2x", [0.0, 0.1, 0.0, 0.1, 0.0, 0.0])  # a camera turned by 90 deg
    assert core.getPixelSizeAffine() == pytest.approx((0.0, 0.1, 0.0, 0.1, 0.0, 0.0))
    core.setPixelSizeConfig("Zoom4x")  # selecting the preset sets the zoom
    assert core.getProperty(DETECTOR, "Zoom") == 4
    assert core.getPixelSizeUm() == pytest.approx(0.05)


def test_a_roi_scans_fewer_lines_of_the_same_field(core: CMMCorePlus) -> None:
    configure(core, LineAverage=64)
    full = snap(core)
    core.setROI(16, 8, 32, 24)
    part = snap(core)
    assert part.shape == (24, 32)
    assert core.getExposure() == pytest.approx(24 * 64 * 0.125 + 1)
    assert corr(part, full[8:32, 16:48]) > 0.95
    core.clearROI()
    assert snap(core).shape == (64, 64)


def test_a_closed_shutter_gives_a_dark_frame(core: CMMCorePlus) -> None:
    lit = snap(core)
    core.setShutterOpen(False)
    dark = snap(core)
    assert dark.mean() == pytest.approx(100, abs=0.5)  # the offset
    assert dark.std() == pytest.approx(3, rel=0.1)  # the read noise
    assert lit.mean() > dark.mean() + 10


def test_scanning_bleaches_the_field_and_only_the_field() -> None:
    def core_at(y: float) -> CMMCorePlus:
        core = make_core()
        configure(core, **{**SMALL, "Photobleaching": "On", "LineAverage": 16})
        core.setXYPosition(CELL[0], y)
        return core

    scanned = core_at(CELL[1])
    first = snap(scanned).mean() - 100
    for _ in range(3):
        snap(scanned)
    fifth = snap(scanned).mean() - 100
    assert fifth < 0.8 * first
    scanned.setXYPosition(CELL[0], CELL[1] + 45)  # the next cell, never scanned
    neighbour = snap(scanned).mean() - 100
    assert neighbour == pytest.approx(snap(core_at(CELL[1] + 45)).mean() - 100, rel=0.03)


def test_sample_drift_moves_the_image_between_frames(core: CMMCorePlus) -> None:
    # 64 lines x 16 passes x 97.65625 us = 100 ms per frame: 1 um = 5 pixels of drift
    configure(core, LineAverage=16, LinePeriod_us=97.65625, Flyback_ms=0, DriftX_um_per_s=10)
    before, after = snap(core), snap(core)
    assert corr(after[:, 5:], before[:, :-5]) > 0.95
    assert corr(after, before) < corr(after[:, 5:], before[:, :-5]) - 0.1


def test_saturation_clips_at_the_bit_depth(core: CMMCorePlus) -> None:
    configure(core, BitDepth=8, Gain=200, LineAverage=4)
    core.snapImage()
    img = core.getImage()
    assert img.dtype == np.uint8
    assert img.max() == 255 and (img == 255).mean() > 0.01


def test_a_full_frame_is_fast_enough_for_live_imaging() -> None:
    core = make_core()
    configure(core, TimeScale=0)
    core.setXYPosition(*CELL)
    core.snapImage()  # renders and caches this plane
    times = []
    for _ in range(3):
        start = time.perf_counter()
        core.snapImage()
        times.append(time.perf_counter() - start)
    assert core.getImage().shape == (512, 512)
    assert sorted(times)[1] < 0.25


def test_a_script_using_a_core_exits_cleanly() -> None:
    code = "from livedenoise.acquisition import make_core\nmake_core().snapImage()\n"
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
