"""The one error every calibration step raises for a user's mistake."""

from __future__ import annotations

from livedenoise.errors import LivedenoiseError


class CalibrationError(LivedenoiseError, ValueError):
    """A calibration that cannot run or a profile that cannot be used; the message says what to do."""

    @classmethod
    def from_error(cls, error: Exception) -> CalibrationError:
        """Another layer's error (an image, a model, an engine) as a calibration's, keeping what
        it names (path, option, value, hint)."""
        if isinstance(error, LivedenoiseError):
            return cls(
                error.message,
                path=error.path,
                option=error.option,
                value=error.value,
                hint=error.hint,
            )
        return cls(str(error))
