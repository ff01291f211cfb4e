"""One way to get a ready Micro-Manager core: the simulated microscope, or a configuration file.

Everything downstream talks to the returned core through the standard Micro-Manager API only
(snapImage/getImage, the MDA runner, properties, config groups), so it runs unchanged on the
simulator and on real hardware.
"""

from __future__ import annotations

import atexit
import logging
import uuid
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import pymmcore
from pymmcore_plus import CMMCorePlus, DeviceType
from pymmcore_plus.experimental.unicore import UniMMCore

from livedenoise.acquisition.detector import BASE_PIXEL_UM, ZOOMS, ScanningDetector
from livedenoise.acquisition.devices import (
    LASER_LINES,
    LaserLine,
    LaserShutter,
    SimXYStage,
    SimZStage,
)
from livedenoise.acquisition.rig import RIG
from livedenoise.errors import LivedenoiseError

if TYPE_CHECKING:
    from pymmcore import PixelSizeConfigName

DETECTOR = "Detector"
XY_STAGE = "XYStage"
Z_STAGE = "ZStage"
LASER = "LaserLine"
SHUTTER = "Shutter"
CHANNEL_GROUP = "Channel"
CHANNELS = {
    "DAPI": LASER_LINES[0],
    "FITC": LASER_LINES[1],
    "TRITC": LASER_LINES[2],
    "Cy5": LASER_LINES[3],
}
SIMULATED_CFG = Path(__file__).with_name("simulated.cfg")
AnyCore = TypeVar("AnyCore", bound=CMMCorePlus)
Affine = tuple[float, float, float, float, float, float]  # MMCore's pixel-size affine transform
_PY_LINE = "#py "  # UniMMCore's prefix for Python-device lines (comments to the C++ loader)


class PyDeviceCore(UniMMCore):
    """UniMMCore that also resolves pixel-size presets set on Python-device properties.

    UniMMCore (pymmcore-plus 0.18) leaves pixel-size presets to the C++ core, which cannot read
    Python devices, so a preset such as `Detector.Zoom = 2` would never be current. Here presets
    are matched against every device's current property values, as MMCore does for its own.
    """

    def getCurrentPixelSizeConfig(self, cached: bool = False) -> PixelSizeConfigName:
        def read(dev: str, prop: str) -> object:
            if cached:
                with suppress(KeyError, RuntimeError):  # not cached yet: ask the device
                    return self.getPropertyFromCache(dev, prop)
            return self.getProperty(dev, prop)

        for name in self.getAvailablePixelSizeConfigs():
            if all(_same(read(d, p), value) for d, p, value in self.getPixelSizeConfigData(name)):
                return name
        return cast("PixelSizeConfigName", "")  # none: a name only in pymmcore's type stubs

    def setPixelSizeConfig(self, resolutionID: str) -> None:
        for dev, prop, value in self.getPixelSizeConfigData(resolutionID):
            self.setProperty(dev, prop, value)

    def getPixelSizeUm(self, cached: bool = False) -> float:
        if not (name := self.getCurrentPixelSizeConfig(cached)):
            return 0.0
        return self.getPixelSizeUmByID(name) * self._binning() / self.getMagnificationFactor()

    def getPixelSizeAffine(self, cached: bool = False) -> Affine:
        if not (name := self.getCurrentPixelSizeConfig(cached)):
            return (0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        scale = self._binning() / self.getMagnificationFactor()
        a, b, c, d, e, f = (v * scale for v in self.getPixelSizeAffineByID(name))
        return a, b, c, d, e, f

    def _binning(self) -> float:
        camera = self.getCameraDevice()
        if camera and self.hasProperty(camera, "Binning"):
            return float(self.getProperty(camera, "Binning"))
        return 1.0


def _same(current: object, preset: str) -> bool:
    """Whether a property value equals a preset's text (numbers compare as numbers)."""
    try:
        return float(current) == float(preset)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(current) == preset


def make_core(config: str | Path | None = None) -> CMMCorePlus:
    """A ready Micro-Manager core.

    With no argument: the simulated laser-scanning microscope, on a rig of its own. With the path of
    a Micro-Manager configuration file: that configuration, through UniMMCore when it declares
    Python devices (`#py` lines, like `simulated.cfg` here) and through plain CMMCorePlus otherwise
    (real hardware, or Micro-Manager's demo configuration).

    Raises ``FileNotFoundError`` for a missing file and ``ConfigError`` for one that names adapters
    that are not installed, fails to load, or sets no camera.
    """
    if config is None:
        simulated = _new_core(PyDeviceCore)
        _load_simulated(simulated, rig=f"sim-{uuid.uuid4().hex[:12]}")
        return simulated
    path = Path(config).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no Micro-Manager configuration file at {path}")
    try:
        lines = [line.strip() for line in path.read_text().splitlines()]
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"{path}: cannot read it as a Micro-Manager configuration ({err})", path=path
        ) from None
    python_devices = any(line.startswith(_PY_LINE) for line in lines)
    core = _new_core(PyDeviceCore if python_devices else CMMCorePlus)
    _load_config(core, path, lines)
    return core


