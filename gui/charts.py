"""Qt-free chart data for the Monitor panel: growable series buffers, debiased EMA, CSV rows.

``SeriesBuffer`` holds one curve (one run, one metric key) as numpy arrays that grow by
doubling, so appending a batch is amortised O(batch) and a redraw hands pyqtgraph array views
with no copy. ``debiased_ema`` is TensorBoard's smoothing (``ema = a*ema + (1-a)*x``, divided
by ``1 - a**n``), vectorised in chunks so a million points smooth in milliseconds, and resumable
from a saved state so a live curve only smooths its new points. ``write_series_csv`` is the slow
half of a CSV export, to run on the worker (widgets never do I/O).

Left out: out-of-order steps (points are kept in arrival order; a resumed run that repeats
steps draws them again) and any on-disk cache of series.
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable

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

    __slots__ = ("steps", "times", "values", "smooth", "n", "_alpha", "_ema_state", "_smooth_n")

    def __init__(self, capacity: int = 256) -> None:
        self.steps = np.empty(capacity)
        self.times = np.empty(capacity)
        self.values = np.empty(capacity)
        self.smooth = np.empty(capacity)
        self.n = 0
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


def write_series_csv(path: str | os.PathLike[str],
                     series: Iterable[tuple[str, str, np.ndarray, np.ndarray, np.ndarray]]) -> int:
    """Write ``run,key,step,t,value`` rows (one per point); returns the number of rows."""
    rows = 0
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["run", "key", "step", "t", "value"])
        for run, key, steps, times, values in series:
            for s, t, v in zip(steps.tolist(), times.tolist(), values.tolist(), strict=True):
                w.writerow([run, key, int(s), repr(t), repr(v)])
                rows += 1
    return rows
