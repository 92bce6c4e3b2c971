"""Benchmark: task-table pages of the dataset store at 200k tasks.

Run: ``.venv/bin/python tests/bench/store_query.py [--tasks 200000] [--keep DIR]``

Fills a store in a temp dir with synthetic tasks (statements of ~150-330 words: sentences of
Zipf-drawn words mixed with competitive-programming sentence templates; random styles, statuses,
reject reasons, agreement and feature categories), then times ``Store.query_tasks`` pages of
100 rows: first / middle / last page (by keyset cursor and by offset) for each sort, each
filter, full-text searches (common word, mid word, rare word, phrase), filter + search and
search sorted by agreement. Every page also computes its ``total``. Prints ONE JSON line.

Target: every page < 0.1 s on a 2-core machine. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

from engine.store import Store, TaskQuery

CATEGORIES = [
    "problem_domain", "algorithmic_paradigm", "algorithms", "mathematics",
    "problem_solving_strategies", "data_structures", "coding_techniques",
    "complexity_analysis", "optimization_techniques", "programming_language", "summary",
]
STYLES = [("codeforces", 0.7), ("leetcode", 0.15), ("atcoder", 0.15)]
REASONS = [("low_agreement", 0.6), ("holdout_failed", 0.25), ("no_solutions", 0.145),
           ("generator_crash", 0.005)]
TEMPLATES = [
    "The first line contains two integers n and m.",
    "Each of the next n lines contains a string of length m.",
    "Print a single integer, the answer to the problem.",
    "It is guaranteed that the sum of n over all test cases does not exceed the limit.",
    "If there are several answers, print any of them.",
    "Output the minimum number of operations needed.",
]
RARE_WORD = "zyxolotl"  # planted in ~40 statements


def make_vocab(rng: random.Random, n: int = 6000) -> tuple[list[str], list[float]]:
    common = ("the of and a to in is you that it for on are with as be at by this an or from "
              "array integer string tree graph query each number value sum line test case print "
              "output input given find minimum maximum operation between two first next all")
    base = common.split()
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = list(dict.fromkeys(base))
    while len(words) < n:
        w = "".join(rng.choice(letters) for _ in range(rng.randint(3, 10)))
        if w != RARE_WORD and w not in words:
            words.append(w)
    weights = [1.0 / (rank + 1) ** 1.05 for rank in range(len(words))]
    return words, weights


def sentence_pool(rng: random.Random, words: list[str], cum: list[float], n: int = 30_000) -> list[str]:
    """Sentences of 8-20 Zipf-drawn words, plus the fixed templates at ~12% of the pool."""
    pool = []
    for _ in range(n):
        body = rng.choices(words, cum_weights=cum, k=rng.randint(8, 20))
        pool.append(" ".join(body).capitalize() + ".")
    pool += TEMPLATES * (n // 8 // len(TEMPLATES))
    return pool


def statement(rng: random.Random, pool: list[str]) -> str:
    """~150-330 words: 11-23 sentences from the pool (a Codeforces statement's length)."""
    return " ".join(rng.choices(pool, k=rng.randint(11, 23)))


def fill(store: Store, n: int, seed: int = 7) -> float:
    rng = random.Random(seed)
    words, weights = make_vocab(rng)
    cum, acc = [], 0.0
    for w in weights:
        acc += w
        cum.append(acc)
    pool = sentence_pool(rng, words, cum)
    rare_ids = set(rng.sample(range(n), 40))
    t0 = time.perf_counter()
    base_time = 1.76e9
    batch = 5000
    for start in range(0, n, batch):
        with store.transaction():
            for i in range(start, min(n, start + batch)):
                text = statement(rng, pool)
                if i in rare_ids:
                    text += f" The {RARE_WORD} appears."
                cats = rng.sample(CATEGORIES, rng.randint(2, 5))
                tid = store.add_task(
                    style=rng.choices([s for s, _ in STYLES], [w for _, w in STYLES])[0],
                    title=" ".join(rng.choices(words[40:400], k=rng.randint(2, 5))).title(),
                    statement=text,
                    selected_features={c: ["x"] for c in cats},
                    created_at=base_time + i * 3.0 + rng.random(),
                )
                r = rng.random()
                if r < 0.3:
                    continue  # pending
                if r < 0.7:
                    store.set_task_result(tid, "accepted", None, round(rng.uniform(0.6, 1.0), 3))
                else:
                    reason = rng.choices([x for x, _ in REASONS], [w for _, w in REASONS])[0]
                    store.set_task_result(tid, "rejected", reason, round(rng.uniform(0.0, 0.7), 3))
    store.optimize()
    return time.perf_counter() - t0


def timed(store: Store, q: TaskQuery) -> tuple[float, object]:
    t0 = time.perf_counter()
    page = store.query_tasks(q)
    return time.perf_counter() - t0, page


def positions(store: Store, base: dict) -> dict[str, float]:
    """Time first, middle (cursor and offset) and last (from_end and offset) pages."""
    out = {}
    dt, first = timed(store, TaskQuery(**base))
    out["first"] = dt
    total = first.total or 0
    mid = max(0, (total // 2 // 100) * 100)
    last = max(0, ((total - 1) // 100) * 100)
    dt, mid_page = timed(store, TaskQuery(**base, offset=mid))
    out["offset_middle"] = dt
    if mid_page.prev_cursor is not None:
        # Rows after the one before the middle page: the keyset route to the same page.
        probe = store.query_tasks(TaskQuery(**base, offset=mid - 1, limit=1, with_total=False))
        out["keyset_middle"], kp = timed(
            store, TaskQuery(**base, after=probe.next_cursor or probe.prev_cursor)
        )
        assert [r.id for r in kp.rows] == [r.id for r in mid_page.rows], "keyset != offset"
    out["offset_last"], _ = timed(store, TaskQuery(**base, offset=last))
    out["from_end"], _ = timed(store, TaskQuery(**base, from_end=True))
    if first.next_cursor is not None:
        out["keyset_next"], _ = timed(store, TaskQuery(**base, after=first.next_cursor))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=200_000)
    ap.add_argument("--keep", help="fill (or reuse) the store in this folder instead of a temp dir")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        path = folder / "store.sqlite"
        reuse = path.exists()
        store = Store(path)
        fill_s = 0.0 if reuse else fill(store, args.tasks)
        n_tasks = store.counts()["tasks"]
        common, mid_word = "the", "sum"
        cases: dict[str, dict] = {
            "sort_id": {}, "sort_id_desc": {"descending": True},
            "sort_agreement": {"sort": "agreement"},
            "sort_agreement_desc": {"sort": "agreement", "descending": True},
            "sort_created": {"sort": "created_at"}, "sort_style": {"sort": "style"},
            "filter_style": {"style": "atcoder"},
            "filter_status": {"status": "accepted"},
            "filter_reason": {"reject_reason": "holdout_failed"},
            "filter_reason_rare": {"reject_reason": "generator_crash"},
            "filter_agreement": {"agreement_min": 0.4, "agreement_max": 0.6},
            "filter_category": {"category": "mathematics"},
            "filter_combo": {"status": "rejected", "category": "algorithms",
                             "agreement_max": 0.5, "sort": "agreement"},
            "filter_status_by_agreement": {"status": "accepted", "sort": "agreement",
                                           "descending": True},
            "search_common": {"search": common},
            "search_mid": {"search": mid_word},
            "search_rare": {"search": RARE_WORD},
            "search_phrase": {"search": '"two integers n and m"'},
            "search_operators": {"search": 'sum OR "array -tree* NEAR('},
            "search_common_by_agreement": {"search": common, "sort": "agreement"},
            "search_phrase_by_created_desc": {"search": '"print a single integer"',
                                              "sort": "created_at", "descending": True},
            "filter_search": {"search": "query", "status": "accepted", "category": "algorithms"},
            "filter_rare_search_common": {"search": common, "reject_reason": "generator_crash"},
            "filter_search_by_agreement": {"search": mid_word, "style": "leetcode",
                                           "sort": "agreement"},
        }
        per_case: dict[str, float] = {}
        per_pos: dict[str, float] = {}
        all_lat: list[float] = []
        totals: dict[str, int | None] = {}
        for name, base in cases.items():
            res = positions(store, base)
            per_case[name] = round(max(res.values()), 4)
            for k, v in res.items():
                per_pos[k] = max(per_pos.get(k, 0.0), v)
            all_lat += res.values()
            totals[name] = store.query_tasks(TaskQuery(**base, limit=1)).total
        no_total, _ = timed(store, TaskQuery(search=common, sort="agreement", with_total=False))
        size_mb = path.stat().st_size / 2**20
        store.close()
        worst = max(per_case, key=per_case.get)
        print(json.dumps({
            "tasks": n_tasks,
            "fill_s": round(fill_s, 1),
            "db_mb": round(size_mb, 1),
            "pages_timed": len(all_lat),
            "max_page_latency_s": round(max(all_lat), 4),
            "p50_page_latency_s": round(statistics.median(all_lat), 4),
            "p95_page_latency_s": round(sorted(all_lat)[int(0.95 * (len(all_lat) - 1))], 4),
            "worst_case": worst,
            "max_by_query": per_case,
            "max_by_position": {k: round(v, 4) for k, v in per_pos.items()},
            "search_common_by_agreement_without_total_s": round(no_total, 4),
            "totals": totals,
        }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
