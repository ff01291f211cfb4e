"""The calibration profile: what was measured, what was chosen, and applying it to a core.

A profile is a JSON file in ``calibration/NAME/`` next to its plot and report. The directory is written
whole or not at all: everything goes into a hidden temporary directory beside it, which is renamed into
place only once complete, so an interrupted calibration never leaves a half-written profile (and a
previous profile of the same name survives until the new one is ready).
"""

from __future__ import annotations

import builtins
import shutil
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, Field, ValidationError
from pymmcore_plus import CMMCorePlus

from livedenoise.calibration.analysis import Measurement, Scores
from livedenoise.calibration.breaking import Tolerance, Verdict
from livedenoise.calibration.choose import set_number
from livedenoise.calibration.errors import CalibrationError
from livedenoise.model import load_card

FORMAT: Final = "livedenoise-calibration/2"
PROFILE = "profile.json"


class Setting(BaseModel):
    """A value of the averaging control and what it means."""

    value: float
    text: str  # as written to the device
    averages: float  # in frames recorded at the fastest value
    frame_ms: float | None = None  # as the camera reports it; None offline without a frame time


class FieldResult(BaseModel):
    """One field's repeats, measurement and own verdict."""

    source: str  # "camera Detector" or "stack NAME.tif"
    field: dict[str, str]  # where: stage position, channel, file...
    measurement: Measurement
    verdict: Verdict

    @property
    def name(self) -> str:
        return (
            f"{self.source} at {self.field['xy_um']} um" if "xy_um" in self.field else self.source
        )


class Expected(BaseModel):
    """The quality to expect at the chosen setting, as measured over every field's crops."""

    averages: int  # where it was measured: the chosen setting's rung, or the rung below it
    denoised: bool  # False: the raw reference protocol (no benefit)
    scores: Scores
    vs_reference: Scores | None  # denoised minus the raw reference protocol, paired per crop


class Profile(BaseModel):
    """Everything a calibration found; ``chosen`` is what ``apply_profile`` sets.

    ``measurement`` pools every field's crops; ``verdict`` holds on every field; ``fields`` has each
    field's own measurement and verdict.
    """

    format: Literal["livedenoise-calibration/2"] = FORMAT
    created: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    model: str
    model_name: str
    model_sha256: str
    device: str | None  # None: calibrated offline from recorded stacks
    property: str
    fastest: Setting  # where the repeats were recorded: one average
    repeats: int  # per field
    tolerance: Tolerance
    margin: float
    fields: list[FieldResult]
    measurement: Measurement
    verdict: Verdict
    chosen: Setting
    reference: Setting
    expected: Expected
    time_saved: float  # fraction of the reference protocol's frame time saved by the chosen setting
    planned_frames: int | None = None  # frames of the user's planned acquisition
    notes: list[str] = Field(default_factory=list)
    settings: dict[str, str] | None = Field(
        None,
        description="the camera settings it was measured at (``device_settings``); None offline, "
        "and in profiles written before they were recorded",
    )

    @builtins.property  # the field ``property`` hides the builtin in this class
    def control_label(self) -> str:
        return f"{self.device}.{self.property}" if self.device else self.property


def check_free(directory: Path, overwrite: bool) -> None:
    """Refuse to replace an existing calibration unless asked to (checked again before writing)."""
    if directory.exists() and not overwrite:
        raise CalibrationError(
            f"{directory} exists",
            path=directory,
            option="overwrite",
            hint="choose another output folder, or allow replacing it",
        )


