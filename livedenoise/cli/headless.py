"""A headless run followed in the terminal: rich bars for acquired and denoised frames, and Ctrl-C or
SIGTERM handled as clean stops (the store closed, saying how the run ended)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from livedenoise.app import Acquisition
from livedenoise.cli.common import console
from livedenoise.frames import FrameInfo
from livedenoise.pipeline.live import LivePipeline, Policy
from livedenoise.pipeline.stats import STOPPED_BY_USER, TERMINATED


class Interrupts:
    """Ctrl-C during a headless run: the first stops acquiring, the second skips the denoise backlog.

    Raw frames are saved either way and the store is closed complete, saying how the run ended.
    A SIGTERM acts the same. Both act once the waiting loop sees them (``received``, ``act``).
    """

    def __init__(self, acquisition: Acquisition) -> None:
        self.acquisition = acquisition
        self.count = 0
        self.received: list[int] = []  # signals not yet acted on

    def note(self, number: int, _frame: object) -> None:
        """The handler of SIGINT and SIGTERM only notes the signal: it runs between two bytecodes of
        the main thread, which may hold the very lock stopping takes (``threading.Event.wait``'s),
        and would wait forever; a KeyboardInterrupt raised there could leave that lock held."""
        self.received.append(number)

    def act(self) -> None:
        """Stop, or skip the backlog, for each signal noted since the last call."""
        while self.received:
            if self.received.pop(0) == signal.SIGTERM:
                self("SIGTERM received", ended=TERMINATED)
            else:
                self()

    def __call__(self, why: str = "stopping", ended: str | None = STOPPED_BY_USER) -> None:
        """``ended``: how the store says the run ended; None where nobody stopped it (live mode's
        duration is over: it completed)."""
        self.count += 1
        if self.count == 1:
            self.acquisition.stop_acquiring(ended)
            pipeline = self.acquisition.pipeline
            waiting = self.acquisition.backlog
            if pipeline is not None and pipeline.policy is Policy.live:
                then = "; the newest frame is denoised, older waiting ones are skipped"
            elif waiting:
                then = (
                    f" and {waiting} waiting frames denoised (Ctrl-C again or another SIGTERM: "
                    "leave them raw-only)"
                )
            else:
                then = ""
            console.print(
                f"{why}: no more frames are acquired; every frame acquired is saved{then}"
            )
        else:
            self.acquisition.skip_backlog()
            console.print("skipping the denoise backlog: those frames stay raw-only")


class Bars:
    """The acquired and denoised bars, moved by the run's events (emitted from its threads); the
    first frame on disk announces where the run is saved."""

    def __init__(self, progress: Progress, acquisition: Acquisition) -> None:
        self.progress, self.acquisition = progress, acquisition
        self.acquired = progress.add_task("acquired", total=None)
        self.denoised = progress.add_task("denoised", total=None)
        self.counts = [0, 0]  # frames acquired, denoised
        self.first_frame_s: float | None = None  # monotonic time of the first frame
        events = acquisition.events
        events.started.connect(self.started)
        events.frameAcquired.connect(self.frame_acquired)
        events.frameDenoised.connect(self.frame_denoised)

    def started(self, pipeline: LivePipeline) -> None:
        total = self.acquisition.expected or None  # known once a sequence starts; live: open
        for task in (self.acquired, self.denoised):
            self.progress.update(task, total=total)

    def frame_acquired(self, raw: np.ndarray, info: FrameInfo) -> None:
        if info.seq == 0:
            self.first_frame_s = time.monotonic()
            console.print(
                f"acquiring into {self.acquisition.last_out} (Ctrl-C or SIGTERM stops; every "
                "frame acquired is kept)"
            )
        self.counts[0] += 1
        self.progress.advance(self.acquired)

    def frame_denoised(self, raw: np.ndarray, denoised: np.ndarray, info: FrameInfo) -> None:
        self.counts[1] += 1
        self.progress.advance(self.denoised)

    def stopped(self) -> None:
        """Acquiring stopped early: both bars end at the frames acquired, so the denoised bar shows
        the backlog left."""
        for task in (self.acquired, self.denoised):
            self.progress.update(task, total=self.counts[0])

    def disconnect(self) -> None:
        events = self.acquisition.events
        events.started.disconnect(self.started)
        events.frameAcquired.disconnect(self.frame_acquired)
        events.frameDenoised.disconnect(self.frame_denoised)


class Pace:
    """Says once, early, when a sequence's frames are denoised (record policy) far slower than they
    come, and how long after the last frame the backlog will take; then, where no bars are drawn
    (output to a file), how many waiting frames are left while a stopped run's backlog drains."""

    WARN_AFTER_S = 10.0  # rates measured over this much of the run before judging them
    BEHIND = 0.5  # warn when fewer than this share of the frames keep up
    DRAIN_EVERY_S = 10.0

    def __init__(self, acquisition: Acquisition, bars: Bars) -> None:
        self.acquisition, self.bars = acquisition, bars
        self.warned = self.stopped = False
        self.next_drain_line = 0.0

    def check(self, stopped: bool) -> None:
        """Called from the waiting loop, about every 0.1 s; ``stopped``: acquiring has stopped."""
        now = time.monotonic()
        if stopped:
            if not self.stopped:
                self.stopped = True
                self.bars.stopped()
            if not console.is_terminal and now >= self.next_drain_line:
                self.next_drain_line = now + self.DRAIN_EVERY_S
                if waiting := self.acquisition.backlog:
                    console.print(f"denoising the waiting frames: {waiting} left")
            return
        start, (acquired, denoised) = self.bars.first_frame_s, self.bars.counts
        pipeline = self.acquisition.pipeline
        if self.warned or start is None or pipeline is None or pipeline.policy is Policy.live:
            return
        if note := behind_note(acquired, denoised, now - start, self.acquisition.expected):
            self.warned = True
            console.print(note)


def behind_note(acquired: int, denoised: int, seconds: float, expected: int) -> str | None:
    """What to tell a user whose frames are denoised far slower than they come (``acquired`` and
    ``denoised`` frames in the run's first ``seconds``; ``expected`` frames in the sequence, 0 if
    open-ended), or None: too early to judge (under ``Pace.WARN_AFTER_S``) or keeping up."""
    if seconds < Pace.WARN_AFTER_S or denoised >= Pace.BEHIND * acquired:
        return None
    acquiring, denoising = acquired / seconds, max(denoised, 1) / seconds
    after = (
        f"; the last of the {expected} frames will be denoised about "
        f"{_duration(expected / denoising - expected / acquiring)} after the acquisition ends"
        if expected
        else ""
    )
    return (
        f"denoising is behind: {denoising:.2g} frames/s denoised, {acquiring:.2g} acquired{after} "
        "(every raw frame is saved as it comes; --policy live denoises only the newest frames, a "
        "smaller --window or a GPU keeps up)"
    )


def _duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2.5 h``: a wait for people."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


def follow(acquisition: Acquisition, start: Callable[[], None], live_seconds: float | None) -> None:
    """Start the run and wait for its end while rich bars follow it; Ctrl-C, and SIGTERM (a job
    scheduler, ``kill``) alike, as ``Interrupts`` says.

    ``live_seconds``: live mode ends after that long, then its backlog is denoised (announced).
    """
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    interrupts = Interrupts(acquisition)
    previous = signal.signal(signal.SIGTERM, interrupts.note)
    # a shell that started the command with SIGINT ignored (``nohup``, ``&`` in a script) keeps it so
    previous_int = signal.getsignal(signal.SIGINT)
    if previous_int is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, interrupts.note)
    try:
        with Progress(*columns, TimeElapsedColumn(), console=console, transient=True) as progress:
            bars = Bars(progress, acquisition)
            try:
                start()
                if live_seconds is not None:
                    console.print(f"live mode for {live_seconds:g} s (Ctrl-C stops earlier)")
                wait(acquisition, interrupts, live_seconds, Pace(acquisition, bars))
            finally:
                bars.disconnect()
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.SIG_DFL if previous_int is None else previous_int)


def wait(
    acquisition: Acquisition,
    interrupts: Interrupts,
    live_seconds: float | None,
    pace: Pace | None = None,
) -> None:
    """Until the run ends: Ctrl-C and SIGTERM interrupt, and live mode ends after
    ``live_seconds``; ``pace`` says when denoising falls behind, and how a stopped run's backlog
    drains."""
    end = None if live_seconds is None else time.monotonic() + live_seconds
    while acquisition.running:
        if acquisition.live:  # nothing to wait on until live mode ends: a wait would return at once
            time.sleep(0.1)
        else:
            acquisition.wait(0.1)
        interrupts.act()
        if end is not None and time.monotonic() >= end and interrupts.count == 0:
            interrupts(f"{live_seconds:g} s of live mode done", ended=None)
        if pace is not None:
            pace.check(stopped=interrupts.count > 0)
