"""The mechanical and optical devices of the simulated microscope: stages, laser lines, shutter.

Each is a plain Micro-Manager device (XY stage, focus stage, state device, shutter) written as a
pymmcore-plus unicore Python adapter; the detector reads their state through the rig they share.
"""

from __future__ import annotations

from pymmcore_plus.experimental.unicore import (
    ShutterDevice,
    StageDevice,
    StateDevice,
    XYStageDevice,
)

from livedenoise.acquisition.rig import RigMember

LASER_LINES = {
    0: "405nm",
    1: "488nm",
    2: "561nm",
    3: "640nm",
}  # state -> label; state = fluorophore


def _check_travel(axis: str, value: float, travel: float) -> None:
    if not -travel <= value <= travel:
        raise ValueError(f"{axis} = {value} um is outside the stage travel (+-{travel:g} um)")


class SimXYStage(RigMember, XYStageDevice):
    """Motorised XY stage with 100 x 100 mm of travel; moves are instant."""

    ROLE = "xy"
    TRAVEL_UM = 50_000.0

    def __init__(self) -> None:
        super().__init__()
        self._where = [0.0, 0.0]  # physical position, what the detector sees
        self._origin = [0.0, 0.0]  # physical position reported as 0, 0

    def physical_position(self) -> tuple[float, float]:
        """Where the stage is, independent of any origin the user has set."""
        return self._where[0], self._where[1]

    def set_position_um(self, x: float, y: float) -> None:
        where = [x + self._origin[0], y + self._origin[1]]
        for axis, value in zip("XY", where, strict=True):
            _check_travel(axis, value, self.TRAVEL_UM)
        self._where = where
        self.core.events.XYStagePositionChanged.emit(self.get_label(), x, y)

    def get_position_um(self) -> tuple[float, float]:
        return self._where[0] - self._origin[0], self._where[1] - self._origin[1]

    def set_origin_x(self) -> None:
        self._origin[0] = self._where[0]

    def set_origin_y(self) -> None:
        self._origin[1] = self._where[1]

    def home(self) -> None:
        self._where = [0.0, 0.0]

    def stop(self) -> None:
        """Nothing to stop: moves complete at once."""


class SimZStage(RigMember, StageDevice):
    """Piezo focus drive with +-100 um of travel; moves are instant."""

    ROLE = "z"
    TRAVEL_UM = 100.0

    def __init__(self) -> None:
        super().__init__()
        self._where = 0.0
        self._origin = 0.0

    def physical_position(self) -> float:
        """Where the focus is, independent of any origin the user has set."""
        return self._where

    def set_position_um(self, val: float) -> None:
        _check_travel("Z", val + self._origin, self.TRAVEL_UM)
        self._where = val + self._origin
        self.core.events.stagePositionChanged.emit(self.get_label(), val)

    def get_position_um(self) -> float:
        return self._where - self._origin

    def set_origin(self) -> None:
        self._origin = self._where

    def home(self) -> None:
        self._where = 0.0

    def stop(self) -> None:
        """Nothing to stop: moves complete at once."""


class LaserLine(RigMember, StateDevice):
    """Excitation laser and matching emission band: state n excites fluorophore n of the sample."""

    ROLE = "laser"

    def __init__(self) -> None:
        super().__init__(LASER_LINES)
        self._state = 0

    def get_state(self) -> int:
        return self._state

    def set_state(self, position: int) -> None:
        self._state = int(position)


class LaserShutter(RigMember, ShutterDevice):
    """Safety shutter in the laser path: closed, the detector sees no light.

    It starts open because UniMMCore (pymmcore-plus 0.18) does not open Python shutters for
    auto-shutter; the scanner blanks the beam between frames itself, as real scan heads do.
    """

    ROLE = "shutter"

    def __init__(self) -> None:
        super().__init__()
        self._open = True

    def get_open(self) -> bool:
        return self._open

    def set_open(self, open: bool) -> None:
        self._open = bool(open)