def publish(directory: Path, write: Callable[[Path], None], overwrite: bool = False) -> None:
    """Have ``write`` fill a temporary directory, then move it to ``directory`` in one rename."""
    check_free(directory, overwrite)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.{uuid.uuid4().hex[:8]}.partial")
    tmp.mkdir()  # unlike mkdtemp, honours the umask: the result is as readable as any directory
    try:
        write(tmp)
        if directory.exists():
            old = tmp.with_name(tmp.name + ".old")
            directory.rename(old)
            try:
                tmp.rename(directory)
            except OSError:
                old.rename(directory)
                raise
            shutil.rmtree(old)
        else:
            tmp.rename(directory)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def load_profile(path: str | Path) -> Profile:
    """Read a profile (the file, or the ``calibration/NAME`` directory holding it)."""
    path = Path(path)
    if path.is_dir():
        path = path / PROFILE
    try:
        return Profile.model_validate_json(path.read_text())
    except OSError as err:
        raise CalibrationError(f"{path}: cannot read the calibration profile ({err}).") from None
    except ValidationError as err:
        raise CalibrationError(f"{path}: not a livedenoise calibration profile:\n{err}") from None


def device_settings(core: CMMCorePlus) -> dict[str, str]:
    """What a calibration holds only for, besides the model: the camera, its pixel size (zoom,
    objective), frame size, binning and bit depth, as the core reports them."""
    camera = core.getCameraDevice()
    settings = {
        "camera": camera,
        "pixel size": f"{core.getPixelSizeUm():g} um",
        "frame": f"{core.getImageWidth()} x {core.getImageHeight()} px",
        "bit depth": str(core.getImageBitDepth()),
    }
    if camera and core.hasProperty(camera, "Binning"):
        settings["binning"] = str(core.getProperty(camera, "Binning"))
    return settings


def differences(profile: Profile, core: CMMCorePlus, model: str | Path | None) -> list[str]:
    """How this core and ``model`` differ from what ``profile`` was measured with, in words."""
    found = []
    if model is not None:
        card = load_card(model)
        if card.weights_sha256 != profile.model_sha256:
            found.append(
                f"model {profile.model_name} ({profile.model_sha256[:12]}), "
                f"now {card.name} ({card.weights_sha256[:12]})"
            )
    now = device_settings(core)
    for name, then in (profile.settings or {}).items():
        if now.get(name, "none") != then:
            found.append(f"{name} {then}, now {now.get(name, 'none')}")
    return found


def apply_profile(
    core: CMMCorePlus,
    path: str | Path | Profile,
    *,
    model: str | Path | None = None,
    accept: bool = False,
) -> Profile:
    """Set the chosen value of the profile's property on ``core``; returns the profile.

    ``path``: a ``profile.json`` (or its directory), or a profile just measured and never written
    (messages then call it "the calibration").

    A choice holds for the model and camera settings it was measured with: unless ``accept``, a
    profile made with another model (``model``: the one about to denoise) or at other settings
    (pixel size, frame size...) is refused, naming what differs.

    Raises ``CalibrationError`` for those, when the profile names no device (an offline calibration)
    or a device or property this core lacks, or when the device refuses the value; ``ModelFileError``
    when ``model`` has no readable card.
    """
    if isinstance(path, Profile):
        profile, name, file = path, "the calibration", None
    else:
        profile, name, file = load_profile(path), str(path), Path(path)
    label = profile.control_label
    if profile.device is None:
        raise CalibrationError(
            f"{name} was calibrated offline from a recorded stack: it chose "
            f"{profile.chosen.text} {profile.property} but names no device property to set. "
            "Set the equivalent line average or exposure yourself, or calibrate on the microscope."
        )
    if profile.device not in core.getLoadedDevices():
        raise CalibrationError(
            f"{name} sets {label}, but this microscope has no device {profile.device!r} "
            f"(devices: {', '.join(core.getLoadedDevices())})."
        )
    if not core.hasProperty(profile.device, profile.property):
        raise CalibrationError(
            f"{name} sets {label}, but device {profile.device} has no property {profile.property!r}."
        )
    if not accept and (found := differences(profile, core, model)):
        raise CalibrationError(
            f"{name} was measured under other conditions: {'; '.join(found)}",
            path=file,
            option="accept_calibration",
            hint="its choice holds only for what it measured: calibrate again here, or accept "
            "the calibration to apply it anyway",
        )
    try:
        set_number(core, profile.device, profile.property, profile.chosen.text)
    except Exception as err:  # MMCore reports refused values as its own exception types
        raise CalibrationError(f"{name}: {label} refused {profile.chosen.text} ({err}).") from None
    return profile
