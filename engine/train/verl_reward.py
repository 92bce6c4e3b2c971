"""verl's reward for SynthSmith's RL export: the rl stage's rule, judged in our sandbox.

verl loads this file by path (it need not be importable; see "Loading" below)::

    python3 -m verl.trainer.main_ppo \\
        data.train_files=exports/rl.parquet data.val_files=exports/rl_val.parquet \\
        custom_reward_function.path=<synthsmith>/engine/train/verl_reward.py \\
        custom_reward_function.name=compute_score \\
        +custom_reward_function.reward_kwargs.judge_time_limit_s=10     # optional

verl's reward managers call ``compute_score(data_source=..., solution_str=...,
ground_truth=..., extra_info=...)`` once per response (the ``naive`` manager, and the
reward loop from worker threads); with ``reward_model.reward_manager=batch`` name
``compute_score_batch`` instead: it takes the lists (``data_sources=``, ``solution_strs=``,
``ground_truths=``, ``extra_infos=``) and sends every sandbox run of the batch at once.

The rule is ``engine/train/reward.py``'s (``RewardJudge``, SYNTHSMITH.md §8), not a copy: no
single parseable code block -> ``no_code_reward`` (-2); else up to ``reward_tests_per_call``
(10) tests sampled from ``ground_truth`` (JSON ``{"inputs": [...], "outputs": [...]}``) run in
the sandbox and the reward is ``reward_scale`` (5) x the share passed (``reward: fraction``)
or ``reward_scale`` only when all pass (``all_pass``). The answer is returned as a dict,
the same keys for every row (verl collects them per key): ``score`` (the reward), ``acc``
(1.0 when every sampled test passed), ``passed``, ``total`` (tests run), ``has_code`` (1.0 /
0.0) and ``timeouts``.

Rows judged here: ``data_source`` "synthsmith" and the names verl's built-in scorer gives to
``prime_code`` ("codecontests", "apps", "codeforces", "taco": ``curate.rl_data_source``), so
naming this function overrides verl's unsandboxed scorer for them too. A row of any other
data source (a math set mixed in) goes to verl's ``default_compute_score`` when verl is
importable, else raises ``NotImplementedError``.

Settings, each the ``rl`` config field of the same name (``compare`` is ``verify.compare``),
validated by the config schema; later sources win:
1. the schema's defaults (reward fraction, 10 tests, -2, x5, 10 s CPU, 256 MB, compare
   "whitespace"), exactly what the rl stage uses with a default config;
2. environment variables ``SYNTHSMITH_RL_<NAME>`` (``SYNTHSMITH_RL_JUDGE_TIME_LIMIT_S=5``):
   for every process of a job at once (Ray: ``runtime_env.env_vars``);
3. keyword arguments: verl's ``custom_reward_function.reward_kwargs`` (or
   ``reward_model.reward_kwargs`` with the batch manager) pass them to every call.
``reward``, ``reward_tests_per_call``, ``no_code_reward``, ``reward_scale``,
``judge_time_limit_s``, ``judge_memory_mb``, ``compare``, ``seed`` (test sampling, 0) and
``sandbox_workers`` (sandbox processes per Python process; default min(cores, 16)). Other
keyword arguments (verl's own, e.g. ``reward_router_address``) are ignored. ``extra_info``
is row data and never changes settings: verl adds its own keys to it, and a dataset should
not be able to loosen the judge.

Test sampling: a row with more tests than ``reward_tests_per_call`` gets a sample seeded by
(seed, a hash of the ground truth, a hash of the answer): the same answer to the same task is
always judged on the same tests, different answers on different ones (the rl stage varies
the sample per step and rollout instead; verl passes neither).

Sandbox: one ``SandboxPool`` per process, started on the first call (a second or two) and
shared by every thread; a forked child starts its own. ``SandboxUnavailable`` propagates:
generated code never runs outside the sandbox, so a node without bubblewrap fails loudly.

Loading: verl imports this file by path under a made-up module name, in a process where the
``engine`` package may not be importable. So before anything else, unless ``import engine``
already finds the package this file sits in (``engine/`` two levels up: a checkout or an
uploaded engine bundle), that package is registered as ``engine`` in ``sys.modules`` from its
folder. ``sys.path`` is left alone, so the repository's other folders (``gui/``, ``remote/``,
``tests/``) never shadow a module of verl's process; an unrelated ``engine`` found on
``sys.path`` loses to ours in this process. An ``engine`` already imported from elsewhere
raises ``ImportError`` (two engines in one process would judge with one and label with the
other). The engine's runtime needs pydantic and PyYAML, which verl brings.

Leaves out: the truncation flag (verl does not pass it: a truncated answer with an unclosed
block is "no code"), float tolerance (as the rl stage), async scoring.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path


def _engine_on_path() -> None:
    """Make ``import engine`` find the engine this file belongs to (module docstring)."""
    mine = Path(__file__).resolve().parents[1]  # .../engine/train/verl_reward.py
    loaded = sys.modules.get("engine")
    if loaded is None:
        found = importlib.util.find_spec("engine")
        if found is not None and found.origin and Path(found.origin).resolve().parent == mine:
            return  # importable as it is
        # Registered by hand rather than by putting the repository on sys.path: nothing else
        # there (gui/, remote/, tests/) may shadow a module of the host process.
        spec = importlib.util.spec_from_file_location(
            "engine", mine / "__init__.py", submodule_search_locations=[str(mine)])
        module = importlib.util.module_from_spec(spec)
        sys.modules["engine"] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules["engine"]
            raise
        return
    where = Path(getattr(loaded, "__file__", None) or "").resolve().parent
    if where != mine:
        raise ImportError(f"verl_reward.py belongs to the engine in {mine}, but another "
                          f"package named 'engine' is already imported from {where}: load "
                          "the reward in a process without it")


_engine_on_path()

import atexit  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import threading  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from typing import Any  # noqa: E402

from engine.schema import RL_DATA_SOURCES, RlConfig, VerifyConfig  # noqa: E402
from engine.train.reward import (  # noqa: E402
    RewardJudge,
    RewardSpec,
    Rollout,
    RolloutReward,
    parse_ground_truth,
)

__all__ = ["ENV_PREFIX", "JUDGED_SOURCES", "compute_score", "compute_score_batch",
           "reward_spec"]

ENV_PREFIX = "SYNTHSMITH_RL_"
JUDGED_SOURCES = frozenset(RL_DATA_SOURCES)
RL_FIELDS = ("reward", "reward_tests_per_call", "no_code_reward", "reward_scale",
             "judge_time_limit_s", "judge_memory_mb")
OTHER_SETTINGS = ("compare", "seed", "sandbox_workers")
MAX_DEFAULT_WORKERS = 16


# ---------------------------------------------------------------------------------------------
# Settings


def _setting(name: str, kwargs: Mapping[str, Any]) -> Any:
    """A setting from the keyword arguments, else the environment, else None."""
    if name in kwargs and kwargs[name] is not None:
        return kwargs[name]
    return os.environ.get(ENV_PREFIX + name.upper())


def reward_spec(**kwargs: Any) -> tuple[RewardSpec, int]:
    """(the RewardSpec, sandbox workers) from defaults, environment and ``kwargs``."""
    values = {k: v for k in RL_FIELDS if (v := _setting(k, kwargs)) is not None}
    try:
        rl = RlConfig.model_validate(values)
        compare = VerifyConfig.model_validate(
            {} if (c := _setting("compare", kwargs)) is None else {"compare": c}).compare
        seed = int(_setting("seed", kwargs) or 0)
        workers = _setting("sandbox_workers", kwargs)
        workers = int(workers) if workers is not None else \
            min(os.cpu_count() or 1, MAX_DEFAULT_WORKERS)
    except ValueError as exc:  # pydantic's ValidationError is a ValueError
        raise ValueError(f"synthsmith reward settings (reward_kwargs or {ENV_PREFIX}* "
                         f"environment variables): {exc}") from None
    if workers < 1:
        raise ValueError(f"sandbox_workers must be at least 1 (got {workers})")
    return RewardSpec.from_config(rl, compare=compare, seed=seed), workers


# ---------------------------------------------------------------------------------------------
# The process's sandbox pool

_lock = threading.Lock()
_pool: Any = None
_pool_key: tuple[int, int] | None = None  # (pid, workers)


def _shared_pool(workers: int) -> Any:
    """One SandboxPool per process (and per worker count), started on first use."""
    global _pool, _pool_key
    from engine.verify.sandbox import SandboxPool

    with _lock:
        key = (os.getpid(), workers)
        if _pool is None or _pool_key != key:
            if _pool is not None and _pool_key[0] == key[0]:
                _pool.close()  # same process, another size: replace it
            _pool = SandboxPool(workers)  # SandboxUnavailable propagates
            _pool_key = key
        return _pool


def _close_pool() -> None:
    global _pool
    with _lock:
        if _pool is not None and _pool_key is not None and _pool_key[0] == os.getpid():
            _pool.close()
        _pool = None


atexit.register(_close_pool)


# ---------------------------------------------------------------------------------------------
# Scoring


def _number(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8", "replace")).digest()[:6], "big")


def _rollout(solution_str: str, ground_truth: Any) -> Rollout:
    inputs, outputs = parse_ground_truth(ground_truth)
    truth_text = ground_truth if isinstance(ground_truth, str) else repr(ground_truth)
    return Rollout(task_id=_number(truth_text), text=str(solution_str), inputs=inputs,
                   outputs=outputs, step=0, sample=_number(str(solution_str)))


def _result(r: RolloutReward) -> dict[str, float | int]:
    return {"score": float(r.reward), "acc": float(r.all_passed), "passed": r.passed,
            "total": r.total, "has_code": float(r.has_code), "timeouts": r.timeouts}


def _verl_default(data_source: str, solution_str: str, ground_truth: Any,
                  extra_info: Any, kwargs: Mapping[str, Any]) -> Any:
    """A row that is not ours: verl's own scorer, when verl is here."""
    try:
        from verl.utils.reward_score import default_compute_score
    except ImportError:
        raise NotImplementedError(
            f"synthsmith's compute_score judges data_source {sorted(JUDGED_SOURCES)}, not "
            f"{data_source!r}, and verl is not importable here to score it") from None
    own = set(RL_FIELDS) | set(OTHER_SETTINGS)
    return default_compute_score(data_source, solution_str, ground_truth, extra_info,
                                 **{k: v for k, v in kwargs.items() if k not in own})


