"""`livedenoise devices`: what the microscope offers, so a user knows what can be changed."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from pymmcore_plus import CMMCorePlus
from rich.table import Table

from livedenoise.acquisition import make_core
from livedenoise.app import release_microscope
from livedenoise.cli.common import console, fail
from livedenoise.errors import LivedenoiseError


def devices(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="A Micro-Manager configuration file (default: the simulated microscope).",
        ),
    ] = None,
) -> None:
    """List every device and property: value, limits or allowed values, and whether it is settable."""
    try:
        core = make_core(config)
    except (LivedenoiseError, FileNotFoundError) as err:
        raise fail(err) from None
    try:
        console.print(_property_table(core, title=str(config or "simulated microscope")))
        console.print(_group_table(core))
    finally:
        release_microscope(core)


def _property_table(core: CMMCorePlus, title: str) -> Table:
    table = Table(
        title=f"devices of {title}",
        caption="read-only: cannot be set; pre-init: set in the configuration file, before initialising",
    )
    table.add_column("device", no_wrap=True)
    table.add_column("property", no_wrap=True)
    for column in ("value", "limits or allowed values", "access"):
        table.add_column(column)
    # UniMMCore keeps the roles of Python devices to itself: ask the core, not its C++ properties
    roles = {
        "Camera": core.getCameraDevice,
        "Shutter": core.getShutterDevice,
        "Focus": core.getFocusDevice,
        "XYStage": core.getXYStageDevice,
        "AutoFocus": core.getAutoFocusDevice,
        "SLM": core.getSLMDevice,
        "Galvo": core.getGalvoDevice,
    }
    for label in core.getLoadedDevices():
        for prop in core.getDevicePropertyNames(label):
            name = prop.value if isinstance(prop, Enum) else prop
            if label == "Core" and name in roles:
                value: str = roles[name]()
            else:
                value = core.getProperty(label, name)
            if core.hasPropertyLimits(label, name):
                low, high = (
                    core.getPropertyLowerLimit(label, name),
                    core.getPropertyUpperLimit(label, name),
                )
                allowed = f"{_number(low)} .. {_number(high)}"
            else:
                allowed = ", ".join(core.getAllowedPropertyValues(label, name))
            if core.isPropertyReadOnly(label, name):
                access = "read-only"
            elif core.isPropertyPreInit(label, name):
                access = "pre-init"
            else:
                access = ""
            table.add_row(label, name, str(value), allowed, access)
        table.add_section()
    return table


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _group_table(core: CMMCorePlus) -> Table:
    table = Table(title="configuration groups")
    table.add_column("group")
    table.add_column("presets")
    table.add_column("current")
    for group in core.getAvailableConfigGroups():
        table.add_row(
            group, ", ".join(core.getAvailableConfigs(group)), core.getCurrentConfig(group)
        )
    table.add_row(
        "(pixel size)",
        ", ".join(core.getAvailablePixelSizeConfigs()),
        core.getCurrentPixelSizeConfig(),
    )
    return table