def _new_core(kind: type[AnyCore]) -> AnyCore:
    """A bare core, released at exit. pymmcore-plus' search for a Micro-Manager install is silenced:
    Python devices need none, and a configuration's missing adapters are said with what to do."""
    with _quiet_discovery():
        core = kind()
    _release_at_exit(core)
    return core


class ConfigError(LivedenoiseError, ValueError):
    """A Micro-Manager configuration file (``path``) that gives no usable microscope; the message
    says why."""


def _load_config(core: CMMCorePlus, path: Path, lines: list[str]) -> None:
    """Load ``path`` on ``core``, refusing in one line what would fail or leave no camera.

    On refusal every device is unloaded again (a process exiting with devices loaded can abort).
    """
    adapters = {
        line.split(",")[2].strip()
        for line in lines
        if line.count(",") >= 3 and line.startswith("Device,")
    }
    if missing := sorted(adapters - set(core.getDeviceAdapterNames())):
        raise ConfigError(_missing_adapters(core, path, missing), path=path)
    try:
        core.loadSystemConfiguration(str(path))
        _check_loaded(core, path)
    except (OSError, RuntimeError, ConfigError) as err:  # MMCore's errors are several lines each
        with suppress(Exception):
            core.unloadAllDevices()
        if isinstance(err, ConfigError):
            raise
        raise ConfigError(
            f"{path}: Micro-Manager could not load it: {' '.join(str(err).split())}", path=path
        ) from None


def _check_loaded(core: CMMCorePlus, path: Path) -> None:
    """Refuse a configuration that loaded no devices, or no camera to acquire with."""
    if not [device for device in core.getLoadedDevices() if device != "Core"]:
        raise ConfigError(
            f"{path} loads no devices: a configuration names them in Device,LABEL,ADAPTER,DEVICE "
            "lines (Micro-Manager's Hardware Configuration Wizard writes such a file)",
            path=path,
        )
    if not core.getCameraDevice():
        cameras = ", ".join(core.getLoadedDevicesOfType(DeviceType.Camera))
        which = f"one of its cameras ({cameras})" if cameras else "a camera device"
        raise ConfigError(
            f"{path} sets no camera: add the line Property,Core,Camera,LABEL naming {which}",
            path=path,
        )


def _missing_adapters(core: CMMCorePlus, path: Path, missing: list[str]) -> str:
    """Which adapters ``path`` names that are not installed, where Micro-Manager looked, what to do."""
    found = ", ".join(core.getDeviceAdapterNames()) or "none"
    looked = ", ".join(core.getDeviceAdapterSearchPaths()) or "nowhere"
    return (
        f"{path} needs the Micro-Manager device adapter(s) {', '.join(missing)}, not installed "
        f"(looked in {looked}; found: {found}). Get Micro-Manager's adapters with `mmcore install` "
        "(pymmcore-plus), or set MICROMANAGER_PATH to a Micro-Manager folder that has them; a "
        "vendor's adapter may come with its driver."
    )


def _load_simulated(core: PyDeviceCore, rig: str) -> None:
    """Load the simulated devices as `simulated.cfg` does (a test keeps the two in step)."""
    devices = {
        DETECTOR: ScanningDetector,
        XY_STAGE: SimXYStage,
        Z_STAGE: SimZStage,
        LASER: LaserLine,
        SHUTTER: LaserShutter,
    }
    for label, cls in devices.items():
        core.loadPyDevice(label, cls())
        core.setProperty(label, RIG, rig)
    core.initializeAllDevices()
    core.setCameraDevice(DETECTOR)
    core.setXYStageDevice(XY_STAGE)
    core.setFocusDevice(Z_STAGE)
    core.setShutterDevice(SHUTTER)
    core.setAutoShutter(False)
    for preset, line in CHANNELS.items():
        core.defineConfig(CHANNEL_GROUP, preset, LASER, "Label", line)
    core.setChannelGroup(CHANNEL_GROUP)
    for zoom in ZOOMS:
        core.definePixelSizeConfig(f"Zoom{zoom}x", DETECTOR, "Zoom", str(zoom))
        core.setPixelSizeUm(f"Zoom{zoom}x", BASE_PIXEL_UM / zoom)
    core.defineConfig("System", "Startup", LASER, "Label", CHANNELS["FITC"])
    core.setConfig("System", "Startup")
    core.waitForSystem()
    core.updateSystemStateCache()


@contextmanager
def _quiet_discovery() -> Iterator[None]:
    """Silence pymmcore-plus' logging while a core looks for a Micro-Manager install."""
    logger = logging.getLogger("pymmcore-plus")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _release_at_exit(core: CMMCorePlus) -> None:
    """Detach MMCore's callback to Python before the interpreter shuts down.

    A core still alive at exit is destroyed during interpreter finalisation, and MMCore calling back
    into Python then aborts the process ("FATAL: exception not rethrown"), failing scripts and CI runs.
    """
    ref = weakref.ref(core)

    def release() -> None:
        if (alive := ref()) is not None:
            pymmcore.CMMCore.registerCallback(alive, None)

    atexit.register(release)
