"""Acquisition: Micro-Manager cores, and the simulated laser-scanning microscope behind them."""

from livedenoise.acquisition.cores import (
    CHANNEL_GROUP,
    CHANNELS,
    DETECTOR,
    LASER,
    SHUTTER,
    SIMULATED_CFG,
    XY_STAGE,
    Z_STAGE,
    ConfigError,
    make_core,
)

__all__ = [
    "CHANNELS",
    "CHANNEL_GROUP",
    "DETECTOR",
    "LASER",
    "SHUTTER",
    "SIMULATED_CFG",
    "XY_STAGE",
    "Z_STAGE",
    "ConfigError",
    "make_core",
]
