"""The feature tree: extraction normalisation, the paper's merge rules, tree algebra, and the
reproducible samplers for evolution subtrees and task configs (SYNTHSMITH.md §1–3)."""

from __future__ import annotations

import copy
import os
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from engine.store import canonical_json, join_feature_path, split_feature_path
from engine.synth.feature_tree import (
    CATEGORIES,
    LANGUAGE_ROOTS,
    SampledConfig,
    Tree,
    config_rng_seed,
    count_leaves,
    extraction_to_tree,
    feature_weight,
    item_rng,
    json_to_tree,
    leaf_paths,
    merge_trees,
    new_paths,
    node_paths,
    normalize_category,
    normalize_name,
    sample_children,
    sample_config,
    sample_configs,
    sample_subtree,
    tree_from_paths,
    tree_to_json,
)

REPO = Path(__file__).resolve().parents[3]
SEEDS = range(8)


def random_tree(seed: int, *, max_depth: int = 4, fanout: int = 5) -> Tree:
    """A tree over every category with uneven fan-out and depth (some leaf-only nodes)."""
    rng = random.Random(seed)

    def grow(prefix: str, depth: int) -> Tree:
        if depth >= max_depth or (depth > 1 and rng.random() < 0.3):
            return {}
        return {f"{prefix}.{i}": grow(f"{prefix}.{i}", depth + 1)
                for i in range(rng.randint(1, fanout))}

    return {cat: grow(cat[:4], 1) for cat in CATEGORIES}


def children_at(tree: Tree, path: tuple[str, ...]) -> Tree:
    for name in path:
        tree = tree[name]
    return tree


def is_subtree(small: Tree, big: Tree) -> bool:
    return all(name in big and is_subtree(sub, big[name]) for name, sub in small.items())


# ---------------------------------------------------------------------------------------------
# Names and categories


@pytest.mark.parametrize(("raw", "want"), [
    ("  Segment   Tree ", "segment tree"),
    ("Dijkstra's Algorithm.", "dijkstra's algorithm"),
    ("Two Pointers:", "two pointers"),
    ("BFS;", "bfs"),
    ("__builtin_popcount", "__builtin_popcount"),
    ("O(n log n)", "o(n log n)"),
    ("\tgreedy\t", "greedy"),
])
def test_normalize_name_gives_one_spelling(raw, want):
    assert normalize_name(raw) == want


@pytest.mark.parametrize("raw", [
    None, 3, 2.5, True, ["bfs"], {"a": 1}, "", "   ", "...",
    "x" * 81,
    "we use a segment tree to answer the range queries fast",  # 11 words: prose
    "segment tree\nwith lazy propagation",
    "line one\r\n",
])
def test_normalize_name_refuses_what_is_no_feature_name(raw):
    assert normalize_name(raw) is None


def test_normalize_name_limits_are_inclusive():
    assert normalize_name("x" * 80) == "x" * 80
    assert normalize_name(" ".join("abcdefgh")) == "a b c d e f g h"
    assert normalize_name(" ".join("abcdefghi")) is None


@pytest.mark.parametrize(("raw", "want"), [
    ("data_structures", "data_structures"),
    ("Data Structures", "data_structures"),
    ("data-structures", "data_structures"),
    ("DataStructures", "data_structures"),
    ("dataStructures", "data_structures"),
    (" DATA_STRUCTURES ", "data_structures"),
    ("Algorithm", "algorithms"),
    ("Optimisation Techniques", "optimization_techniques"),
    ("Problem-Solving Strategies", "problem_solving_strategies"),
    ("Programming Language", "programming_language"),
    ("math", "mathematics"),
])
def test_normalize_category_accepts_the_spellings_llms_use(raw, want):
    assert normalize_category(raw) == want


@pytest.mark.parametrize("raw", ["summary", "notes", "", None, 7, "graph", "data"])
def test_normalize_category_refuses_other_keys(raw):
    assert normalize_category(raw) is None


def test_every_category_normalises_to_itself():
    assert [normalize_category(c) for c in CATEGORIES] == list(CATEGORIES)
    assert len(CATEGORIES) == 10 and set(LANGUAGE_ROOTS) <= set(CATEGORIES)


# ---------------------------------------------------------------------------------------------
# Extractions and JSON