def compute_score(data_source: str, solution_str: str, ground_truth: Any,
                  extra_info: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
    """verl's reward function for one response (module docstring): a dict with ``score``."""
    if data_source not in JUDGED_SOURCES:
        return _verl_default(data_source, solution_str, ground_truth, extra_info, kwargs)
    spec, workers = reward_spec(**kwargs)
    judge = RewardJudge(spec, pool=_shared_pool(workers))
    (reward,) = judge.score([_rollout(solution_str, ground_truth)])
    return _result(reward)


def compute_score_batch(data_sources: Sequence[str], solution_strs: Sequence[str],
                        ground_truths: Sequence[Any],
                        extra_infos: Sequence[Mapping[str, Any] | None] | None = None,
                        **kwargs: Any) -> list[Any]:
    """verl's batch reward function: one result per response, in order; every sandbox run of
    the batch's own rows goes to the pool at once."""
    n = len(solution_strs)
    extra_infos = list(extra_infos) if extra_infos is not None else [None] * n
    ours = [i for i in range(n) if data_sources[i] in JUDGED_SOURCES]
    out: list[Any] = [None] * n
    if ours:
        spec, workers = reward_spec(**kwargs)
        judge = RewardJudge(spec, pool=_shared_pool(workers))
        rewards = judge.score([_rollout(solution_strs[i], ground_truths[i]) for i in ours])
        for i, r in zip(ours, rewards, strict=True):
            out[i] = _result(r)
    for i in range(n):
        if out[i] is None:
            out[i] = _verl_default(data_sources[i], solution_strs[i], ground_truths[i],
                                   extra_infos[i], kwargs)
    return out
