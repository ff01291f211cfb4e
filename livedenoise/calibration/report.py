"""What a calibration shows a person: the quality-vs-averages plot, and a short markdown report."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from livedenoise.calibration.analysis import Interval, Measurement
from livedenoise.calibration.breaking import Verdict
from livedenoise.calibration.criteria import Guide, Metric
from livedenoise.calibration.profile import PROFILE, Profile, Setting
from livedenoise.calibration.residual import Z_LIMIT

PLOT = "calibration.png"
REPORT = "report.md"
COLUMNS = (
    "n",
    "raw PSNR",
    "denoised PSNR",
    "gain dB",
    "vs reference dB",
    "raw SSIM",
    "denoised SSIM",
    "vs reference SSIM",
    "residual (chance)",
    "qualifies",
)


def _pm(value: Interval, digits: int, sign: str = "") -> str:
    return f"{value.mean:{sign}.{digits}f} ± {value.high - value.mean:.{digits}f}"


def _evidence(verdict: Verdict, averages: int) -> str:
    """``yes``, or the tests the rung failed."""
    test = next(t for t in verdict.tests if t.averages == averages)
    if test.qualifies:
        return "yes"
    failed = [
        name
        for name, passed in (
            ("≥ reference", test.below_reference),
            ("quality", test.quality),
            ("residual", test.safe),
            ("gain", test.helps),
        )
        if not passed
    ]
    return "no: " + (", ".join(failed) if failed else "fails at more averages")


def table_rows(measurement: Measurement, verdict: Verdict) -> list[list[str]]:
    """One row per rung of the ladder: mean ± 95% CI half-width over crops, and the evidence."""
    return [
        [
            str(r.averages),
            _pm(r.raw.psnr, 2),
            _pm(r.denoised.psnr, 2),
            _pm(r.gain_psnr, 2),
            _pm(r.vs_reference.psnr, 2, "+"),
            _pm(r.raw.ssim, 3),
            _pm(r.denoised.ssim, 3),
            _pm(r.vs_reference.ssim, 3, "+"),
            f"{r.structure.mean:+.3f} ({r.chance:.2f})",
            _evidence(verdict, r.averages),
        ]
        for r in measurement.rungs
    ]


def markdown_table(measurement: Measurement, verdict: Verdict) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---:|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(measurement, verdict)]
    return "\n".join(lines)


def _plural(count: float, unit: str) -> str:
    return f"{count:g} {unit}" + ("" if count == 1 else "s")


def describe_setting(profile: Profile, setting: Setting) -> str:
    """``Detector.LineAverage = 4 (4 averages, frame time 33.0 ms)`` or ``6 frames averaged (30 ms)``."""
    time = "" if setting.frame_ms is None else f"frame time {setting.frame_ms:.1f} ms"
    if profile.device is None:
        return f"{_plural(setting.averages, 'frame')} averaged" + (f" ({time})" if time else "")
    parts = ", ".join(p for p in (_plural(setting.averages, "average"), time) if p)
    return f"{profile.control_label} = {setting.text} ({parts})"


def short_setting(profile: Profile, setting: Setting) -> str:
    """``Detector.LineAverage=4`` or ``6 frames``: for legends and titles."""
    if profile.device is None:
        return _plural(setting.averages, "frame")
    return f"{profile.control_label}={setting.text}"


def _planned(profile: Profile) -> str:
    """The time the user's planned acquisition saves."""
    frames = profile.planned_frames
    if frames is None:
        return "planned acquisition: not given (give its frames or sequence to see the time saved)"
    chosen, ref = profile.chosen, profile.reference
    if chosen.frame_ms is None or ref.frame_ms is None:
        spared = frames * (ref.averages - chosen.averages)
        return (
            f"planned acquisition of {frames} frames: {profile.time_saved:.0%} of its frame time, "
            f"{spared:g} frame times at the fastest setting"
        )
    before, after = frames * ref.frame_ms / 1000, frames * chosen.frame_ms / 1000
    return (
        f"planned acquisition of {frames} frames: {after:.1f} s of frame time instead of "
        f"{before:.1f} s ({before - after:.1f} s saved)"
    )


