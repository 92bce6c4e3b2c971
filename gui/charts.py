"""Qt-free chart data for the Monitor panel: series buffers, debiased EMA, labels, tick text.

``SeriesBuffer`` holds one curve (one run, one metric key) as numpy arrays that grow by
doubling, so appending a batch is amortised O(batch) and a redraw hands pyqtgraph array views
with no copy. ``debiased_ema`` is TensorBoard's smoothing (``ema = a*ema + (1-a)*x``, divided
by ``1 - a**n``), vectorised in chunks so a million points smooth in milliseconds, and resumable
from a saved state so a live curve only smooths its new points. (The Monitor's CSV export is
the engine's exporter, ``engine.metrics_export.write_metrics_csv``, run on the worker.)

How a chart reads: ``metric_label`` turns a metric key into a title and a y-axis label with its
unit, from the ``METRIC_LABELS`` table of known keys or, for any other key, from the key itself
(``custom/tokens_seen`` -> "custom tokens seen"). ``format_ticks`` writes a row of tick values
with the decimals their spacing needs and never more than ``TICK_SIGNIFICANT`` significant
digits (no float noise such as "12.00000000000002", no shared "(x0.001)" scale: a value below
1e-3 or from 1e6 up is written as "2e-6" on its own); ``format_value`` writes one reading.

Left out: units of keys missing from the table (the axis then names the quantity only),
out-of-order steps (points are kept in arrival order; a resumed run that repeats
steps draws them again) and any on-disk cache of series.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

# a**-L must stay far inside float64: chunks of L points keep the cumulative sums finite.
_MAX_DYNAMIC_RANGE_LOG10 = 100.0


def debiased_ema(
    x: np.ndarray, alpha: float, state: tuple[float, int] = (0.0, 0)
) -> tuple[np.ndarray, tuple[float, int]]:
    """Smooth ``x`` like TensorBoard; returns (smoothed, state to resume from).

    ``state`` is (biased ema, number of finite points seen). Non-finite points pass through
    unchanged and do not move the average (a NaN loss shows as a gap, not a poisoned curve).
    """
    x = np.asarray(x, dtype=np.float64)
    out = x.copy()
    if x.size == 0:
        return out, state
    if alpha <= 0.0:
        count = state[1] + int(np.isfinite(x).sum())
        finite = x[np.isfinite(x)]
        return out, (float(finite[-1]) if finite.size else state[0], count)
    finite_mask = np.isfinite(x)
    xf = x[finite_mask]
    n = xf.size
    if n == 0:
        return out, state
    ema = np.empty(n)
    last, count = state
    chunk = max(1, int(_MAX_DYNAMIC_RANGE_LOG10 / -math.log10(alpha)))
    for start in range(0, n, chunk):
        seg = xf[start : start + chunk]
        k = np.arange(seg.size, dtype=np.float64)
        pw = alpha**k  # a^k
        # e_k = a^(k+1) e0 + (1-a) a^k sum_{j<=k} a^-j x_j
        acc = np.cumsum(seg / pw)
        e = alpha * pw * last + (1.0 - alpha) * pw * acc
        ema[start : start + seg.size] = e
        last = float(e[-1])
    counts = count + np.arange(1, n + 1, dtype=np.float64)
    out[finite_mask] = ema / (1.0 - alpha**counts)
    return out, (last, count + n)


class SeriesBuffer:
    """One curve: step, wall time and value arrays, plus its smoothed values, grown in place."""

    __slots__ = ("steps", "times", "values", "smooth", "n", "vmin", "vmax", "_alpha",
                 "_ema_state", "_smooth_n")

    def __init__(self, capacity: int = 256) -> None:
        self.steps = np.empty(capacity)
        self.times = np.empty(capacity)
        self.values = np.empty(capacity)
        self.smooth = np.empty(capacity)
        self.n = 0
        # Finite extremes, kept as points arrive: a summary never rescans a million points.
        self.vmin = math.inf
        self.vmax = -math.inf
        self._alpha = -1.0
        self._ema_state: tuple[float, int] = (0.0, 0)
        self._smooth_n = 0

    def extend(self, steps: Iterable[float], times: Iterable[float],
               values: Iterable[float]) -> None:
        s = np.asarray(steps, dtype=np.float64)
        t = np.asarray(times, dtype=np.float64)
        v = np.asarray(values, dtype=np.float64)
        m = s.size
        need = self.n + m
        if need > self.steps.size:
            cap = max(need, 2 * self.steps.size)
            for name in ("steps", "times", "values", "smooth"):
                old = getattr(self, name)
                new = np.empty(cap)
                new[: self.n] = old[: self.n]
                setattr(self, name, new)
        self.steps[self.n : need] = s
        self.times[self.n : need] = t
        self.values[self.n : need] = v
        self.n = need
        finite = v[np.isfinite(v)]
        if finite.size:
            self.vmin = min(self.vmin, float(finite.min()))
            self.vmax = max(self.vmax, float(finite.max()))

    def smoothed(self, alpha: float) -> np.ndarray:
        """The smoothed values; only new points are smoothed unless ``alpha`` changed."""
        if alpha != self._alpha:
            self._alpha, self._ema_state, self._smooth_n = alpha, (0.0, 0), 0
        if self._smooth_n < self.n:
            new, self._ema_state = debiased_ema(
                self.values[self._smooth_n : self.n], alpha, self._ema_state)
            self.smooth[self._smooth_n : self.n] = new
            self._smooth_n = self.n
        return self.smooth[: self.n]


# --- labels and tick text ------------------------------------------------------------------

@dataclass(frozen=True)
class MetricLabel:
    """How a chart names a metric: its title, and its y axis (quantity and unit)."""

    title: str
    axis: str


# Known keys (engine/stages/*.py, remote/run_follower.py's GPU samples). A key not listed gets
# a title from its own words (``metric_label``); rates are fractions 0..1 unless named "%".
METRIC_LABELS: dict[str, MetricLabel] = {
    "sft/loss": MetricLabel("SFT loss", "loss"),
    "sft/lr": MetricLabel("SFT learning rate", "learning rate"),
    "sft/grad_norm": MetricLabel("SFT gradient norm", "gradient norm"),
    "sft/tokens_per_s": MetricLabel("SFT throughput", "tokens / s"),
    "sft/mfu": MetricLabel("SFT model FLOPs utilisation", "MFU (fraction)"),
    "sft/padding_frac": MetricLabel("SFT padding", "padding (fraction)"),
    "sft/memory_gb": MetricLabel("SFT GPU memory", "memory (GB)"),
    "sft/epoch": MetricLabel("SFT epoch", "epoch"),
    "sft/eta_s": MetricLabel("SFT time left", "time left (s)"),
    "rl/reward/mean": MetricLabel("RL mean reward", "reward"),
    "rl/reward/std": MetricLabel("RL reward spread", "reward std"),
    "rl/pass_rate": MetricLabel("RL pass rate", "pass rate (fraction)"),
    "rl/groups/all_fail": MetricLabel("RL groups all failing", "groups (fraction)"),
    "rl/groups/all_pass": MetricLabel("RL groups all passing", "groups (fraction)"),
    "rl/groups/zero_variance": MetricLabel("RL groups without variance", "groups (fraction)"),
    "rl/response_length/mean": MetricLabel("RL mean response length", "length (tokens)"),
    "rl/response_length/max": MetricLabel("RL longest response", "length (tokens)"),
    "rl/truncation_rate": MetricLabel("RL truncated responses", "truncated (fraction)"),
    "rl/kl": MetricLabel("RL KL divergence", "KL (nats)"),
    "rl/entropy": MetricLabel("RL entropy", "entropy (nats)"),
    "rl/lr": MetricLabel("RL learning rate", "learning rate"),
    "rl/grad_norm": MetricLabel("RL gradient norm", "gradient norm"),
    "rl/clip_frac/low": MetricLabel("RL clipped low", "clipped (fraction)"),
    "rl/clip_frac/high": MetricLabel("RL clipped high", "clipped (fraction)"),
    "rl/clip_frac/region": MetricLabel("RL clipped in region", "clipped (fraction)"),
    "rl/time/generate_s": MetricLabel("RL generation time", "time (s)"),
    "rl/time/reward_s": MetricLabel("RL reward time", "time (s)"),
    "rl/time/train_s": MetricLabel("RL training time", "time (s)"),
    "rl/rollout_tokens_per_s": MetricLabel("RL rollout throughput", "tokens / s"),
    "rl/sandbox_timeouts": MetricLabel("RL sandbox timeouts", "timeouts"),
    "synth/json_fail_rate": MetricLabel("Synthesis JSON failures", "failed (fraction)"),
    "synth/tasks_done": MetricLabel("Tasks synthesised", "tasks"),
    "synth/seeds_done": MetricLabel("Seeds done", "seeds"),
    "synth/solutions_done": MetricLabel("Solutions done", "solutions"),
    "synth/candidates_ok_rate": MetricLabel("Candidates accepted", "accepted (fraction)"),
    "synth/hint_leak_rate": MetricLabel("Hint leaks", "leaked (fraction)"),
    "llm/requests_per_s": MetricLabel("LLM request rate", "requests / s"),
    "llm/tokens_per_s": MetricLabel("LLM throughput", "tokens / s"),
    "llm/errors": MetricLabel("LLM errors", "errors"),
    "llm/failed": MetricLabel("LLM failed requests", "requests"),
    "verify/tests_per_s": MetricLabel("Verification test rate", "tests / s"),
    "verify/runs_per_s": MetricLabel("Verification run rate", "runs / s"),
    "verify/accept_rate": MetricLabel("Verification accepted", "accepted (fraction)"),
    "verify/agreement": MetricLabel("Verification agreement", "agreement (fraction)"),
    "verify/timeouts": MetricLabel("Verification timeouts", "timeouts"),
}
# Last word of a GPU sample key (gpu/<host>/<index>/<quantity>, remote/run_follower.py).
GPU_LABELS: dict[str, tuple[str, str]] = {
    "util": ("utilisation", "utilisation (%)"),
    "mem_used": ("memory used", "memory (GiB)"),
}
# First word of a key -> how a title says it.
NAMESPACES = {"sft": "SFT", "rl": "RL", "llm": "LLM", "synth": "synthesis",
              "verify": "verification", "gpu": "GPU", "eval": "eval"}


def metric_label(key: str) -> MetricLabel:
    """The title and y-axis label of a metric key (known keys from the table)."""
    known = METRIC_LABELS.get(key)
    if known is not None:
        return known
    parts = key.split("/")
    if len(parts) == 4 and parts[0] == "gpu" and parts[3] in GPU_LABELS:
        what, axis = GPU_LABELS[parts[3]]
        return MetricLabel(f"GPU {parts[2]} {what} on {parts[1]}", axis)
    last = parts[-1].replace("_", " ")
    # Units the key spells out: "..._per_s" is a rate, "..._s" seconds.
    if last.endswith(" per s"):
        axis = last[: -len(" per s")] + " / s"
    elif last.endswith(" s"):
        axis = last[: -len(" s")] + " (s)"
    else:
        axis = last
    words = [NAMESPACES.get(parts[0], parts[0])] + parts[1:-1] if len(parts) > 1 else []
    text = " ".join([w.replace("_", " ") for w in words if w] + [axis]).strip() or key
    return MetricLabel(text[0].upper() + text[1:], axis)


TICK_SIGNIFICANT = 4  # digits a tick label keeps at most (beyond them: float noise, unreadable)
_PLAIN_RANGE = (1e-3, 1e6)  # magnitudes written as plain decimals; outside, "2e-6"


def _exp_text(v: float, digits: int) -> str:
    mantissa, exponent = f"{v:.{max(digits - 1, 0)}e}".split("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def format_ticks(values: Sequence[float], spacing: float) -> list[str]:
    """Tick labels for ``values`` that lie ``spacing`` apart: as many decimals as the spacing
    needs, at most ``TICK_SIGNIFICANT`` significant digits, the same decimals on every label,
    trailing zeros common to all dropped, "-0" written "0"; ticks closer than the digits
    shown are labelled once, on the tick nearest the written value, the others left blank."""
    vals = [float(v) for v in values]
    finite = [abs(v) for v in vals if math.isfinite(v)]
    if not finite:
        return [format_value(v) for v in vals]
    spacing = abs(float(spacing)) if math.isfinite(spacing) and spacing else 0.0
    # A tick within a millionth of a spacing of zero is zero (1e-17 is noise, not a value).
    vals = [0.0 if spacing and abs(v) < spacing * 1e-6 else v for v in vals]
    biggest = max(abs(v) for v in vals if math.isfinite(v))
    if biggest and not (_PLAIN_RANGE[0] <= biggest < _PLAIN_RANGE[1]):
        digits = TICK_SIGNIFICANT
        if spacing:
            digits = min(digits, max(1, math.floor(math.log10(biggest))
                                     - math.floor(math.log10(spacing)) + 1))
        out = [_exp_text(v, digits) if v and math.isfinite(v) else format_value(v) for v in vals]
    else:
        int_digits = math.floor(math.log10(biggest)) + 1 if biggest else 1
        decimals = max(0, TICK_SIGNIFICANT - int_digits)
        if spacing:
            # Decimals that write the spacing exactly (0.25 needs 2, 5e-3 needs 3).
            needed = next((d for d in range(13) if abs(round(spacing, d) - spacing)
                           <= spacing * 1e-6), 12)
            decimals = min(decimals, needed)
        out = [f"{v:.{decimals}f}" if math.isfinite(v) else format_value(v) for v in vals]
        while decimals and all(s.endswith("0") for s in out if "." in s):
            decimals -= 1
            out = [f"{v:.{decimals}f}" if math.isfinite(v) else format_value(v) for v in vals]
    out = ["0" if s.lstrip("-").strip("0.") == "" and s.startswith("-") else s for s in out]
    # Ticks closer than the digits shown write the same label: keep it on the tick nearest
    # the value it names, so a label never sits beside the wrong height.
    keep = list(out)
    i = 0
    while i < len(out):
        j = i
        while j + 1 < len(out) and out[j + 1] == out[i]:
            j += 1
        if j > i:
            try:
                named = float(out[i])
            except ValueError:
                named = vals[i]
            best = min(range(i, j + 1), key=lambda k: abs(vals[k] - named))
            for k in range(i, j + 1):
                keep[k] = out[i] if k == best else ""
        i = j + 1
    return keep


def format_value(v: float) -> str:
    """One reading (a summary cell, a hover readout): 4 significant digits, "2e-6" style."""
    v = float(v)
    if not math.isfinite(v):
        return str(v)
    if v == 0:
        return "0"
    if not (_PLAIN_RANGE[0] <= abs(v) < _PLAIN_RANGE[1]):
        return _exp_text(v, TICK_SIGNIFICANT)
    text = f"{v:.{TICK_SIGNIFICANT}g}"
    if "e" in text:  # %g chose an exponent for e.g. 12345: write the integer
        text = f"{v:.0f}"
    return text

