"""The alert rules the Monitor applies to a run's event stream, Qt-free: ``RunAlerts``.

    rules = RunAlerts(stall_factor=5.0, stall_floor_s=120.0)
    for alert in rules.observe("r1", events):      # as events arrive, any kinds, any order
        show(alert.level, alert.text)
    for alert in rules.stalls(now=time.time()):    # on a timer
        show(alert.level, alert.text)

What raises an alert:

- a stage event with status ``failed`` (error), and the engine's own ``alert`` events;
- a ``*loss`` value that is NaN/inf, or more than ``LOSS_EXPLODE_FACTOR`` (10) x the median of
  the previous (up to) ``LOSS_WINDOW`` (20) finite values once ``LOSS_MIN_HISTORY`` (5) exist
  (error; each once per run and key, not per step);
- a stalled stage (warning). A stall is learned per (run, stage) from the gaps between that
  stage's events: a healthy stage may report every 0.07 s and then pause 110 s to load a
  model, so a fixed factor of its median gap fires on every pause. A stage is stalled when it
  has been quiet for longer than all of: ``stall_floor_s`` (120 s), ``stall_factor`` (5) x the
  90th percentile of its last 100 gaps, and ``STALL_LONGEST_FACTOR`` (1.5) x its longest gap
  so far. Until a stage has 3 gaps it is stalled only after ``STALL_STARTUP_S`` (30 min). Each
  stall alerts once, until the stage's next event; a finished stage never stalls (the
  desktop's GPU samples are ``GpuRound`` records, not events: they never reach these rules).

What the stall rule cannot tell: a stage that hangs within 1.5x its longest pause so far is
reported late, and one whose first long pause is > 120 s and > 1.5x anything before is
reported once although healthy.

The texts are plain and may hold what a cluster wrote (reasons, messages): whoever shows them
makes them visible first (remote.display_text). Left out: alert rules per metric other than
losses (a reward that collapses), and persistence (rules restart with the window).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.contracts.events import STAGE_ENDED, Event

LOSS_WINDOW = 20
LOSS_MIN_HISTORY = 5
LOSS_EXPLODE_FACTOR = 10.0
STALL_GAPS_KEPT = 100
STALL_MIN_GAPS = 3
STALL_PERCENTILE = 90
STALL_LONGEST_FACTOR = 1.5
STALL_STARTUP_S = 1800.0


@dataclass(frozen=True)
class Alert:
    level: str  # "error", "warning", "info" (the engine's alert levels)
    text: str


@dataclass
class StageClock:
    """When a (run, stage) was last heard from, and its recent gaps between events."""

    last_t: float | None = None
    gaps: deque[float] = field(default_factory=lambda: deque(maxlen=STALL_GAPS_KEPT))
    longest: float = 0.0  # of every gap ever, not only the kept ones: a model load is rare
    usual: float | None = None  # the gaps' 90th percentile, None when gaps changed since
    terminal: bool = False
    stalled: bool = False

    def add_gap(self, gap: float) -> None:
        self.gaps.append(gap)
        self.longest = max(self.longest, gap)
        self.usual = None

    def limit(self, factor: float, floor_s: float) -> float:
        """Seconds of silence after which this stage is stalled (module docstring)."""
        if len(self.gaps) < STALL_MIN_GAPS:
            return max(STALL_STARTUP_S, floor_s)
        if self.usual is None:  # the 90th percentile, linear between ranks (numpy's default)
            self.usual = statistics.quantiles(self.gaps, n=100, method="inclusive")[
                STALL_PERCENTILE - 1]
        return max(floor_s, factor * self.usual, STALL_LONGEST_FACTOR * self.longest)


class RunAlerts:
    """The rules above over any number of runs (module docstring)."""

    def __init__(self, *, stall_factor: float = 5.0, stall_floor_s: float = 120.0) -> None:
        self.stall_factor = stall_factor
        self.stall_floor_s = stall_floor_s
        self._stages: dict[tuple[str, str], StageClock] = {}
        self._loss_window: dict[tuple[str, str], deque[float]] = {}
        self._fired: set[tuple[str, str, str]] = set()

    def observe(self, run: str, events: Iterable[Event]) -> list[Alert]:
        """The alerts these events of ``run`` raise; also what the stall rule learns."""
        out: list[Alert] = []
        for e in events:
            clock = self._clock(run, e.stage)
            if clock.last_t is not None and e.t > clock.last_t:
                clock.add_gap(e.t - clock.last_t)
            if clock.last_t is None or e.t > clock.last_t:
                clock.last_t = e.t
            clock.stalled = False
            if e.kind == "metric":
                for key, value in e.data.items():
                    if key.endswith("loss"):
                        out += self._check_loss(run, e.stage, key, e.step, value)
            elif e.kind == "stage":
                status = e.data.status
                clock.terminal = status in STAGE_ENDED
                if status == "failed":
                    reason = f": {e.data.reason}" if e.data.reason else ""
                    out.append(Alert("error", f"run {run} / {e.stage}: stage failed{reason}"))
            elif e.kind == "alert":
                code = f"{e.data.code}: " if e.data.code else ""
                out.append(Alert(e.data.level,
                                 f"run {run} / {e.stage}: {code}{e.data.message}"))
        return out

    def stalls(self, now: float) -> list[Alert]:
        """One alert for each live stage quiet for longer than its learned limit."""
        out: list[Alert] = []
        for (run, stage), c in self._stages.items():
            if c.terminal or c.stalled or c.last_t is None:
                continue
            quiet = now - c.last_t
            if quiet <= c.limit(self.stall_factor, self.stall_floor_s):
                continue
            c.stalled = True
            if len(c.gaps) < STALL_MIN_GAPS:
                why = "since it started"
            else:
                why = (f"its longest pause so far was {duration_text(c.longest)}, it usually "
                       f"reports within {duration_text(c.usual or 0.0)}")
            out.append(Alert("warning", f"run {run} / {stage}: stalled, no event for "
                                        f"{duration_text(quiet)} ({why})"))
        return out

    def _check_loss(self, run: str, stage: str, key: str, step: int | None,
                    value: float) -> list[Alert]:
        window = self._loss_window.get((run, key))
        if window is None:
            window = self._loss_window[(run, key)] = deque(maxlen=LOSS_WINDOW)
        if not math.isfinite(value):
            if ("nan", run, key) in self._fired:
                return []
            self._fired.add(("nan", run, key))
            return [Alert("error", f"run {run} / {stage}: {key} is {value} at step {step}")]
        out: list[Alert] = []
        if len(window) >= LOSS_MIN_HISTORY:
            median = statistics.median(window)
            if (median > 0 and value > LOSS_EXPLODE_FACTOR * median
                    and ("explode", run, key) not in self._fired):
                self._fired.add(("explode", run, key))
                out.append(Alert("error", f"run {run} / {stage}: {key} exploded at step "
                                          f"{step}: {value:.4g} > {LOSS_EXPLODE_FACTOR:g}x the "
                                          f"median {median:.4g} of the previous {len(window)}"))
        window.append(value)
        return out

    def _clock(self, run: str, stage: str) -> StageClock:
        c = self._stages.get((run, stage))
        if c is None:
            c = self._stages[(run, stage)] = StageClock()
        return c


def duration_text(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.2g} s" if seconds < 10 else f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