MESSY_EXTRACTION = {
    "Programming Language": "Python 3",
    "problem_domain": ["Graph Theory", "graph theory.", "Grids"],
    "Algorithms": {
        "Graph Algorithms": ["BFS", "Dijkstra's Algorithm", "bfs", {"Shortest Path": ["0-1 BFS"]}],
        "Dynamic Programming": [],
        "Sorting": None,
        "The solution first builds the graph from the grid and then runs a BFS from the start":
            ["should vanish"],
    },
    "algorithms": {"graph algorithms": ["Topological Sort"]},  # a second spelling: merged
    "mathematics": {},
    "DataStructures": ["Segment Tree", 42, True, None, "deque"],
    "coding-techniques": "Writing clean, well-documented code with many helper functions for "
                         "every part of the problem",
    "complexity_analysis": ["O(N log N) time", "O(n) memory"],
    "optimization_techniques": [],
    "Summary": "  Shortest paths on a grid\nwith BFS. ",
    "confidence": 0.9,
}


def test_a_messy_extraction_normalises_to_canonical_roots():
    tree, report = extraction_to_tree(MESSY_EXTRACTION)
    assert list(tree) == [  # CATEGORIES order, empty ones left out
        "programming_language", "problem_domain", "algorithms", "data_structures",
        "complexity_analysis",
    ]
    assert tree["programming_language"] == {"python 3": {}}
    assert list(tree["problem_domain"]) == ["graph theory", "grids"]
    algos = tree["algorithms"]
    assert list(algos) == ["graph algorithms", "dynamic programming"]  # sorting: None, prose
    assert algos["graph algorithms"] == {
        "bfs": {}, "dijkstra's algorithm": {}, "shortest path": {"0-1 bfs": {}},
        "topological sort": {},
    }
    assert algos["dynamic programming"] == {}  # an empty list keeps the key as a leaf
    assert list(tree["data_structures"]) == ["segment tree", "deque"]
    assert list(tree["complexity_analysis"]) == ["o(n log n) time", "o(n) memory"]
    assert report.unknown_keys == ["confidence"]
    assert report.summary == "Shortest paths on a grid with BFS."
    # None under "sorting", the prose key, 42, True, None, the prose coding technique.
    assert report.dropped == 6


def test_prune_empty_drops_unfilled_template_keys():
    tree, _ = extraction_to_tree(MESSY_EXTRACTION, prune_empty=True)
    assert "dynamic programming" not in tree["algorithms"]
    assert json_to_tree({"a": {"b": [], "c": ["d"]}}, prune_empty=True) == {"a": {"c": {"d": {}}}}


def test_the_example_extraction_of_the_brief():
    tree, report = extraction_to_tree({
        "algorithms": {"graph": ["bfs", "dijkstra"], "dp": []},
        "data_structures": ["segment tree"], "mathematics": {}, "summary": "one line",
        "programming_language": "Python",
    })
    assert tree == {
        "programming_language": {"python": {}},
        "algorithms": {"graph": {"bfs": {}, "dijkstra": {}}, "dp": {}},
        "data_structures": {"segment tree": {}},
    }
    assert (report.unknown_keys, report.dropped, report.summary) == ([], 0, "one line")


def test_a_summary_that_is_no_string_is_dropped_and_a_non_mapping_raises():
    tree, report = extraction_to_tree({"summary": ["a", "b"], "algorithms": ["greedy"]})
    assert report.summary is None and report.dropped == 1 and tree == {"algorithms": {"greedy": {}}}
    with pytest.raises(TypeError):
        extraction_to_tree(["algorithms"])  # type: ignore[arg-type]


def test_merge_rules_lists_deduplicate_in_order_and_a_list_meeting_a_dict_gives_keys():
    # Within one value: a dict item in a list merges in at the list's level.
    value = ["b", "a", "B.", {"a": ["x"], "c": []}, "a", "c", ["d", "b"]]
    assert node_paths(json_to_tree(value)) == [("b",), ("a",), ("a", "x"), ("c",), ("d",)]
    # Across two records: a list ["graph", "dp"] meets a dict {"graph": [...]}.
    t1, _ = extraction_to_tree({"algorithms": ["graph", "dp"]})
    t2, _ = extraction_to_tree({"algorithms": {"graph": ["bfs", "dfs"], "string": ["kmp"]}})
    merged = merge_trees(t1, t2)
    assert tree_to_json(merged) == {
        "algorithms": {"graph": ["bfs", "dfs"], "dp": [], "string": ["kmp"]},
    }


