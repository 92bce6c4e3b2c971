"""Hint leakage in a statement (engine.synth.hints).

    .venv/bin/python -m pytest tests/engine/synth/test_hints.py -q

A clean, realistic statement must give no leak (false positives reject good tasks); each kind
of leak is found in the spellings models write. Leaves out paraphrased hints, which the
module does not try to catch.
"""

from __future__ import annotations

import re

import pytest

from engine.synth.hints import GENERIC, HINT_TERMS, find_hint_leaks

CLEAN = r"""
# Dragon's Hoard

A greedy dragon keeps $n$ piles of gold in a row; the $i$-th pile holds $a_i$ coins. Every
night the dragon picks a segment of consecutive piles and counts a bit of its gold: the sum of
the piles in the segment, taken modulo $998\,244\,353$. The dragon tries hard to remember the
largest count of each night, but it is old, so it asks you.

You are given $q$ queries. Each query is two integers $l$ and $r$; output the maximum sum of a
subarray of $a_l, \ldots, a_r$. The piles form a tree-like heap of stones, and the shortest
path between two caves is irrelevant here. They meet in the middle of the valley at dawn.

## Input

The first line contains two integers $n$ and $q$ ($1 \le n, q \le 2 \cdot 10^5$).
The second line contains $n$ integers $a_1, \ldots, a_n$ ($-10^9 \le a_i \le 10^9$).
Each of the next $q$ lines contains $l$ and $r$ ($1 \le l \le r \le n$).

## Output

Output (one per line) the answer to each query.

## Example

```
Sample Input
3 1
1 -2 3
1 3
```

```
Sample Output
3
```

Note: Point O (the origin) is where the dragon sleeps.
"""


def test_clean_statement_has_no_leaks():
    assert find_hint_leaks(CLEAN) == []


def test_clean_statement_with_its_own_features():
    features = ["prefix sums", "segment tree", "string", "arrays", "shortest paths",
                "modular arithmetic", "greedy", "math", "divide and conquer"]
    assert find_hint_leaks(CLEAN, features) == []


# --- technique names


@pytest.mark.parametrize("text,term", [
    ("It is enough to use a segment tree here.", "segment tree"),
    ("Build a segment-tree over the piles.", "segment tree"),
    ("A segtree answers each query.", "segment tree"),
    ("Two segment trees suffice.", "segment tree"),
    ("Run Dijkstra's algorithm from the castle.", "dijkstra"),
    ("Merge the villages with union-find.", "union-find"),
    ("Use a disjoint set union structure.", "union-find"),
    ("A BFS from the entrance finds it.", "breadth-first search"),
    ("Do a breadth first search.", "breadth-first search"),
    ("This is a classic DP problem.", "dynamic programming"),
    ("Solve it with dynamic programming.", "dynamic programming"),
    ("The greedy approach fails.", "greedy algorithm"),
    ("Binary search on the answer.", "binary search"),
    ("Use prefix sums.", "prefix sums"),
    ("Answer with a Fenwick tree.", "fenwick tree"),
    ("A BIT gives the counts.", "fenwick tree"),
    ("Apply the Knuth-Morris-Pratt idea.", "kmp"),
    ("Think of the 0/1 knapsack.", "knapsack"),
    ("The thieves' knapsacks are small.", "knapsack"),
    ("A min-heap of events works.", "heap"),
    ("Keep them in a priority queue.", "priority queue"),
    ("Use the Sprague-Grundy theorem.", "sprague-grundy"),
    ("Compute the nim-sum.", "sprague-grundy"),
    ("Apply Mo's algorithm.", "mo's algorithm"),
    ("Use Prim's algorithm.", "prim's algorithm"),
    ("A Möbius inversion helps.", "möbius function"),
    ("A Mobius inversion helps.", "möbius function"),
    ("Use the convex hull trick.", "convex hull trick"),
    ("A meet-in-the-middle split.", "meet in the middle"),
    ("Count Catalan numbers.", "catalan numbers"),
    ("Burnside's lemma counts necklaces.", "burnside's lemma"),
])
def test_technique_names(text, term):
    assert find_hint_leaks(text) == [term]


