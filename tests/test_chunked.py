"""Chunked denoising on Dask: the same output as one process, resumable after a kill, memory bounded by
the block, on a local cluster of worker processes and on a separately started scheduler and workers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest.mock import Mock, call

import numpy as np
import pytest
import zarr
from conftest import LivedenoiseProcess
from typer.testing import CliRunner

from livedenoise.app.chunked import PROGRESS, ctrl_c_held, denoise_chunked
from livedenoise.app.denoising import DenoiseError, denoise_file
from livedenoise.cli import app
from livedenoise.events import Events, Progress
from livedenoise.imageio import Image, read_image, write_image
from livedenoise.inference import InputError
from livedenoise.model import CNNTConfig, ModelCard, Normalization, build_model, save_model
from livedenoise.storage import open_run

pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def cluster():
    """A local Dask cluster of 2 worker processes, one thread each, for the whole module."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local:
        yield local


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A minimal CNNT (random weights, percentile normalisation): fast enough for large inputs."""
    path = tmp_path_factory.mktemp("models") / "tiny"
    cfg = CNNTConfig(
        stem_channels=4, block_channels=(4, 4, 4), cells_per_block=1, heads=1, mixer_ratio=1
    )
    card = ModelCard(name="tiny", config=cfg, normalization=Normalization(method="percentile"))
    save_model(build_model(cfg, seed=3), card, path)
    return path


def noisy(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Fluorescence-like frames: a bright disc on a background, Poisson noise, uint16."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[-2], : shape[-1]]
    disc = 200.0 * (((y - shape[-2] / 2) ** 2 + (x - shape[-1] / 3) ** 2) < (shape[-1] / 4) ** 2)
    return rng.poisson(50 + disc, shape).astype(np.uint16)


def chunked(cluster, model: Path, input: Path, output: Path, **options: object):
    """``denoise_chunked`` on the test cluster, on ONNX Runtime as ``single`` runs."""
    options = {"backend": "onnxruntime", "scheduler": cluster.scheduler_address, **options}
    return denoise_chunked(model, input, output, **options)  # type: ignore[arg-type]


def single(model: Path, input: Path, tmp_path: Path, **options: object) -> Path:
    out = tmp_path / "single.ome.zarr"
    denoise_file(model, input, out, backend="onnxruntime", window=4, **options)  # type: ignore[arg-type]
    return out


def test_time_series_equals_the_single_process_output(
    cluster, small_model_path: Path, tmp_path: Path
) -> None:
    source = Image(
        noisy((11, 2, 48, 40)),
        "TCYX",
        scale={"T": 2.0, "Y": 0.3, "X": 0.3},
        units={"T": "second", "Y": "micrometer", "X": "micrometer"},
        channels=["GFP", "mCherry"],
    )
    write_image(tmp_path / "in.ome.zarr", source)
    events = Events()
    progress = Mock()
    events.progress.connect(progress)
    result = chunked(
        cluster,
        small_model_path,
        tmp_path / "in.ome.zarr",
        tmp_path / "dask.ome.zarr",
        window=4,
        float32=True,
        block_frames=3,  # blocks of 3 frames with windows of 4: every block reads a halo
        events=events,
    )
    assert result.blocks == result.computed == 2 * 4  # per channel (a 1-channel model), 4 blocks
    assert progress.call_args_list[-1] == call(Progress(8, 8, "blocks"))
    expected = read_image(
        single(small_model_path, tmp_path / "in.ome.zarr", tmp_path, float32=True)
    )
    got = read_image(tmp_path / "dask.ome.zarr")
    np.testing.assert_array_equal(got.data, expected.data)
    assert got.data.dtype == np.float32 and got.axes == "TCYX"
    assert got.scale == source.scale and got.units == source.units
    assert got.channels == ["GFP", "mCherry"]
    assert not np.array_equal(got.data, source.data)  # it did denoise


def test_z_stack_keeps_the_input_dtype_and_equals_the_single_process_output(
    cluster, small_model_path: Path, tmp_path: Path
) -> None:
    write_image(tmp_path / "in.ome.zarr", Image(noisy((9, 40, 40), seed=1), "ZYX"))
    chunked(
        cluster,
        small_model_path,
        tmp_path / "in.ome.zarr",
        tmp_path / "dask.ome.zarr",
        window=4,
        block_frames=2,
    )
    expected = read_image(single(small_model_path, tmp_path / "in.ome.zarr", tmp_path))
    got = read_image(tmp_path / "dask.ome.zarr")
    assert got.data.dtype == np.uint16 and got.axes == "ZYX"
    np.testing.assert_array_equal(got.data, expected.data)


def test_run_store_of_two_positions_equals_the_single_process_run_store(
    cluster, recording: Path, small_model_path: Path, tmp_path: Path
) -> None:
    result = chunked(
        cluster,
        small_model_path,
        recording,
        tmp_path / "dask.ome.zarr",
        window=4,
        block_frames=2,
    )
    assert result.computed == result.blocks
    expected = open_run(single(small_model_path, recording, tmp_path))
    got, source = open_run(tmp_path / "dask.ome.zarr"), open_run(recording)
    assert len(got.raw) == len(got.denoised) == 2
    for p in range(2):
        np.testing.assert_array_equal(np.asarray(got.raw[p]), np.asarray(source.raw[p]))
        np.testing.assert_array_equal(np.asarray(got.denoised[p]), np.asarray(expected.denoised[p]))
        image = read_image(tmp_path / "dask.ome.zarr", f"denoised/p{p}")
        assert image.translation == read_image(recording, f"raw/p{p}").translation  # tile in place
    assert got.attrs["complete"] and got.attrs["denoised_from"] == str(recording.resolve())
    assert got.attrs["window"] == {"size": 4, "axis": "t"}
    np.testing.assert_array_equal(got.timing["acquired_s"], source.timing["acquired_s"])


def test_a_failing_block_stops_the_run_and_is_recorded(
    cluster, small_model_path: Path, tmp_path: Path
) -> None:
    frames = noisy((8, 32, 32)).astype(np.float32)
    frames[6, 3, 3] = np.nan
    write_image(tmp_path / "in.ome.zarr", Image(frames, "TYX"))
    out = tmp_path / "dask.ome.zarr"
    with pytest.raises(
        InputError, match=r"frames \[6\] \(along T; array 0 of the input\) contain NaN"
    ):
        chunked(
            cluster,
            small_model_path,
            tmp_path / "in.ome.zarr",
            out,
            window=1,
            block_frames=4,
        )
    progress = zarr.open_group(out / "progress", mode="r").attrs
    assert "NaN" in progress["error"] and not progress["complete"]


def test_worker_memory_is_bounded_by_the_block_not_the_input(
    cluster, tiny_model: Path, tmp_path: Path
) -> None:
    from livedenoise.imageio import create_zarr

    side = 128

    def run(name: str, frames: int) -> dict[str, int]:
        like = Image(np.empty((frames, side, side), np.uint16), "TYX")  # shape only: not written
        create_zarr(tmp_path / f"{name}.ome.zarr", like, np.dtype(np.uint16), (0, 1))
        array = zarr.open_array(tmp_path / f"{name}.ome.zarr" / "0", mode="r+")
        for start in range(0, frames, 256):  # written in parts: the test never holds it whole
            array[start : start + 256] = noisy((min(256, frames - start), side, side), seed=start)
        result = chunked(
            cluster,
            tiny_model,
            tmp_path / f"{name}.ome.zarr",
            tmp_path / f"{name}-out.ome.zarr",
            window=1,  # memory is what is measured here; windows cost time, not memory
            block_frames=8,
        )
        return result.peak_rss

    warm = run("warm", 32)  # engines loaded on the workers that ran a block
    block = 8 * side * side * 4  # a block as float32
    allowance = 16 * block + (24 << 20)  # copies along the way, plus allocator slack
    frames = 2 * allowance // (side * side * 2) + 64
    assert frames * side * side * 2 > 2 * allowance  # more than 2 workers may grow by together
    peaks = run("large", frames)
    for worker, peak in peaks.items():
        assert peak <= max(warm.values()) + allowance, (worker, peak, warm)


def test_killed_run_resumes_without_recomputing_finished_blocks(
    tiny_model: Path, tmp_path: Path
) -> None:
    import psutil

    write_image(tmp_path / "in.ome.zarr", Image(noisy((200, 128, 128), seed=4), "TYX"))
    out = tmp_path / "dask.ome.zarr"
    args = [str(tiny_model), str(tmp_path / "in.ome.zarr"), str(out)]
    options = ["--workers", "2", "--block-frames", "2", "--backend", "auto", "-t", "4"]
    run = LivedenoiseProcess("denoise", *args, *options)
    deadline = time.monotonic() + 300
    done = 0
    while done < 3:  # some blocks finished, most to do
        assert run.proc.poll() is None and time.monotonic() < deadline, "".join(run.lines)
        time.sleep(0.05)
        if (out / PROGRESS / "zarr.json").is_file():
            done = int(np.nansum(zarr.open_array(out / PROGRESS, mode="r")[:, 0]))
    workers = psutil.Process(run.proc.pid).children(recursive=True)
    run.proc.send_signal(signal.SIGKILL)  # the client dies; its workers follow on their own
    run.finish()
    _, alive = psutil.wait_procs(workers, timeout=60)
    assert not alive
    rows = np.asarray(zarr.open_array(out / PROGRESS, mode="r"))
    finished = [int(r) for r in np.flatnonzero(rows[:, 0] == 1.0)]
    assert 3 <= len(finished) < 100
    # blocks of 2 frames in order: block r wrote frames 2r and 2r + 1, one chunk file each
    chunks = [out / "0" / "c" / str(t) / "0" / "0" for r in finished for t in (2 * r, 2 * r + 1)]
    written = {path: path.stat().st_mtime_ns for path in chunks}

    result = runner.invoke(app, ["denoise", *args, *options], terminal_width=200)
    text = " ".join(result.output.split())
    assert result.exit_code == 0, text
    assert f"resumed: {len(finished)} block(s) were done before" in text
    assert "(the backend this run began with; auto was asked for)" in text
    assert f"{100 - len(finished)} computed now" in text
    assert {path: path.stat().st_mtime_ns for path in chunks} == written  # not rewritten
    expected = read_image(single(tiny_model, tmp_path / "in.ome.zarr", tmp_path))
    # auto picks torch or ONNX Runtime by timing on a busy machine; they round a few pixels apart
    np.testing.assert_allclose(read_image(out).data, expected.data, rtol=0, atol=1)
    again = runner.invoke(app, ["denoise", *args, *options], terminal_width=200)
    text = " ".join(again.output.split())
    assert again.exit_code == 0 and "was already complete: nothing to do" in text, text
    assert "Dask" not in text  # a finished output starts no cluster


def test_scheduler_address_runs_on_separately_started_scheduler_and_workers(
    small_model_path: Path, tmp_path: Path
) -> None:
    write_image(tmp_path / "in.ome.zarr", Image(noisy((7, 40, 40), seed=5), "TYX"))
    bin_dir = Path(sys.executable).parent
    file = tmp_path / "scheduler.json"
    scheduler = subprocess.Popen(
        [str(bin_dir / "dask"), "scheduler", "--scheduler-file", str(file), "--port", "0"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    workers = None
    try:
        deadline = time.monotonic() + 120
        while not file.is_file():
            assert time.monotonic() < deadline and scheduler.poll() is None
            time.sleep(0.2)
        worker_options = ("--nworkers", "2", "--nthreads", "1", "--no-dashboard")
        workers = subprocess.Popen(
            [*(str(bin_dir / "dask"), "worker", "--scheduler-file", str(file)), *worker_options],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        from distributed import Client

        address = json.loads(file.read_text())["address"]
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        result = runner.invoke(
            app,
            [
                *("denoise", str(small_model_path), str(tmp_path / "in.ome.zarr")),
                *(str(tmp_path / "dask.ome.zarr"), "--scheduler", address),
                *("--backend", "onnxruntime", "-t", "4", "--block-frames", "3"),
            ],
            terminal_width=200,
        )
        assert result.exit_code == 0, result.output
        assert f"Dask scheduler {address}: 2 worker(s)" in " ".join(result.output.split())
    finally:
        for process in (workers, scheduler):
            if process is not None:
                process.terminate()
                process.wait(30)
    expected = read_image(single(small_model_path, tmp_path / "in.ome.zarr", tmp_path))
    np.testing.assert_array_equal(read_image(tmp_path / "dask.ome.zarr").data, expected.data)


@pytest.mark.parametrize(
    ("input", "output", "message"),
    [
        ("in.tif", "out.ome.zarr", "reads and writes OME-Zarr"),
        ("in.ome.zarr", "out.tif", "reads and writes OME-Zarr"),
        ("missing.ome.zarr", "out.ome.zarr", "no such file"),
        ("in.ome.zarr", "in.ome.zarr", "OUTPUT is the INPUT"),
    ],
)
def test_inputs_the_chunked_path_cannot_take_are_refused_before_any_work(
    small_model_path: Path, tmp_path: Path, input: str, output: str, message: str
) -> None:
    write_image(tmp_path / "in.ome.zarr", Image(noisy((4, 32, 32)), "TYX"))
    write_image(tmp_path / "in.tif", Image(noisy((4, 32, 32)), "TYX"))
    with pytest.raises((DenoiseError, OSError, ValueError), match=message):
        denoise_chunked(small_model_path, tmp_path / input, tmp_path / output, scheduler="none")


def test_output_of_another_run_is_neither_resumed_nor_replaced_without_overwrite(
    cluster, small_model_path: Path, identity_model_path: Path, tmp_path: Path
) -> None:
    write_image(tmp_path / "in.ome.zarr", Image(noisy((6, 32, 32)), "TYX"))
    options = {"backend": "onnxruntime", "scheduler": cluster.scheduler_address}
    denoise_chunked(small_model_path, tmp_path / "in.ome.zarr", tmp_path / "o.ome.zarr", **options)
    with pytest.raises(
        DenoiseError, match=r"a finished chunked run made with window 8 \(now 2\)"
    ) as finished:
        denoise_chunked(
            small_model_path, tmp_path / "in.ome.zarr", tmp_path / "o.ome.zarr", window=2, **options
        )
    with pytest.raises(DenoiseError, match=r"model 'small' \(now 'identity'; the weights differ\)"):
        denoise_chunked(
            identity_model_path, tmp_path / "in.ome.zarr", tmp_path / "o.ome.zarr", **options
        )
    write_image(tmp_path / "plain.ome.zarr", Image(noisy((6, 32, 32)), "TYX"))
    assert finished.value.option == "overwrite"  # the CLI names it as --overwrite
    with pytest.raises(DenoiseError, match=r"plain\.ome\.zarr exists") as exists:
        denoise_chunked(
            small_model_path, tmp_path / "in.ome.zarr", tmp_path / "plain.ome.zarr", **options
        )
    assert exists.value.option == "overwrite"
    result = denoise_chunked(
        small_model_path,
        tmp_path / "in.ome.zarr",
        tmp_path / "o.ome.zarr",
        window=2,
        overwrite=True,
        **options,
    )
    assert result.computed == result.blocks == 1


def test_overwrite_keeps_the_old_output_when_the_run_cannot_start(
    cluster, small_model_path: Path, tmp_path: Path
) -> None:
    from livedenoise.inference import BackendError

    write_image(tmp_path / "in.ome.zarr", Image(noisy((4, 32, 32)), "TYX"))
    write_image(tmp_path / "old.ome.zarr", Image(noisy((2, 32, 32)), "TYX"))
    with pytest.raises(BackendError):  # no GPU on the workers
        denoise_chunked(
            small_model_path,
            tmp_path / "in.ome.zarr",
            tmp_path / "old.ome.zarr",
            backend="tensorrt",
            overwrite=True,
            scheduler=cluster.scheduler_address,
        )
    assert read_image(tmp_path / "old.ome.zarr").data.shape == (2, 32, 32)


def test_time_lapse_of_z_stacks_is_denoised_per_z_plane(
    cluster, small_model_path: Path, tmp_path: Path
) -> None:
    data = noisy((5, 3, 32, 32), seed=6)  # t, z, y, x
    write_image(tmp_path / "in.ome.zarr", Image(data, "TZYX"))
    chunked(
        cluster,
        small_model_path,
        tmp_path / "in.ome.zarr",
        tmp_path / "dask.ome.zarr",
        window=4,
        float32=True,
    )
    got = read_image(tmp_path / "dask.ome.zarr")
    assert got.axes == "TZYX"
    write_image(tmp_path / "z1.ome.zarr", Image(data[:, 1], "TYX"))  # one z-plane's time series
    plane = read_image(single(small_model_path, tmp_path / "z1.ome.zarr", tmp_path, float32=True))
    np.testing.assert_array_equal(got.data[:, 1], plane.data)


def test_ctrl_c_while_the_cluster_starts_stops_the_run_once_it_is_up() -> None:
    """A cluster stopped half-started cannot be closed (Dask's exit hook prints a traceback)."""
    finished = []
    with pytest.raises(KeyboardInterrupt), ctrl_c_held():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)  # the signal arrives here, and must not stop the block
        finished.append(True)
    assert finished == [True]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # Ctrl-C works again
