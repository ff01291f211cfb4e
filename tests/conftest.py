"""Shared fixtures: small saved models and their ONNX export, made once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from livedenoise.cli import app
from livedenoise.model import ModelCard, Normalization, build_model, preset, save_model

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
MM_ADAPTERS = SHARED_DATA.parent / "micromanager"  # Micro-Manager's DemoCamera + Utilities builds
MM_DEMO_CFG = MM_ADAPTERS / "MMConfig_demo.cfg"


@pytest.fixture(scope="session")
def small_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The `small` preset, untrained, saved as safetensors + card (8-bit normalisation)."""
    path = tmp_path_factory.mktemp("models") / "small"
    cfg = preset("small")
    card = ModelCard(name="small", config=cfg, normalization=Normalization(scale=255.0))
    save_model(build_model(cfg, seed=1), card, path)
    return path


@pytest.fixture(scope="session")
def small_onnx_path(small_model_path: Path) -> Path:
    """The small model exported through the command line, as a user would."""
    out = small_model_path.with_suffix(".onnx")
    result = CliRunner().invoke(app, ["export", str(small_model_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="session")
def identity_model_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real CNNT whose post-conv is zero: through the long residual skip it returns its input."""
    import torch

    path = tmp_path_factory.mktemp("models") / "identity"
    cfg = preset("small")
    model = build_model(cfg, seed=2)
    with torch.no_grad():
        for p in model.post.parameters():
            p.zero_()
    card = ModelCard(
        name="identity", config=cfg, normalization=Normalization(offset=100, scale=400)
    )
    save_model(model, card, path)
    return path


@pytest.fixture
def mm_adapters(monkeypatch: pytest.MonkeyPatch) -> Path:
    """Micro-Manager's own DemoCamera and Utilities adapters on the adapter search path
    (``MICROMANAGER_PATH``, read by pymmcore-plus) for this test and its subprocesses."""
    assert MM_DEMO_CFG.is_file(), f"Micro-Manager's demo adapters are missing: {MM_ADAPTERS}"
    monkeypatch.setenv("MICROMANAGER_PATH", str(MM_ADAPTERS))
    return MM_ADAPTERS


@pytest.fixture
def demo_core(mm_adapters: Path):
    """A pymmcore-plus core with Micro-Manager's demo configuration (DemoCamera devices).

    Devices are unloaded after the test: a process that exits with them loaded can abort.
    """
    from pymmcore_plus import CMMCorePlus

    core = CMMCorePlus()
    core.setDeviceAdapterSearchPaths([str(mm_adapters)])
    core.loadSystemConfiguration(str(MM_DEMO_CFG))
    yield core
    core.unloadAllDevices()


@pytest.fixture
def sim_core():
    """The simulated microscope with small frames and no waiting, for fast runs."""
    from livedenoise.acquisition import make_core
    from livedenoise.pipeline.setup import apply_assignments

    core = make_core()
    apply_assignments(
        core,
        [
            "Detector.FrameWidth=64",
            "Detector.FrameHeight=64",
            "Detector.TimeScale=0",
            "Detector.Photobleaching=Off",
        ],
    )
    return core


@pytest.fixture
def recording(sim_core, small_model_path: Path, tmp_path: Path) -> Path:
    """Two stage positions, three time points, two channels on the simulated microscope."""
    import useq

    from livedenoise.app import denoising_output

    sequence = useq.MDASequence(
        stage_positions=[(0.0, 0.0, 0.0), (30.0, -20.0, 0.0)],
        channels=["FITC", "DAPI"],
        time_plan={"interval": 0, "loops": 3},
    )
    output = denoising_output(tmp_path / "run.ome.zarr", small_model_path, backend="torch")
    sim_core.mda.run(sequence, output=output)
    assert output.finish().error is None
    return tmp_path / "run.ome.zarr"


class LivedenoiseProcess:
    """A real ``livedenoise`` command whose output is read as it comes, to interrupt it mid-work."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        import os
        import signal
        import subprocess
        import sys
        import threading

        # a background shell starts tests with SIGINT ignored, and the command would inherit that;
        # a handler of ours is reset to the default in the command, which Ctrl-C then reaches
        if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        exe = Path(sys.executable).with_name("livedenoise")
        self.proc = subprocess.Popen(
            [str(exe), *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def wait_for(self, marker: str, timeout: float = 300) -> None:
        """Until a line of output contains ``marker`` (the command reached that point)."""
        import time

        deadline = time.monotonic() + timeout
        while not any(marker in line for line in self.lines):
            assert self.proc.poll() is None, "".join(self.lines)
            assert time.monotonic() < deadline, f"no {marker!r} in:\n" + "".join(self.lines)
            time.sleep(0.1)

    def interrupt(self) -> None:
        import signal

        self.proc.send_signal(signal.SIGINT)

    def finish(self, timeout: float = 300) -> tuple[int, str]:
        code = self.proc.wait(timeout)
        self._reader.join(10)
        return code, "".join(self.lines)