def test_json_to_tree_drops_free_text_and_scalars():
    tree = json_to_tree({
        "Graph": "BFS",                      # a string value is one leaf
        "Flags": {"uses dp": False, "n": 3},  # scalars drop with their keys
        "A very long explanation of the reasoning the model went through here": {"x": []},
        "Notes": "It is important to note that the graph might be disconnected at times.",
    })
    assert tree == {"graph": {"bfs": {}}, "flags": {}, "notes": {}}
    assert json_to_tree("Greedy") == {"greedy": {}}
    assert json_to_tree(12) == {} and json_to_tree(None) == {}


def test_tree_to_json_shapes():
    tree = {"a": {}, "b": {"c": {}, "d": {}}, "e": {"f": {"g": {}}, "h": {}}}
    assert tree_to_json(tree) == {"a": [], "b": ["c", "d"], "e": {"f": ["g"], "h": []}}
    assert tree_to_json({}) == {}


@pytest.mark.parametrize("seed", SEEDS)
def test_tree_to_json_and_json_to_tree_round_trip_with_order(seed):
    tree = random_tree(seed)
    back = json_to_tree(tree_to_json(tree))
    assert back == tree and node_paths(back) == node_paths(tree)
    # The JSON form survives canonical_json too (what the store keeps).
    assert canonical_json(json_to_tree(tree_to_json(back))) == canonical_json(tree)


# ---------------------------------------------------------------------------------------------
# Tree algebra


def test_merge_trees_appends_new_nodes_after_old_ones_and_leaves_inputs_alone():
    a = {"x": {"p": {}, "q": {"r": {}}}, "y": {}}
    b = {"z": {"s": {}}, "x": {"t": {}, "q": {"u": {}, "r": {"v": {}}}}}
    a0, b0 = copy.deepcopy(a), copy.deepcopy(b)
    m = merge_trees(a, b)
    assert (a, b) == (a0, b0)
    assert node_paths(m) == [
        ("x",), ("x", "p"), ("x", "q"), ("x", "q", "r"), ("x", "q", "r", "v"), ("x", "q", "u"),
        ("x", "t"), ("y",), ("z",), ("z", "s"),
    ]
    m["z"]["s"]["new"] = {}
    m["x"]["p"]["new"] = {}
    assert (a, b) == (a0, b0)  # no node is shared with an input


@pytest.mark.parametrize("seed", SEEDS)
def test_merge_is_a_union_and_idempotent(seed):
    a, b = random_tree(seed, fanout=3), random_tree(seed + 100, fanout=3)
    m = merge_trees(a, b)
    assert set(node_paths(m)) == set(node_paths(a)) | set(node_paths(b))
    assert merge_trees(m, a) == m and merge_trees(m, m) == m
    assert set(new_paths(a, m)) == set(node_paths(m)) - set(node_paths(a))


def test_paths_and_counts():
    tree = {"a": {"b": {"c": {}}, "d": {}}, "e": {}}
    assert node_paths(tree) == [("a",), ("a", "b"), ("a", "b", "c"), ("a", "d"), ("e",)]
    assert leaf_paths(tree) == [("a", "b", "c"), ("a", "d"), ("e",)]
    assert count_leaves(tree) == 3 and count_leaves({}) == 0
    grown = merge_trees(tree, {"a": {"b": {"f": {}}}, "g": {"h": {}}})
    assert new_paths(tree, grown) == [("a", "b", "f"), ("g",), ("g", "h")]
    assert new_paths(grown, tree) == []


@pytest.mark.parametrize("seed", SEEDS)
def test_tree_from_paths_rebuilds_a_tree_from_its_paths(seed):
    tree = merge_trees(random_tree(seed), {"coding_techniques": {"i/o": {"fast \\ io": {}}}})
    assert node_paths(tree_from_paths(node_paths(tree))) == node_paths(tree)
    assert tree_from_paths(leaf_paths(tree)) == tree
    # Store paths: names with "/" survive join/split.
    stored = [join_feature_path(p) for p in node_paths(tree)]
    assert tree_from_paths(split_feature_path(s) for s in stored) == tree