def _expected(profile: Profile) -> str:
    e = profile.expected
    s = e.scores
    quality = (
        f"PSNR {s.psnr.mean:.2f} dB (95% CI {s.psnr.low:.2f}-{s.psnr.high:.2f}), "
        f"SSIM {s.ssim.mean:.3f} ({s.ssim.low:.3f}-{s.ssim.high:.3f})"
    )
    if not e.denoised:
        return f"expected quality: that of the raw reference protocol, {quality}"
    where = f"measured at {_plural(e.averages, 'average')}"
    if e.averages < profile.chosen.averages:
        where += f", the rung below the chosen {profile.chosen.averages:g}: at least this"
    d = e.vs_reference
    assert d is not None
    return (
        f"expected quality: denoised {quality} ({where}); against the raw reference protocol "
        f"{d.psnr.mean:+.2f} dB PSNR and {d.ssim.mean:+.3f} SSIM"
    )


def summary(profile: Profile) -> list[str]:
    """The lines a microscopist reads first: criterion, breaking point, choice, time saved, quality."""
    v = profile.verdict
    if v.breaking_point is None:
        rungs = profile.measurement.rungs
        point = (
            f"none within the measured ladder ({rungs[0].averages}-{rungs[-1].averages} averages): "
            f"{v.reason}; keep the reference protocol"
        )
    else:
        point = f"{_plural(v.breaking_point, 'average')} ({v.reason})"
    fields = f" on each of {len(profile.fields)} fields" if len(profile.fields) > 1 else ""
    return [
        f"criterion: {v.criterion.kind}{fields}: {v.criterion.description}",
        f"breaking point: {point}",
        f"chosen: {describe_setting(profile, profile.chosen)}, safety margin "
        f"{_plural(profile.margin, 'average')}",
        f"reference protocol: {describe_setting(profile, profile.reference)}",
        f"time saved per frame: {profile.time_saved:.0%}",
        _planned(profile),
        _expected(profile),
    ]


def markdown(profile: Profile) -> str:
    m = profile.measurement
    lines = [
        f"# Calibration of {profile.model_name} ({profile.created[:19]} UTC)",
        "",
        *(f"- **{line.split(':', 1)[0]}**:{line.split(':', 1)[1]}" for line in summary(profile)),
        f"- model: `{profile.model}` (weights sha256 `{profile.model_sha256[:16]}`)",
        f"- repeats: {profile.repeats} per field",
        f"- tolerance: {profile.tolerance.psnr_db:g} dB PSNR, {profile.tolerance.ssim:g} SSIM, "
        f"residual structure {profile.tolerance.structure:g}",
        "",
    ]
    for result in profile.fields:
        where = ", ".join(f"{k} {v}" for k, v in result.field.items())
        fm = result.measurement
        lines += [
            f"## {result.name}" + (f" ({where})" if where else ""),
            "",
            f"Breaking point {result.verdict.breaking_point or 'none'}: {result.verdict.reason}. "
            f"Raw reference protocol ({_plural(fm.reference_averages, 'average')}): PSNR "
            f"{_pm(fm.reference_raw.psnr, 2)} dB, SSIM {_pm(fm.reference_raw.ssim, 3)}; mean ± 95% "
            f"CI over {fm.crops} crops.",
            "",
            markdown_table(fm, result.verdict),
            "",
        ]
    if len(profile.fields) > 1:
        lines += [
            f"## All {len(profile.fields)} fields pooled ({m.crops} crops)",
            "",
            markdown_table(m, profile.verdict),
            "",
        ]
    lines += [
        "vs reference: denoised at n minus the raw reference protocol, paired per crop. Residual: "
        "share of the reference's structure in denoised − input (negative: structure removed or "
        f"blurred, positive: exaggerated), with in brackets the spread chance alignment of noise "
        f"with the sample gives it; unsafe beyond ±{profile.tolerance.structure:g} and "
        f"{Z_LIMIT:g} times that spread. Qualifies: the rung passes every test (quality, "
        "residual, gain) and is below the reference protocol.",
        "",
        "## Notes",
        "",
        *(f"- {note}" for note in profile.notes),
        "",
        f"![quality vs averages]({PLOT})",
        "",
    ]
    return "\n".join(lines)


