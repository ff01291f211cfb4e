"""Whether the viewer can open a window here, said before Qt tries.

On Linux, Qt's xcb platform plugin aborts the whole process (exit 134) when one of the system libraries
it links is missing, and its hint names only libxcb-cursor0, whatever is missing. So the libraries are
looked up first, each by the name the dynamic loader uses, and the missing ones are named with the
Debian/Ubuntu packages that provide them.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Iterable

from livedenoise.errors import LivedenoiseError

# what Qt's xcb platform plugin loads (soname -> Debian/Ubuntu package), both Qt 5 and Qt 6
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libfontconfig.so.1": "libfontconfig1",
    "libdbus-1.so.3": "libdbus-1-3",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
}
QT6_ONLY = {"libxcb-cursor.so.0": "libxcb-cursor0"}
QT5_ONLY = {"libxcb-xinerama.so.0": "libxcb-xinerama0"}


class DisplayError(LivedenoiseError, RuntimeError):
    """The viewer cannot open a window on this machine; the message says what to install or do,
    and ``option="headless"`` that a run without a window still works."""


def _no_window(message: str) -> DisplayError:
    return DisplayError(message, option="headless", hint="or run headless, without a window")


def missing_libraries(sonames: Iterable[str]) -> list[str]:
    """The shared libraries among ``sonames`` that the dynamic loader cannot find."""
    missing = []
    for soname in sonames:
        try:
            ctypes.CDLL(soname)
        except OSError:
            missing.append(soname)
    return missing


def missing_message(missing: list[str], packages: dict[str, str]) -> str:
    """One line: which libraries are missing and the apt-get line that installs them."""
    install = " ".join(dict.fromkeys(packages[soname] for soname in missing))
    return (
        f"the viewer cannot start: Qt's xcb platform needs {', '.join(missing)}, missing here. "
        f"Install them (Debian/Ubuntu): sudo apt-get install {install}"
    )


def check_display() -> None:
    """Refuse, before Qt is started, a Linux window that Qt's xcb platform could not open.

    Other platforms (offscreen, wayland, macOS, Windows) are left to Qt. Raises ``DisplayError``.
    """
    platform = os.environ.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0]
    if not sys.platform.startswith("linux") or platform not in ("", "xcb"):
        return
    if not platform and os.environ.get("WAYLAND_DISPLAY"):
        return  # Qt picks its wayland platform
    import qtpy

    packages = {**XCB_LIBRARIES, **(QT6_ONLY if qtpy.QT6 else QT5_ONLY)}
    if missing := missing_libraries(packages):
        raise _no_window(missing_message(missing, packages))
    if not os.environ.get("DISPLAY"):
        raise _no_window(
            "the viewer cannot start: no display (DISPLAY is not set). Run it in a desktop session "
            "or under `xvfb-run -a`"
        )