def test_tree_from_paths_refuses_bad_paths():
    assert tree_from_paths([("a", "n/m"), ["a", "b"]]) == {"a": {"n/m": {}, "b": {}}}
    with pytest.raises(TypeError):
        tree_from_paths(["algorithms/graph"])
    for bad in ([()], [("a", "")]):
        with pytest.raises(ValueError):
            tree_from_paths(bad)


# ---------------------------------------------------------------------------------------------
# Randomness


def test_item_rng_is_reproducible_and_label_sensitive():
    draws = [item_rng(7, "config", 3, 0).random() for _ in range(2)]
    assert draws[0] == draws[1]
    assert item_rng(7, "config", 3, 0).random() != item_rng(7, "config", 3, 1).random()
    assert item_rng(7, "config", 3, 0).random() != item_rng(8, "config", 3, 0).random()
    assert random.Random(config_rng_seed(7, 3, 0)).random() == item_rng(7, "config", 3, 0).random()
    s = config_rng_seed(7, 3, 0)
    assert 0 <= s < 2**63  # fits a signed SQLite INTEGER


def test_item_rng_is_the_same_in_another_process():
    # A pinned value: changing the derivation would silently change every stored run's draws.
    assert config_rng_seed(0, 0, 0) == 2896201973274343751
    code = ("from engine.synth.feature_tree import item_rng;"
            "print(repr(item_rng(5, 'evolve', 12).random()))")
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True,
                         text=True, timeout=60, check=True)
    assert out.stdout.strip() == repr(item_rng(5, "evolve", 12).random())


def test_sample_children_uniform():
    names = [f"n{i}" for i in range(10)]
    for seed in SEEDS:
        got = sample_children(names, 4, random.Random(seed))
        assert len(got) == 4 and len(set(got)) == 4
        assert got == [n for n in names if n in got]  # original order
    assert sample_children(names, 10, random.Random(0)) == names
    assert sample_children(names, 99, random.Random(0)) == names
    assert sample_children(names, 0, random.Random(0)) == []
    assert sample_children([], 3, random.Random(0)) == []
    counts = Counter(n for s in range(3000) for n in sample_children(names, 3, random.Random(s)))
    assert min(counts.values()) > 0.7 * 900 and max(counts.values()) < 1.3 * 900


def test_sample_children_weighted():
    names = ["rare", "mid", "heavy", "never"]
    weights = [1.0, 3.0, 30.0, 0.0]
    counts = Counter()
    for s in range(2000):
        got = sample_children(names, 1, random.Random(s), weights)
        counts.update(got)
    assert counts["never"] == 0
    # P(heavy) = 30/34 ~ 0.88, P(mid) ~ 0.088, P(rare) ~ 0.029.
    assert 0.84 < counts["heavy"] / 2000 < 0.92
    assert counts["mid"] > counts["rare"] > 0
    two = sample_children(names, 2, random.Random(1), weights)
    assert two == [n for n in names if n in two] and "never" not in two
    assert sample_children(names, 4, random.Random(1), weights) == ["rare", "mid", "heavy"]
    # Huge weights (tiny temperature) do not overflow.
    assert sample_children(["a", "b"], 1, random.Random(0), [1e308, 1.0]) == ["a"]
    for bad in ([1.0, 2.0], [1.0, -1.0, 1.0, 1.0], [float("nan")] * 4):
        with pytest.raises(ValueError):
            sample_children(names, 1, random.Random(0), bad)


def test_feature_weight():
    assert feature_weight(0, 1.0) == 1.0
    assert feature_weight(3, 1.0) == pytest.approx(4.0)
    assert feature_weight(3, 0.5) == pytest.approx(16.0)
    assert feature_weight(3, 2.0) == pytest.approx(2.0)
    assert feature_weight(10**6, 0.001) == float("inf")
    with pytest.raises(ValueError):
        feature_weight(1, 0.0)
    with pytest.raises(ValueError):
        feature_weight(-1, 1.0)


# ---------------------------------------------------------------------------------------------
# Evolution subtrees


