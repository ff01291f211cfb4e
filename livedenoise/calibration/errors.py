"""The one error every calibration step raises for a user's mistake."""

from __future__ import annotations


class CalibrationError(ValueError):
    """A calibration that cannot run or a profile that cannot be used; the message says what to do."""
