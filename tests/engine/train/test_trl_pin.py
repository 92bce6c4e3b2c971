"""The rl stage overrides TRL internals: it runs only on the TRL releases it was read against,
and says so loudly (before any model loads) on another."""

from __future__ import annotations

import types

import pytest

from engine.context import StageError
from engine.stages.rl import TRL_TESTED, check_trl


def test_the_installed_trl_is_one_the_overrides_were_checked_against():
    trl = pytest.importorskip("trl", reason="the headless job installs no TRL")

    assert check_trl() == trl.__version__
    assert ".".join(trl.__version__.split(".")[:2]) in TRL_TESTED


def test_an_unknown_trl_release_is_refused_with_the_fix():
    trl = pytest.importorskip("trl", reason="the headless job installs no TRL")

    newer = types.SimpleNamespace(__version__="1.99.0", GRPOTrainer=trl.GRPOTrainer)
    with pytest.raises(StageError, match=r"this node has TRL 1\.99\.0: pip install 'trl==1\.16\.\*'"):
        check_trl(newer)


def test_a_changed_private_method_is_refused_even_on_a_known_release():
    trl = pytest.importorskip("trl", reason="the headless job installs no TRL")

    class Changed(trl.GRPOTrainer):
        def _generate(self, prompts, images=None):  # a new parameter upstream
            return super()._generate(prompts)

    moved = types.SimpleNamespace(__version__=trl.__version__, GRPOTrainer=Changed)
    with pytest.raises(StageError, match=r"GRPOTrainer\._generate is \(self, prompts, images\)"):
        check_trl(moved)

    class Gone:
        pass

    with pytest.raises(StageError, match="_generate is missing"):
        check_trl(types.SimpleNamespace(__version__=trl.__version__, GRPOTrainer=Gone))


def test_the_pins_in_pyproject_match_the_checked_releases():
    import tomllib
    from pathlib import Path

    extras = tomllib.loads((Path(__file__).resolve().parents[3] / "pyproject.toml").read_text())[
        "project"]["optional-dependencies"]
    for name in ("train", "local", "test"):
        pins = [d for d in extras[name] if d.startswith("trl")]
        assert pins == ["trl>=1.16,<1.17"], (name, pins)
    assert TRL_TESTED == ("1.16",)
