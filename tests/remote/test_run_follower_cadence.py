"""remote/run_follower.py: events are polled every poll, job status on its own slower cadence
(a slow squeue must not hold up the charts), and at once when a stage ends. A real detached
engine on "This computer", its features stage hanging on an LLM that never answers."""

from __future__ import annotations

import time

import pytest
import yaml

from engine.contracts.config import load_config
from engine.contracts.rundir import ASSETS_DIR
from remote.launch import Launcher
from remote.profiles import ProfileStore
from remote.run_follower import PollRequest, RunFollower
from remote.run_registry import RunRegistry

SMOKE = ASSETS_DIR / "presets" / "smoke-cpu.yaml"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def desktop(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHSMITH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SYNTHSMITH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))  # "This computer"'s runs
    return tmp_path


@pytest.mark.slow
def test_status_is_asked_every_status_interval_and_events_every_poll(desktop, hanging_llm):
    data = yaml.safe_load(SMOKE.read_text())
    data["llms"]["generator"] = {"backend": "openai", "base_url": hanging_llm, "model": "m",
                                 "timeout_s": 3600, "max_retries": 0}
    launcher = Launcher(ProfileStore(), RunRegistry())
    clock = Clock()
    follower = RunFollower(launcher.registry, clock=clock, status_every_s=10.0)
    launcher.launch(load_config(SMOKE).model_validate(data), stages=["seeds", "features"],
                    run_id="cadence")
    try:
        refreshed, polled = [], []
        deadline = time.monotonic() + 120
        seeds_done, seeds_ended_at = False, None
        while time.monotonic() < deadline and len(polled) < 12:
            result = follower.poll(launcher, PollRequest())
            polled += result.polled
            refreshed.append("cadence" in result.refreshed)
            view = next(v for v in result.runs if v.run_id == "cadence")
            done = any(s.stage == "seeds" and s.status == "completed" for s in view.stages)
            if done and not seeds_done:
                seeds_ended_at = len(refreshed) - 1
            seeds_done = seeds_done or done
            clock.now += 2.0  # a poll every 2 s of the follower's clock
            time.sleep(0.3)
        assert seeds_done, "seeds never completed"
        assert polled.count("cadence") == len(refreshed) == 12  # events: every poll
        # status: the first poll, the poll whose events said seeds ended, then every 10 s of
        # the clock (5 polls) while features hangs
        asked = [i for i, r in enumerate(refreshed) if r]
        k = seeds_ended_at
        assert 0 < k < 7, refreshed
        assert asked == [0, k, *range(k + 5, 12, 5)], (asked, k)
        forced = follower.poll(launcher, PollRequest(force=True))
        assert "cadence" in forced.refreshed  # Refresh asks at once
    finally:
        launcher.cancel("cadence")
        launcher.close()