@pytest.mark.parametrize("text", [
    "A greedy dragon hoards gold.",              # the bare adjective is a story word
    "He spent a bit of time there.",             # BIT is case-sensitive
    "The bit at position i is set.",
    "A heap of stones lies by the road.",        # bare heap
    "The knight tries three doors.",             # 'tries' is not a plural of trie
    "They meet in the middle of the bridge.",    # the phrase, not the technique
    "Prim and proper, the duchess waits.",       # Prim only with 'algorithm'
    "She drew a Möbius strip.",                  # the strip is geometry, not the function
    "The Hungarian delegation arrived.",         # Hungarian only with 'algorithm'
    "The dp array is lowercase prose.",          # DP is case-sensitive
    "Catalan is spoken in Barcelona.",           # Catalan only as 'Catalan number'
])
def test_story_words_are_not_hints(text):
    assert find_hint_leaks(text) == []


def test_several_terms_sorted_and_unique():
    text = "Use BFS, then a DFS, then BFS again with a segment tree and a Fenwick tree."
    assert find_hint_leaks(text) == [
        "breadth-first search", "depth-first search", "fenwick tree", "segment tree"]


def test_fenced_blocks_are_ignored():
    assert find_hint_leaks("Example:\n```\n# segment tree of size n\n```\n") == []


def test_every_variant_compiles_and_table_is_sized():
    assert 60 <= len(HINT_TERMS) <= 110
    for term, variants in HINT_TERMS.items():
        assert variants, term
        for v in variants:
            re.compile(v, re.IGNORECASE)


# --- complexity hints


@pytest.mark.parametrize("text,expr", [
    ("An O(n log n) solution passes.", "O(n log n)"),
    ("An O(n  log  n) solution passes.", "O(n log n)"),
    (r"Aim for $O(n \log n)$.", "O(n log n)"),
    ("Anything in O(n^2) is too slow.", "O(n^2)"),
    (r"Anything in $O(n^{2})$ is too slow.", "O(n^2)"),
    ("O(N) memory.", "O(N)"),
    ("Each query in O(1).", "O(1)"),
    ("Total O((n + q) log n).", "O((n + q) log n)"),
    (r"In $\mathcal{O}(n \sqrt{n})$ time.", "O(n sqrt(n))"),
])
def test_complexity_hints(text, expr):
    assert find_hint_leaks(text) == [f"complexity: {expr}"]


def test_one_entry_per_distinct_expression():
    text = "O(n log n) here, O(n log n) there, and O(n) elsewhere."
    assert find_hint_leaks(text) == ["complexity: O(n log n)", "complexity: O(n)"]


@pytest.mark.parametrize("text", [
    "Output (in one line) the answer.",
    "PRINT TO (stdout) the answer.",
    "Point O (the origin) is fixed.",
    "The circle centred at O(0, 0) has radius r.",
    "Little-o: o(n) is not a hint we report.",
    "(O) marks the spot.",
])
def test_not_complexity(text):
    assert find_hint_leaks(text) == []


# --- the task's own feature names


def test_extra_terms_rules():
    text = ("Answer with prefix sums of the array, using modular arithmetic, "
            "hashing of the strings and a sorted sequence.")
    extra = ["prefix sums", "modular arithmetic", "hashing", "string", "strings", "sorted",
             "sequence", "array", "sums"]
    # prefix sums is both a hint term and a feature: reported once.
    assert find_hint_leaks(text, extra) == ["hashing", "modular arithmetic", "prefix sums"]


def test_extra_terms_plural_tolerant_whole_word_case_insensitive():
    assert find_hint_leaks("Count the Inversions.", ["inversion"]) == ["inversion"]
    assert find_hint_leaks("One inversion.", ["inversions"]) == ["inversions"]
    assert find_hint_leaks("Small boundaries.", ["boundary"]) == ["boundary"]
    assert find_hint_leaks("Conversions happen.", ["inversion"]) == []


def test_extra_terms_short_or_generic_do_not_count():
    text = "Queries on a graph with paths and a tree; the shortest path is asked."
    assert find_hint_leaks(text, ["graph", "tree", "queries", "paths", "shortest paths",
                                  "xor", "game"]) == []
    assert "shortest" in GENERIC


def test_extra_terms_keep_given_spelling():
    assert find_hint_leaks("Use  bitmasks here.", ["  Bitmasks "]) == ["Bitmasks"]
