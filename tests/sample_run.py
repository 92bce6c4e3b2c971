"""A small run dir for the data-browser tests: a real store and real rollout files.

    run = build_sample_run(tmp_path / "run")
    run.store_path            # <run>/data/store.sqlite, written by engine.store.Store
    run.ids["golden"]         # ids of the interesting rows

The store has eight tasks over styles, statuses, reject reasons and agreements; task 1
(title with non-ASCII, quotes and ``$HOME``) has lineage (config -> feature -> seed), three
solutions (golden, wrong, rejected), three tests (one of 6000 chars) and verdicts. Task 2 has
no golden solution. Rollouts (engine/rollouts.py) for steps 1 and 2: step 2 has three groups
of three for task 1 (mixed rewards), task 2 (all fail) and task 1 again (all pass); step 1
has task 1's first group and a group for the seed problem (RL task id = minus the seed id,
its reference solution ``SEED_CODE`` stands in for a golden one).
Used by tests/engine/test_store_rpc.py, tests/remote/test_store_client.py and
tests/gui/test_rollouts_view.py.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.rollouts import RolloutWriter, build_step_records, rollouts_dir
from engine.store import SeedRecord, Store, Verdict

TITLE_1 = "Grid paths \u00e9\u00e8 \u2014 'quoted' \"double\" $HOME `tick`"
GOLDEN_CODE = "def main():\n    n = int(input())\n    print(n * 2)\n\n\nmain()\n"
BIG_INPUT = "1 2 3\n" * 1000  # 6000 chars
SEED_CODE = "n = int(input())\nprint(2 * n)\n"


@dataclass
class RolloutStandIn:  # what build_step_records reads of engine.train.reward.Rollout
    task_id: int
    text: str
    truncated: bool = False


@dataclass
class ScoreStandIn:  # ... and of engine.train.reward.RolloutReward
    reward: float
    passed: int
    total: int
    statuses: tuple[str, ...]
    code: str | None
    language: str | None = "python"
    reason: str | None = None


@dataclass
class SampleRun:
    root: Path
    store_path: Path
    ids: dict[str, int] = field(default_factory=dict)

    @property
    def rollouts(self) -> Path:
        return rollouts_dir(self.root)


# (code, passed of 2) per rollout; reward = 2.5 x passed, -2 without code.
STEP2_GROUPS = [
    (1, [(GOLDEN_CODE, 2), ("n = int(input())\nprint(n + n)\n", 2),
         ("def main():\n    n = int(input())\n    print(n * 3)\n\n\nmain()\n", 0)]),
    (2, [(None, 0), ("print(0)\n", 0), ("print(1)\n", 0)]),
    (1, [(GOLDEN_CODE, 2), (GOLDEN_CODE, 2), ("print(int(input()) * 2)\n", 2)]),
]


def _batch(groups: list[tuple[int, list[tuple[str | None, int]]]]):
    rollouts, scores = [], []
    for task_id, samples in groups:
        for code, passed in samples:
            text = f"```python\n{code}```" if code else "I think the answer is 42."
            rollouts.append(RolloutStandIn(task_id, text, truncated=code is None))
            statuses = ("ok",) * passed + ("wrong",) * (2 - passed)
            scores.append(ScoreStandIn(2.5 * passed if code else -2.0, passed, 2 if code else 0,
                                 statuses if code else (), code,
                                 reason=None if code else "no_code_block: no code block"))
    return rollouts, scores


def build_sample_run(root: Path) -> SampleRun:
    run = SampleRun(root, root / "data" / "store.sqlite")
    with Store(run.store_path) as s:
        s.add_seeds([SeedRecord("f.jsonl", "f.jsonl:1", "Shortest paths on a grid.",
                                solutions=[SEED_CODE])])
        seed = next(s.iter_seeds()).id
        bfs = s.add_feature(["algorithms", "graph", "bfs"])
        s.link_seed_features(seed, [bfs])
        cfg, _ = s.add_feature_config({"algorithms": ["bfs"]}, shape=(3, 1), n_leaves=1,
                                      rng_seed=1)
        s.add_lineage("feature_config", cfg, "feature", bfs, "contains")
        specs = [  # style, status, reason, agreement
            ("codeforces", "accepted", None, 1.0), ("atcoder", "accepted", None, 0.8),
            ("leetcode", "rejected", "no_agreement", 0.2),
            ("codeforces", "rejected", "no_agreement", 0.4),
            ("atcoder", "rejected", "too_few_tests", None), ("leetcode", "pending", None, None),
            ("codeforces", "accepted", None, 0.6), ("atcoder", "pending", None, None),
        ]
        for i, (style, status, reason, agreement) in enumerate(specs, start=1):
            tid = s.add_task(style=style, title=TITLE_1 if i == 1 else f"Task {i} grid",
                             statement=f"# Task {i}\n\nSolve **grid {i}** quickly. \u00fc",
                             selected_features={"algorithms": ["bfs"]},
                             integration_strategy="combine", config_id=cfg if i == 1 else None,
                             created_at=1000.0 + i / 3)
            if i == 1:
                golden = s.add_solution(tid, 0, code=GOLDEN_CODE, reasoning="think")
                wrong = s.add_solution(tid, 1, code="print(41)\n")
                rejected = s.add_solution(tid, 2, code=None, status="rejected",
                                          reject_reason="no_code_block")
                t0 = s.add_test(tid, 0, input="1\n", kind="sample", source="direct",
                                expected_output="2\n")
                t1 = s.add_test(tid, 1, input=BIG_INPUT, kind="stress", source="generator",
                                expected_output="12\n", meta={"gen": "random"})
                t2 = s.add_test(tid, 2, input="0\n", kind="edge", source="direct",
                                expected_output="0\n")
                s.add_verdicts([Verdict(golden, t, "ok", 0.01, 9000) for t in (t0, t1, t2)]
                               + [Verdict(wrong, t0, "wrong", 0.01, 8000),
                                  Verdict(rejected, t0, "compile_error")])
                s.set_task_result(tid, status, reason, agreement, golden_solution_id=golden)
                run.ids.update(task=tid, golden=golden, wrong=wrong, big_test=t1)
            elif status != "pending":
                s.set_task_result(tid, status, reason, agreement)
        run.ids.update(seed=seed, feature=bfs, config=cfg)

    writer = RolloutWriter(run.rollouts, rank=0)
    seed_group = (-run.ids["seed"], [("n = int(input())\nprint(n + n)\n", 2)] * 3)
    writer.write_step(1, build_step_records(1, 0, *_batch([STEP2_GROUPS[0], seed_group]), 3))
    writer.write_step(2, build_step_records(2, 0, *_batch(STEP2_GROUPS), 3))
    return run
