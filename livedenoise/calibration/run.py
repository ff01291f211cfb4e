"""One calibration from repeats to a saved profile: measure each field, find the breaking point, choose,
write."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from livedenoise.calibration.analysis import Measurement, measure, pool
from livedenoise.calibration.breaking import combine, find_breaking_point
from livedenoise.calibration.choose import Control, choose_value, reference_averages
from livedenoise.calibration.criteria import Criterion, Tolerance
from livedenoise.calibration.profile import Expected, FieldResult, Profile, Setting, publish
from livedenoise.calibration.repeats import Repeats
from livedenoise.calibration.report import write_outputs
from livedenoise.events import Events
from livedenoise.inference import Engine

BLEACHING_NOTE = 0.05  # report a signal change between input and reference frames beyond this


def calibrate(
    engine: Engine,
    model: str,
    fields: Sequence[Repeats],
    control: Control,
    reference: float,
    tolerance: Tolerance,
    margin: float,
    frame_ms: Callable[[float], float | None],
    *,
    criterion: Criterion | None = None,
    planned_frames: int | None = None,
    events: Events | None = None,
) -> Profile:
    """Measure each field's repeats with ``engine`` and choose a value of ``control`` that holds on all.

    ``reference`` is the user's protocol as a value of the control (checked by ``reference_value``);
    ``margin`` is added to the breaking point, in averages; ``frame_ms`` gives the frame time (ms) at a
    value; ``criterion`` judges each rung (None: ``Reference()``); ``planned_frames`` the frames of
    the acquisition to come. Fields with more repeats than the fewest are cut to it, so that all
    measure one ladder. ``events`` gets each field's ``progress`` and rungs (``measure``). Raises
    ``CalibrationError`` as ``measure``.
    """
    count = min(f.frames.shape[0] for f in fields)
    ref_averages = reference_averages(control, reference)
    results = []
    for i, repeats in enumerate(fields, start=1):
        what = "denoising the ladder" + of_fields(i, len(fields))
        m = measure(engine, repeats.frames[:count], ref_averages, events, what)
        verdict = find_breaking_point(m.rungs, tolerance, control.averages(reference), criterion)
        results.append(
            FieldResult(source=repeats.source, field=repeats.field, measurement=m, verdict=verdict)
        )
    pooled = pool([r.measurement for r in results])
    verdict = combine([r.verdict for r in results], [r.name for r in results])
    if verdict.breaking_point is None:
        chosen_value = reference
    else:
        chosen_value = choose_value(control, verdict.breaking_point + margin, reference)

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
    notes = _notes(pooled, count)
    if len(results) > 1:
        notes += [f"{r.name}: {note}" for r in results for note in _field_notes(r.measurement)]
    else:
        notes += _field_notes(pooled)
    if len({f.frames.shape[0] for f in fields}) > 1:
        notes.append(
            f"the fields have {', '.join(str(f.frames.shape[0]) for f in fields)} repeats: each "
            f"was cut to its first {count}, so that all measure the same ladder."
        )
    wanted = None if verdict.breaking_point is None else verdict.breaking_point + margin
    if wanted is not None and chosen_value == reference and wanted > control.averages(reference):
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
        repeats=count,
        tolerance=tolerance,
        margin=margin,
        fields=results,
        measurement=pooled,
        verdict=verdict,
        chosen=chosen,
        reference=ref,
        expected=_expected(pooled, chosen.averages if verdict.benefit else None),
        time_saved=saved,
        planned_frames=planned_frames,
        notes=notes,
    )


def of_fields(field: int, fields: int) -> str:
    """`` (field 2 of 3)`` where there are several fields, for progress."""
    return f" (field {field} of {fields})" if fields > 1 else ""


def _expected(m: Measurement, chosen_averages: float | None) -> Expected:
    """The denoised quality at the largest measured rung not above the choice; with no benefit (None),
    the raw reference protocol's."""
    if chosen_averages is None:
        return Expected(
            averages=m.reference_averages, denoised=False, scores=m.reference_raw, vs_reference=None
        )
    rung = [r for r in m.rungs if r.averages <= chosen_averages][-1]
    return Expected(
        averages=rung.averages, denoised=True, scores=rung.denoised, vs_reference=rung.vs_reference
    )


def _notes(m: Measurement, repeats: int) -> list[str]:
    """What limits the measurement of every field, in words."""
    notes = [
        f"{repeats} repeats per field: the inputs are averages of the first {m.inputs}, the reference "
        f"is the mean of the other {m.reference_frames}, so the ladder ends at {m.inputs} averages; "
        f"the reference's own noise caps PSNR near {m.reference_ceiling_db:.1f} dB.",
        f"each average is denoised alone (a window of {m.window} frame); a live window of several "
        "frames at the same setting gives the model more to work with, so this is on the safe side.",
    ]
    if m.reference_averages == m.inputs:
        notes.append(
            f"the reference protocol is scored as the raw average of {m.inputs} frames, the most "
            "these repeats measure: record more repeats to calibrate against a longer protocol."
        )
    return notes


def _field_notes(m: Measurement) -> list[str]:
    """What qualifies one field's measurement: the signal lost while it was recorded."""
    if abs(m.signal_change) > BLEACHING_NOTE:
        return [
            f"the signal changed by {m.signal_change:+.0%} between the input and reference frames "
            "(bleaching or drift): the intensity fit absorbs a uniform change, an uneven one lowers "
            "the scores. Calibrate on a fresh field with less light, or fewer repeats."
        ]
    return [
        f"the signal changed by {m.signal_change:+.1%} between the input and reference frames; a "
        "real sample bleaches while the repeats are taken, so calibrate on a field you can spare."
    ]


def save_calibration(directory: Path, profile: Profile, overwrite: bool = False) -> None:
    """Write profile, plot and report into ``directory`` all at once (see ``profile.publish``)."""
    publish(directory, lambda tmp: write_outputs(tmp, profile), overwrite)
