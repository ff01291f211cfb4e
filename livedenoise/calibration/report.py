"""What a calibration shows a person: the quality-vs-averages plot, and a short markdown report."""

from __future__ import annotations

from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from livedenoise.calibration.analysis import Interval
from livedenoise.calibration.profile import PROFILE, Profile, Setting
from livedenoise.calibration.residual import Z_LIMIT

PLOT = "calibration.png"
REPORT = "report.md"
COLUMNS = (
    "n",
    "raw PSNR",
    "denoised PSNR",
    "gain dB",
    "raw SSIM",
    "denoised SSIM",
    "raw NRMSE",
    "denoised NRMSE",
    "residual",
    "safe",
)


def _pm(value: Interval, digits: int) -> str:
    return f"{value.mean:.{digits}f} ± {value.high - value.mean:.{digits}f}"


def table_rows(profile: Profile) -> list[list[str]]:
    """One row per rung of the ladder: mean ± 95% CI half-width over crops."""
    return [
        [
            str(r.averages),
            _pm(r.raw.psnr, 2),
            _pm(r.denoised.psnr, 2),
            _pm(r.gain_psnr, 2),
            _pm(r.raw.ssim, 3),
            _pm(r.denoised.ssim, 3),
            _pm(r.raw.nrmse, 4),
            _pm(r.denoised.nrmse, 4),
            f"{r.structure.mean:+.3f}",
            "NO" if r.averages in profile.verdict.unsafe else "yes",
        ]
        for r in profile.measurement.rungs
    ]


def markdown_table(profile: Profile) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---:|" * len(COLUMNS)]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(profile)]
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


def summary(profile: Profile) -> list[str]:
    """The few lines a microscopist reads first: breaking point, chosen setting, time saved."""
    v = profile.verdict
    return [
        f"breaking point: {_plural(v.breaking_point, 'average')} ({v.reason})",
        f"chosen: {describe_setting(profile, profile.chosen)}, safety margin "
        f"{_plural(profile.margin, 'average')}",
        f"reference protocol: {describe_setting(profile, profile.reference)}",
        f"time saved per frame: {profile.time_saved:.0%}",
    ]


def markdown(profile: Profile) -> str:
    m = profile.measurement
    field = ", ".join(f"{k} {v}" for k, v in profile.field.items())
    lines = [
        f"# Calibration of {profile.model_name} ({profile.created[:19]} UTC)",
        "",
        *(f"- **{line.split(':', 1)[0]}**:{line.split(':', 1)[1]}" for line in summary(profile)),
        f"- model: `{profile.model}` (weights sha256 `{profile.model_sha256[:16]}`)",
        f"- repeats: {profile.repeats} from {profile.source}" + (f" ({field})" if field else ""),
        f"- tolerance: {profile.tolerance.psnr_db:g} dB PSNR, {profile.tolerance.ssim:g} SSIM, "
        f"residual structure {profile.tolerance.structure:g}",
        "",
        f"## Quality against the reference (mean ± 95% CI over {m.crops} crops)",
        "",
        markdown_table(profile),
        "",
        "Residual: share of the reference's structure in denoised − input (negative: structure "
        f"removed or blurred, positive: exaggerated); unsafe beyond ±{profile.tolerance.structure:g} and "
        f"{Z_LIMIT:g} times its chance level.",
        "",
        "## Notes",
        "",
        *(f"- {note}" for note in profile.notes),
        "",
        f"![quality vs averages]({PLOT})",
        "",
    ]
    return "\n".join(lines)


def _panel(ax: Axes, profile: Profile, metric: str, tolerance: float, fitted: list[float]) -> None:
    rungs = profile.measurement.rungs
    n = [r.averages for r in rungs]
    for kind, color in (("raw", "0.45"), ("denoised", "tab:blue")):
        values = [getattr(getattr(r, kind), metric) for r in rungs]
        ax.plot(n, [v.mean for v in values], "o-", color=color, label=kind, ms=4)
        ax.fill_between(
            n, [v.low for v in values], [v.high for v in values], color=color, alpha=0.2
        )
    ax.plot(n, fitted, "--", color="tab:blue", lw=1, label="denoised, robust fit")
    ax.axhline(fitted[-1] - tolerance, color="tab:blue", ls=":", lw=1, label="plateau − tolerance")
    unsafe = [
        (r.averages, getattr(r.denoised, metric).mean)
        for r in rungs
        if r.averages in profile.verdict.unsafe
    ]
    if unsafe:
        ax.plot(*zip(*unsafe, strict=True), "x", color="tab:red", ms=9, mew=2, label="unsafe")
    v = profile.verdict
    ax.axvline(
        v.breaking_point, color="tab:red", lw=1.5, label=f"breaking point {v.breaking_point:g}"
    )
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
    ticks = sorted({*n, v.breaking_point, profile.chosen.averages, profile.reference.averages})
    ax.set_xticks(ticks, [f"{x:g}" for x in ticks])
    ax.minorticks_off()
    ax.set_xlabel("averages (frames at the fastest setting)")
    ax.set_ylabel(metric.upper() + (" (dB)" if metric == "psnr" else ""))
    ax.grid(alpha=0.3)


def plot(profile: Profile, path: Path) -> None:
    """PSNR and SSIM vs averages, raw and denoised with 95% CIs; breaking point and choice marked."""
    v = profile.verdict
    fig = Figure(figsize=(11, 4.8), layout="constrained")  # no pyplot: no global backend or state
    left, right = fig.subplots(1, 2)
    _panel(left, profile, "psnr", profile.tolerance.psnr_db, v.fitted_psnr)
    _panel(right, profile, "ssim", profile.tolerance.ssim, v.fitted_ssim)
    fig.legend(*left.get_legend_handles_labels(), loc="outside lower center", ncol=4, fontsize=8)
    fig.suptitle(
        f"{profile.model_name} on {profile.source}: breaking point {v.breaking_point:g} averages, "
        f"chosen {short_setting(profile, profile.chosen)}",
        fontsize=9,
    )
    fig.savefig(path, dpi=120)


def write_outputs(directory: Path, profile: Profile) -> None:
    """Profile JSON, plot and report into ``directory``."""
    (directory / PROFILE).write_text(profile.model_dump_json(indent=2))
    plot(profile, directory / PLOT)
    (directory / REPORT).write_text(markdown(profile))
