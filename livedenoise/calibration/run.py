"""One calibration from repeats to a saved profile: measure, find the breaking point, choose, write."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from livedenoise.calibration.analysis import Measurement, Rung, measure
from livedenoise.calibration.breaking import Tolerance, find_breaking_point
from livedenoise.calibration.choose import Control, choose_value
from livedenoise.calibration.profile import Profile, Setting, publish
from livedenoise.calibration.repeats import Repeats
from livedenoise.calibration.report import write_outputs
from livedenoise.inference import Engine

DEFAULT_REFERENCE_AVERAGES = 16  # the usual protocol when the user names none (line average 16)
BLEACHING_NOTE = 0.05  # report a signal change between input and reference frames beyond this


def calibrate(
    engine: Engine,
    model: str,
    repeats: Repeats,
    control: Control,
    reference: float,
    tolerance: Tolerance,
    margin: float,
    frame_ms: Callable[[float], float | None],
    on_rung: Callable[[Rung], None] = lambda rung: None,
) -> Profile:
    """Measure ``repeats`` with ``engine`` and choose a value of ``control``.

    ``reference`` is the user's protocol as a value of the control (checked by ``reference_value``);
    ``margin`` is added to the breaking point, in averages; ``frame_ms`` gives the frame time at a value.
    """
    measurement = measure(engine, repeats.frames, on_rung)
    verdict = find_breaking_point(measurement.rungs, tolerance, control.averages(reference))
    wanted = verdict.breaking_point + margin
    chosen_value = choose_value(control, wanted, reference)

    def setting(value: float) -> Setting:
        return Setting(
            value=value,
            text=control.text(value),
            averages=control.averages(value),
            frame_ms=frame_ms(value),
        )

    chosen, ref = setting(chosen_value), setting(reference)
    if chosen.frame_ms and ref.frame_ms:
        saved = 1 - chosen.frame_ms / ref.frame_ms
    else:
        saved = 1 - chosen.averages / ref.averages
    notes = _notes(measurement, repeats.frames.shape[0])
    if verdict.benefit and chosen_value == reference and wanted > control.averages(reference):
        notes.append(
            f"the breaking point plus the margin ({wanted:g} averages) is not below the reference "
            "protocol: the reference protocol is kept."
        )
    return Profile(
        model=model,
        model_name=engine.card.name,
        model_sha256=engine.card.weights_sha256,
        device=control.device,
        property=control.name,
        fastest=setting(control.base),
        source=repeats.source,
        field=repeats.field,
        repeats=repeats.frames.shape[0],
        tolerance=tolerance,
        margin=margin,
        measurement=measurement,
        verdict=verdict,
        chosen=chosen,
        reference=ref,
        time_saved=saved,
        notes=notes,
    )


def _notes(m: Measurement, repeats: int) -> list[str]:
    """What limits or qualifies the measurement, in words."""
    notes = [
        f"{repeats} repeats: the inputs are averages of the first {m.inputs}, the reference is the "
        f"mean of the other {m.reference_frames}, so the ladder ends at {m.inputs} averages; the "
        f"reference's own noise caps PSNR near {m.reference_ceiling_db:.1f} dB, which limits the "
        "plateau.",
        f"each average is denoised alone (a window of {m.window} frame); a live window of several "
        "frames at the same setting gives the model more to work with, so this is on the safe side.",
    ]
    if abs(m.signal_change) > BLEACHING_NOTE:
        notes.append(
            f"the signal changed by {m.signal_change:+.0%} between the input and reference frames "
            "(bleaching or drift): the intensity fit absorbs a uniform change, an uneven one lowers "
            "the scores. Calibrate on a fresh field with less light, or fewer repeats."
        )
    else:
        notes.append(
            f"the signal changed by {m.signal_change:+.1%} between the input and reference frames; a "
            "real sample bleaches while the repeats are taken, so calibrate on a field you can spare."
        )
    return notes


def save_calibration(directory: Path, profile: Profile, overwrite: bool = False) -> None:
    """Write profile, plot and report into ``directory`` all at once (see ``profile.publish``)."""
    publish(directory, lambda tmp: write_outputs(tmp, profile), overwrite)