def check_branching(sample: Tree, tree: Tree, branching, prefix=(), depth=0) -> None:
    """Each chosen node has min(branching[d], available) children; the sample stops there."""
    if depth >= len(branching):
        assert sample == {}, prefix
        return
    avail = [n for n in tree if depth > 0 or n not in LANGUAGE_ROOTS]
    assert len(sample) == min(branching[depth], len(avail)), prefix
    assert list(sample) == [n for n in avail if n in sample]  # tree order
    for name, sub in sample.items():
        check_branching(sub, tree[name], branching, (*prefix, name), depth + 1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("branching", [(2, 1, 2, 1), (3, 2), (1,), (5, 5, 5, 5, 5)])
@pytest.mark.parametrize("mode", ["uniform", "frequency"])
def test_sample_subtree_is_a_subtree_within_the_branching_limits(seed, branching, mode):
    tree = random_tree(seed)
    freqs = {p: random.Random(seed).randint(0, 50) for p in node_paths(tree)}
    sample = sample_subtree(tree, branching, item_rng(seed, "evolve"), frequencies=freqs,
                            mode=mode, temperature=0.7)
    assert is_subtree(sample, tree)
    assert not set(sample) & set(LANGUAGE_ROOTS)
    assert max(len(p) for p in node_paths(sample)) <= len(branching)
    check_branching(sample, tree, branching)
    again = sample_subtree(tree, branching, item_rng(seed, "evolve"), frequencies=freqs,
                           mode=mode, temperature=0.7)
    assert node_paths(again) == node_paths(sample)


def test_sample_subtree_frequency_mode_favours_frequent_features():
    tree = {"algorithms": {f"a{i}": {} for i in range(10)}, "mathematics": {}}
    freqs = {("algorithms", "a7"): 40, ("algorithms", "a2"): 10}
    def hits(**kw) -> int:
        return sum(
            "a7" in sample_subtree(tree, (2, 1), random.Random(s), frequencies=freqs,
                                   **kw).get("algorithms", {})
            for s in range(2000)
        )
    uniform = hits(mode="uniform")
    sharp = hits(mode="frequency", temperature=0.1)
    flat = hits(mode="frequency", temperature=100.0)
    assert 120 < uniform < 280  # ~1 in 10
    assert sharp > 1900          # (41/11) ** 10 dwarfs every other weight
    assert abs(flat - uniform) < 100  # a high temperature is close to uniform


def test_sample_subtree_edge_cases():
    assert sample_subtree({}, (2, 1), random.Random(0)) == {}
    only_lang = {"programming_language": {"python": {}}}
    assert sample_subtree(only_lang, (2,), random.Random(0)) == {}
    assert sample_subtree(only_lang, (2,), random.Random(0), skip_roots=()) == {
        "programming_language": {}}
    for bad in ((), (2, 0), (-1,)):
        with pytest.raises(ValueError):
            sample_subtree(random_tree(0), bad, random.Random(0))
    with pytest.raises(ValueError):
        sample_subtree(random_tree(0), (2,), random.Random(0), mode="zipf")
    with pytest.raises(ValueError):
        sample_subtree({}, (2,), random.Random(0), mode="frequency", temperature=0)


# ---------------------------------------------------------------------------------------------
# Task configs


def check_config(config: Tree, tree: Tree, shape) -> None:
    """Under every chosen node: inner_k of its inner children and leaf_k of its leaves."""
    root_k, inner_k, leaf_k = shape
    roots = [n for n, sub in tree.items() if sub and n not in LANGUAGE_ROOTS]
    assert len(config) == min(root_k, len(roots)) and set(config) <= set(roots)

    def check(sub: Tree, full: Tree) -> None:
        inner = [n for n in full if full[n]]
        leaves = [n for n in full if not full[n]]
        assert sum(n in sub for n in inner) == min(inner_k, len(inner))
        assert sum(n in sub for n in leaves) == min(leaf_k, len(leaves))
        assert list(sub) == [n for n in full if n in sub]  # tree order kept
        for name in sub:
            if full[name]:
                check(sub[name], full[name])

    for root in config:
        check(config[root], tree[root])
    assert set(leaf_paths(config)) <= set(leaf_paths(tree))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("shape", [(3, 3, 1), (3, 3, 2), (4, 3, 2), (20, 20, 20)])
def test_sample_config_follows_the_shape_to_the_real_leaves(seed, shape):
    tree = random_tree(seed)
    tree["mathematics"] = {}  # a category without children is never chosen
    config = sample_config(tree, shape, item_rng(seed, "c"))
    assert "mathematics" not in config and "programming_language" not in config
    assert is_subtree(config, tree)
    check_config(config, tree, shape)
    assert sample_config(tree, shape, item_rng(seed, "c")) == config


def test_sample_config_edge_cases():
    assert sample_config({}, (3, 3, 1), random.Random(0)) == {}
    assert sample_config({"algorithms": {}}, (3, 3, 1), random.Random(0)) == {}
    for bad in ((3, 3), (3, 0, 1), (1, 1, 1, 1)):
        with pytest.raises(ValueError):
            sample_config(random_tree(0), bad, random.Random(0))


SHAPES = [(3, 3, 1), (3, 3, 2), (4, 3, 2)]


@pytest.mark.parametrize("seed", SEEDS)
def test_sample_configs_respects_min_leaves_dedup_and_is_reproducible(seed):
    tree = random_tree(seed, max_depth=5)
    items = sample_configs(tree, 30, SHAPES, min_leaves=12, seed=seed)
    assert [c.index for c in items] == list(range(30))
    assert items == sample_configs(tree, 30, SHAPES, min_leaves=12, seed=seed)
    ok = [c for c in items if c.config is not None]
    assert len(ok) > 15
    keys = [canonical_json(c.config) for c in ok]
    assert len(set(keys)) == len(keys)
    for c in items:
        if c.config is None:
            assert c.reason and c.shape is None and c.attempts == 20
            continue
        assert c.reason is None and c.n_leaves == count_leaves(c.config) >= 12
        assert c.shape in SHAPES and 1 <= c.attempts <= 20
        assert c.rng_seed == config_rng_seed(seed, c.index, c.attempts - 1)
        check_config(c.config, tree, c.shape)
        # The stored seed alone re-draws the config.
        rng = random.Random(c.rng_seed)
        assert sample_config(tree, rng.choice(SHAPES), rng) == c.config
    # Items are independent but for dedup against earlier ones: a shorter run is a prefix.
    assert sample_configs(tree, 10, SHAPES, min_leaves=12, seed=seed) == items[:10]
    other = sample_configs(tree, 30, SHAPES, min_leaves=12, seed=seed + 1000)
    assert [c.config for c in other] != [c.config for c in items]


def test_sample_configs_says_why_when_it_cannot():
    tree = random_tree(1)
    too_big = sample_configs(tree, 3, SHAPES, min_leaves=10**6, seed=0, max_attempts=5)
    for c in too_big:
        assert c.config is None and c.n_leaves == 0 and c.attempts == 5
        assert c.reason.startswith("fewer than 1000000 leaves in 5 draws (best ")
        assert c.rng_seed == config_rng_seed(0, c.index, 4)
    # Only one config exists (every pick takes all): the second item can only repeat it.
    tiny = {"algorithms": {"graph": {"bfs": {}}}, "data_structures": {"heap": {}}}
    items = sample_configs(tiny, 3, [(4, 3, 2)], min_leaves=2, seed=0, max_attempts=7)
    assert items[0].config == tiny and items[0].attempts == 1
    assert [c.reason for c in items[1:]] == ["only duplicates in 7 draws"] * 2
    mixed = sample_configs(tiny, 2, [(4, 3, 2), (1, 1, 1)], min_leaves=2, seed=0)
    assert mixed[1].config is None
    assert mixed[1].reason.startswith("only duplicates in 20 draws (")
    assert "had fewer than 2 leaves)" in mixed[1].reason
    # An empty config is never accepted, even with min_leaves=0.
    empty = sample_configs({}, 1, SHAPES, min_leaves=0, seed=0, max_attempts=2)
    assert empty[0].reason == "fewer than 1 leaves in 2 draws (best 0)"


def test_sample_configs_argument_checks():
    assert sample_configs(random_tree(0), 0, SHAPES, min_leaves=1, seed=0) == []
    for kw in ({"n": -1}, {"shapes": []}, {"max_attempts": 0}, {"shapes": [(3, 3)]}):
        args = {"n": 1, "shapes": SHAPES, "max_attempts": 20, **kw}
        with pytest.raises(ValueError):
            sample_configs(random_tree(0), args["n"], args["shapes"], min_leaves=1, seed=0,
                           max_attempts=args["max_attempts"])
    assert isinstance(sample_configs(random_tree(0), 1, SHAPES, min_leaves=1, seed=0)[0],
                      SampledConfig)
