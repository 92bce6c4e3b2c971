"""remote/alerts.py: the Monitor's alert rules, without Qt, on events the engine's own writer
wrote and its reader read back."""

from __future__ import annotations

import json
import math

import pytest

from engine.contracts.events import parse_lines
from remote.alerts import STALL_STARTUP_S, RunAlerts

T0 = 1_790_000_000.0


def _events(stage, build):
    """Events of one stage as the engine writes them (one JSON line each, seq from 0), read
    back by the contract's reader."""
    lines = []
    for seq, (t, kind, step, data) in enumerate(build):
        lines.append(json.dumps({"v": 1, "seq": seq, "t": t, "stage": stage, "rank": 0,
                                 "kind": kind, "step": step, "data": data}))
    events, _, _, bad = parse_lines(("\n".join(lines) + "\n").encode())
    assert bad == 0
    return events


def _metric(t, step, **values):
    return (t, "metric", step, {k: v if math.isfinite(v) else ("NaN" if v != v else "Infinity")
                                for k, v in values.items()})


def test_a_healthy_replay_with_long_pauses_raises_nothing_and_a_real_hang_does(tmp_path):
    # Every ~0.1 s a step, with model loads of 45-110 s between phases: the old rule (5x the
    # median gap) fired on each pause; the learned rule fires only on a real hang.
    build, t, step = [], T0, 0
    for pause in (45.0, 110.0, 60.0):
        t += pause
        for _ in range(50):
            t += 0.1
            step += 1
            build.append(_metric(t, step, **{"rl/loss": 1.0}))
    events = _events("rl", build)
    rules = RunAlerts()
    assert rules.observe("r", events) == []
    last = events[-1].t
    assert rules.stalls(now=last + 1.5 * 110 - 1) == []  # within its own longest pause x1.5
    hung = rules.stalls(now=last + 1.5 * 110 + 1)
    assert len(hung) == 1 and hung[0].level == "warning"
    assert "run r / rl: stalled" in hung[0].text and "longest pause so far was 1.8 min" in \
        hung[0].text
    assert rules.stalls(now=last + 10_000) == []  # once per stall


def test_a_stage_that_has_just_started_gets_the_startup_allowance(tmp_path):
    events = _events("sft", [_metric(T0, 0, **{"sft/loss": 2.0})])
    rules = RunAlerts()
    rules.observe("r", events)
    assert rules.stalls(now=T0 + STALL_STARTUP_S - 1) == []
    assert "since it started" in rules.stalls(now=T0 + STALL_STARTUP_S + 1)[0].text


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_alerts_once_per_run_and_key(tmp_path, bad):
    build = [_metric(T0 + i, i, **{"sft/loss": 1.0}) for i in range(3)]
    build += [_metric(T0 + 3, 3, **{"sft/loss": bad}), _metric(T0 + 4, 4, **{"sft/loss": bad})]
    alerts = RunAlerts().observe("r", _events("sft", build))
    assert [a.level for a in alerts] == ["error"]
    assert f"sft/loss is {bad} at step 3" in alerts[0].text


def test_an_exploding_loss_alerts_against_the_median_of_its_window(tmp_path):
    build = [_metric(T0 + i, i, **{"sft/loss": 1.0 + 0.01 * (i % 3)}) for i in range(25)]
    build += [_metric(T0 + 25, 25, **{"sft/loss": 9.0}), _metric(T0 + 26, 26, **{"sft/loss": 55.0})]
    alerts = RunAlerts().observe("r", _events("sft", build))
    assert len(alerts) == 1 and "sft/loss exploded at step 26: 55 > 10x the median" in \
        alerts[0].text


def test_failed_stages_and_engine_alerts_pass_through_and_finished_stages_never_stall(tmp_path):
    build = [(T0, "stage", None, {"status": "started", "reason": None, "summary": None}),
             (T0 + 1, "alert", None, {"level": "warning", "code": "json_fail",
                                      "message": "JSON failure rate 40%"}),
             (T0 + 2, "stage", None, {"status": "failed", "reason": "CUDA OOM", "summary": None})]
    rules = RunAlerts()
    alerts = rules.observe("r", _events("tasks", build))
    assert [(a.level, a.text) for a in alerts] == [
        ("warning", "run r / tasks: json_fail: JSON failure rate 40%"),
        ("error", "run r / tasks: stage failed: CUDA OOM")]
    assert rules.stalls(now=T0 + 1e6) == []