def _guide(ax: Axes, guide: Guide, color: str, several: bool, name: str) -> None:
    """The criterion's target: one point with its interval and a level line (grey for one field),
    or a dashed curve in the field's colour."""
    if len(guide.averages) == 1:
        color = color if several else "0.2"
        (mean,), (low,), (high,) = guide.mean, guide.low, guide.high
        ax.errorbar(
            guide.averages,
            guide.mean,
            yerr=[[mean - low], [high - mean]],
            fmt="s",
            color=color,
            ms=6,
            capsize=3,
            label=name + guide.label,
        )
        ax.axhline(mean, color=color, ls="--", lw=0.8)
    else:
        ax.plot(guide.averages, guide.mean, "--", color=color, lw=1, label=name + guide.label)


def _panel(ax: Axes, profile: Profile, metric: Metric) -> None:
    several = len(profile.fields) > 1
    for i, result in enumerate(profile.fields):
        m = result.measurement
        n = [r.averages for r in m.rungs]
        color = f"C{i}" if several else "tab:blue"
        short = result.field.get("xy_um", result.source.removeprefix("stack "))
        name = f"{short}: " if several else ""
        for kind, style, shade in (("raw", ":", "0.45"), ("denoised", "-", color)):
            values = [getattr(getattr(r, kind), metric) for r in m.rungs]
            line_color = color if several else shade
            ax.plot(
                n, [v.mean for v in values], "o" + style, color=line_color, ms=4, label=name + kind
            )
            ax.fill_between(
                n, [v.low for v in values], [v.high for v in values], color=line_color, alpha=0.15
            )
        _guide(ax, profile.verdict.criterion.guide(m, metric), color, several, name)
        unsafe = [
            (r.averages, getattr(r.denoised, metric).mean)
            for r in m.rungs
            if r.averages in result.verdict.unsafe
        ]
        if unsafe:
            ax.plot(
                *zip(*unsafe, strict=True), "x", color="tab:red", ms=9, mew=2, label=f"{name}unsafe"
            )
    v = profile.verdict
    marks = [profile.chosen.averages, profile.reference.averages]
    if v.breaking_point is not None:
        ax.axvline(
            v.breaking_point, color="tab:red", lw=1.5, label=f"breaking point {v.breaking_point}"
        )
        marks.append(v.breaking_point)
    ax.axvline(
        profile.chosen.averages,
        color="tab:green",
        ls="--",
        lw=1.5,
        label=f"chosen: {short_setting(profile, profile.chosen)}",
    )
    ax.axvline(
        profile.reference.averages,
        color="0.3",
        ls=":",
        lw=1.5,
        label=f"reference: {short_setting(profile, profile.reference)}",
    )
    ax.set_xscale("log", base=2)
    ticks = sorted({*(r.averages for r in profile.measurement.rungs), *marks})
    ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
    ax.minorticks_off()
    ax.set_xlabel("averages (frames at the fastest setting)")
    ax.set_ylabel(metric.upper() + (" (dB)" if metric == "psnr" else ""))
    ax.grid(alpha=0.3)


def plot(profile: Profile, path: Path) -> None:
    """``figure(profile)`` saved at ``path``."""
    figure(profile).savefig(path, dpi=120)


def figure(profile: Profile) -> Figure:
    """PSNR and SSIM vs averages per field, raw and denoised with 95% CIs, the target each is judged
    against (the raw reference protocol or the plateau fit), the breaking point and choice marked;
    a figure without pyplot, so a file and a Qt canvas (the napari widget) draw the same."""
    v = profile.verdict
    fig = Figure(figsize=(11, 5.2 + 0.25 * len(profile.fields)), layout="constrained")
    left, right = fig.subplots(1, 2)  # no pyplot: no global backend or state
    _panel(left, profile, "psnr")
    _panel(right, profile, "ssim")
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=7)
    point = "none in the ladder" if v.breaking_point is None else f"{v.breaking_point} averages"
    fig.suptitle(
        f"{profile.model_name}, {v.criterion.kind} criterion, {len(profile.fields)} field(s): "
        f"breaking point {point}, chosen {short_setting(profile, profile.chosen)}, "
        f"{profile.time_saved:.0%} of the frame time saved",
        fontsize=9,
    )
    return fig


def write_outputs(directory: Path, profile: Profile) -> None:
    """Profile JSON, plot and report into ``directory``."""
    (directory / PROFILE).write_text(profile.model_dump_json(indent=2))
    plot(profile, directory / PLOT)
    (directory / REPORT).write_text(markdown(profile))
