"""Hint leakage in a task statement (SYNTHSMITH.md §3): a statement must be hint-free.

    leaks = find_hint_leaks(statement, extra_terms=task.features)
    if leaks: reject or rewrite the statement, recording leaks  # e.g. ["segment tree"]

Three kinds of leak:

- a technique name from ``HINT_TERMS`` (canonical term -> regex spellings): case-insensitive
  whole words, with hyphen / space / no-space, plural and possessive ("Dijkstra's") variants.
  Acronyms that are also English words are matched case-sensitively (``DP``, ``BIT``, ``MST``,
  ``CRT``, ``CHT``), and words that stories use are matched only in their technical phrase:
  "greedy" only as "greedy algorithm/approach/...", a heap only as "min-heap" / "max-heap" /
  "binary heap", "meet in the middle" only hyphenated or followed by technique/approach,
  Prim / Hungarian / Mo only with "algorithm", Möbius not in "Möbius strip", Catalan only as
  "Catalan number", Burnside only as "Burnside's lemma". "Maximum flow" alone is not a
  hint (pipes in a story); "max flow", "maxflow" and "max-flow" are.
- a complexity hint: a capital ``O(`` (``\\mathcal{O}(`` too) around an expression of
  n/m/k/q/v/e, digits, log, sqrt and arithmetic, reported once per distinct expression as
  ``"complexity: O(n log n)"`` (TeX backslashes and braces dropped, spacing normalised).
- ``extra_terms``: the task's own feature names, counted only when at least two words or one
  word of six letters or more, and not made only of ``GENERIC`` words that statements use
  anyway ("array", "queries", "shortest path"). Reported in their given spelling.

Fenced blocks (```` ``` ```` / ``~~~``) are ignored: in a statement they hold sample data.

Leaves out: paraphrased hints ("think about sorting first"), constraints that imply a
complexity (n <= 20), and languages other than English.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.synth.code_extract import fenced_blocks

__all__ = ["GENERIC", "HINT_TERMS", "find_hint_leaks"]

_S = r"[\s\-]*"       # between the words of a name: space, hyphen or nothing
_PL = r"(?:e?s)?"     # a plural


def _v(phrase: str, plural: bool = True) -> str:
    """The regex for a plain phrase: words joined by ``_S``, an optional plural at the end."""
    words = [re.escape(w) for w in phrase.split()]
    return _S.join(words) + (_PL if plural else "")


# Case-sensitive pieces use a scoped (?-i:...) so the whole table compiles under IGNORECASE.
HINT_TERMS: dict[str, tuple[str, ...]] = {
    # Dynamic programming
    "dynamic programming": (_v("dynamic programming", False), r"(?-i:DPs?)"),
    "memoization": (r"memoi[sz](?:ation|ing|ed|e)s?",),
    "bitmask dp": (r"bit[\s\-]*mask" + _S + r"(?:dp|dynamic[\s\-]*programming)", r"sos[\s\-]*dp",
                   _v("dp over subsets", False), _v("sum over subsets", False)),
    "digit dp": (_v("digit dp", False),),
    "tree dp": (_v("tree dp", False), _v("dp on trees", False), r"rerooting"),
    "knapsack": (_v("knapsack"),),
    "knuth optimization": (r"knuth(?:['’]s)?" + _S + r"optimi[sz]ations?",),
    # Greedy, search, classic techniques
    "greedy algorithm": (r"greedy" + _S + r"(?:algorithm|approach|strategy|choice|method|"
                                          r"solution|technique|heuristic)s?",
                         ),
    "binary search": (_v("binary search"), r"bin" + _S + r"search",
                      r"binary" + _S + r"searching"),
    "ternary search": (_v("ternary search"),),
    "two pointers": (r"two" + _S + r"pointers?(?:" + _S + r"(?:technique|method|approach))?",),
    "sliding window": (_v("sliding window"),),
    "prefix sums": (_v("prefix sum"),),
    "difference array": (_v("difference array"),),
    "meet in the middle": (r"meet-in-the-middle",
                           _v("meet in the middle", False) + _S
                           + r"(?:technique|approach|attack|algorithm|trick)s?"),
    "divide and conquer": (r"divide" + _S + r"(?:and|&)" + _S + r"conquer",),
    "backtracking": (r"backtracking",),
    "brute force": (_v("brute force", False) + _S
                    + r"(?:solution|approach|algorithm|search|method)s?",
                    r"brute" + _S + r"forcing"),
    "coordinate compression": (_v("coordinate compression"),),
    "sweep line": (_v("sweep line"), _v("line sweep")),
    "monotonic stack": (r"monoton(?:ic|ous|e)" + _S + r"stacks?",),
    "monotonic queue": (r"monoton(?:ic|ous|e)" + _S + r"(?:queues?|deques?)",),
    "sqrt decomposition": (r"(?:sqrt|square" + _S + r"root)" + _S + r"decompositions?",),
    "mo's algorithm": (r"mo['’]?s" + _S + r"algorithms?",),
    "small to large": (_v("small to large", False) + r"(?:" + _S + r"merging)?",
                       _v("dsu on tree", False)),
    # Data structures
    "segment tree": (_v("segment tree"), r"seg" + _S + r"trees?", _v("lazy propagation", False)),
    "fenwick tree": (r"fenwick(?:" + _S + r"trees?)?", _v("binary indexed tree"),
                     r"(?-i:BITs?)"),
    "sparse table": (_v("sparse table"),),
    "union-find": (_v("union find"), r"disjoint" + _S + r"sets?" + _S
                   + r"(?:unions?|data" + _S + r"structures?|forests?)", r"dsus?"),
    "trie": (r"trie", _v("prefix tree")),  # not "tries": that is a verb
    "suffix array": (_v("suffix array"),),
    "suffix automaton": (r"suffix" + _S + r"automat(?:on|a|ons)",),
    "suffix tree": (_v("suffix tree"),),
    "priority queue": (_v("priority queue"),),
    "heap": (r"(?:min|max|binary)" + _S + r"heaps?",),
    "treap": (r"treaps?",),
    "splay tree": (_v("splay tree"),),
    "link-cut tree": (_v("link cut tree"),),
    "li chao tree": (_v("li chao tree"),),
    "convex hull trick": (_v("convex hull trick"), r"(?-i:CHT)", _v("line container")),
    "bitset": (r"bitsets?",),
    # Strings
    "kmp": (r"kmp", r"knuth" + _S + r"morris" + _S + r"pratt", _v("prefix function")),
    "z-function": (r"z" + _S + r"(?:functions?|algorithm)",),
    "manacher": (r"manacher",),
    "aho-corasick": (r"aho" + _S + r"corasick",),
    "rolling hash": (r"(?:rolling|polynomial)" + _S + r"hash(?:es|ing)?",
                     r"rabin" + _S + r"karp"),
    # Graphs
    "breadth-first search": (r"bfs", r"breadth" + _S + r"first" + _S + r"search(?:es)?"),
    "depth-first search": (r"dfs", r"depth" + _S + r"first" + _S + r"search(?:es)?"),
    "dijkstra": (r"dijkstra",),
    "bellman-ford": (r"bellman" + _S + r"ford",),
    "floyd-warshall": (r"floyd" + _S + r"warshall",),
    "spfa": (r"spfa",),
    "topological sort": (r"topological" + _S + r"(?:sort|sorting|order|ordering)s?",
                         r"topo" + _S + r"sort(?:ing)?"),
    "kruskal": (r"kruskal",),
    "prim's algorithm": (r"prim['’]?s?" + _S + r"algorithm",),
    "minimum spanning tree": (_v("minimum spanning tree"), r"(?-i:MSTs?)"),
    "tarjan": (r"tarjan",),
    "kosaraju": (r"kosaraju",),
    "strongly connected components": (_v("strongly connected component"), r"sccs?"),
    "2-sat": (r"2-?sat", r"two" + _S + r"satisfiability"),
    "lowest common ancestor": (r"(?:lowest|least)" + _S + r"common" + _S + r"ancestors?",
                               r"lcas?"),
    "binary lifting": (_v("binary lifting", False),),
    "heavy-light decomposition": (r"heavy" + _S + r"light" + _S + r"decompositions?", r"hld"),
    "centroid decomposition": (_v("centroid decomposition"),),
    "euler tour": (r"euler(?:['’]s|ian)?" + _S + r"tours?",),
    "max flow": (r"max" + _S + r"flows?", _v("min cut", False)),
    "dinic": (r"dinic", r"dinitz"),
    "edmonds-karp": (r"edmonds" + _S + r"karp",),
    "ford-fulkerson": (r"ford" + _S + r"fulkerson",),
    "bipartite matching": (_v("bipartite matching"), r"kuhn['’]?s?" + _S + r"algorithm",
                           r"hopcroft" + _S + r"karp"),
    "hungarian algorithm": (r"hungarian" + _S + r"(?:algorithm|method)s?",),
    # Mathematics
    "sieve of eratosthenes": (r"(?:sieve" + _S + r"of" + _S + r")?eratosthenes",
                              _v("linear sieve"), _v("prime sieve")),
    # Not "modular inverse": Codeforces output formats say "print p * q^-1, where q^-1 is the
    # modular inverse of q" as boilerplate, so it would flag fine statements.
    "binary exponentiation": (r"(?:fast|binary|quick)" + _S
                              + r"(?:exponentiation|power(?:ing)?|pow)",
                              _v("exponentiation by squaring", False)),
    "extended euclidean algorithm": (r"extended" + _S + r"euclid(?:ean|['’]s)?(?:" + _S
                                     + r"algorithm)?", r"ext" + _S + r"gcd"),
    "chinese remainder theorem": (_v("chinese remainder theorem", False), r"(?-i:CRT)"),
    "fast fourier transform": (r"ffts?", _v("fast fourier transform")),
    "number theoretic transform": (r"ntts?", _v("number theoretic transform")),
    "matrix exponentiation": (r"matrix" + _S + r"(?:exponentiation|fast" + _S + r"power)",),
    "gaussian elimination": (r"gauss(?:ian)?(?:" + _S + r"jordan)?" + _S + r"elimination",),
    "inclusion-exclusion": (r"inclusion" + _S + r"(?:and" + _S + r")?exclusion",),
    "sprague-grundy": (r"sprague" + _S + r"grundy", r"grundy" + _S
                       + r"(?:numbers?|values?|functions?)", r"nim" + _S + r"sums?",
                       r"nimbers?"),
    "lagrange interpolation": (_v("lagrange interpolation", False),),
    "catalan numbers": (_v("catalan number"),),
    "burnside's lemma": (r"burnside(?:['’]s)?" + _S + r"lemma",),
    "möbius function": (r"m(?:ö|o|oe)bius(?!" + _S + r"(?:strip|band|loop|ring))",),
    "euler's totient": (r"(?:euler(?:['’]s)?" + _S + r")?totient(?:" + _S + r"functions?)?",
                        r"euler" + _S + r"phi"),
    "fermat's little theorem": (r"fermat(?:['’]s)?" + _S + r"little" + _S + r"theorem",),
    "lucas theorem": (r"lucas(?:['’]s?)?" + _S + r"theorem",),
    "miller-rabin": (r"miller" + _S + r"rabin",),
    "pollard rho": (r"pollard(?:['’]s)?" + _S + r"rho",),
    "stirling numbers": (r"stirling" + _S + r"numbers?",),
    # Geometry
    "convex hull": (r"convex" + _S + r"hulls?(?!" + _S + r"trick)",
                    r"graham(?:['’]s)?" + _S + r"scan", _v("monotone chain", False)),
    "rotating calipers": (r"rotating" + _S + r"cal(?:l)?ipers?",),
    "shoelace formula": (_v("shoelace formula"),),
    "pick's theorem": (r"pick['’]s" + _S + r"theorem",),
}

# Feature-name words a statement uses in its own right; a feature made only of these is no leak.
GENERIC = frozenset({
    "array", "arrays", "string", "strings", "graph", "graphs", "tree", "trees", "grid", "grids",
    "matrix", "matrices", "query", "queries", "integer", "integers", "number", "numbers",
    "sequence", "sequences", "permutation", "permutations", "subarray", "subarrays",
    "substring", "substrings", "subsequence", "subsequences", "sorting", "sorted", "sort",
    "interval", "intervals", "path", "paths", "mathematics", "math", "maths", "geometry",
    "simulation", "implementation", "counting", "optimization", "optimisation", "greedy",
    "probability", "probabilities", "expected", "value", "values", "modular", "modulo",
    "remainder", "parity", "game", "games", "interactive", "divisor", "divisors", "prime",
    "primes", "bitwise", "operation", "operations", "binary", "palindrome", "palindromes",
    "distance", "distances", "shortest", "longest", "point", "points", "segment", "segments",
    "range", "ranges", "set", "sets", "multiset", "multisets", "cycle", "cycles", "connected",
    "component", "components", "bracket", "brackets", "schedule", "scheduling", "digit",
    "digits", "bits", "xor", "sum", "sums", "product", "minimum", "maximum", "count", "edges",
    "vertices", "nodes", "weights", "weighted", "directed", "undirected", "coordinates",
    "polygon", "polygons", "circle", "circles", "time", "string processing",
})

_MATH_TOKEN = r"(?:\\?(?:log|lg|ln|sqrt|cdot|times)|[nmkqve]|\d+(?:\.\d+)?|[\s+\-*/^·×_{}]|\\,)"
_COMPLEXITY = re.compile(
    r"(?<![A-Za-z0-9_])(?:\\mathcal\s*\{\s*O\s*\}|\\mathcal\s+O|O) ?"
    r"\(((?:" + _MATH_TOKEN + r"|\((?:" + _MATH_TOKEN + r")+\))+)\)",
    re.IGNORECASE,
)
_COMPILED = {
    term: re.compile(r"(?<![\w])(?:" + "|".join(variants) + r")(?:['’]s)?(?![\w])", re.IGNORECASE)
    for term, variants in HINT_TERMS.items()
}


def find_hint_leaks(text: str, extra_terms: Iterable[str] = ()) -> list[str]:
    """Sorted unique leaks in a statement: canonical hint terms, ``"complexity: O(...)"``
    entries and the ``extra_terms`` that count, in their given spelling."""
    prose = _without_fences(text or "")
    found: set[str] = {term for term, pattern in _COMPILED.items() if pattern.search(prose)}
    found.update(_complexities(prose))
    for term in extra_terms:
        pattern = _extra_pattern(term)
        if pattern is not None and pattern.search(prose):
            found.add(term.strip())
    return sorted(found)


def _without_fences(text: str) -> str:
    parts: list[str] = []
    pos = 0
    for block in fenced_blocks(text):
        parts.append(text[pos:block.start])
        parts.append("\n")
        pos = block.end
    parts.append(text[pos:])
    return "".join(parts)


def _complexities(text: str) -> set[str]:
    found: set[str] = set()
    for m in _COMPLEXITY.finditer(text):
        # The O itself must be a capital: "o(n)" is little-o or a word; IGNORECASE is only
        # there for the tokens (N, Log, ...).
        if "O" not in m.group(0)[: m.group(0).index("(")]:
            continue
        expr = m.group(1)
        if not re.search(r"[nmkqve\d]", re.sub(r"(?i)log|lg|ln|sqrt|cdot|times", "", expr),
                         re.IGNORECASE):
            continue
        found.add(f"complexity: O({_normalise(expr)})")
    return found


def _normalise(expr: str) -> str:
    s = expr.replace("\\,", " ")
    s = re.sub(r"\\(log|lg|ln|sqrt|cdot|times)", r" \1 ", s)
    s = re.sub(r"\^\s*\{([^{}]*)\}", lambda m: "^" + (m.group(1).strip() if re.fullmatch(
        r"\s*[\w.]+\s*", m.group(1)) else f"({m.group(1).strip()})"), s)
    s = re.sub(r"(sqrt)\s*\{([^{}]*)\}", r"\1(\2)", s)
    s = s.replace("{", "").replace("}", "").replace("_", "")
    s = re.sub(r"\s*\^\s*", "^", s)
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"\(\s+", "(", s)
    return re.sub(r"\s+\)", ")", s)


def _singular(word: str) -> str:
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"
    if word.endswith(("ses", "xes", "zes", "ches", "shes")):
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss") and len(word) > 3:
        return word[:-1]
    return word


def _forms(word: str) -> list[str]:
    base = _singular(word)
    forms = {word, base, base + "s", base + "es"}
    if base.endswith("y"):
        forms.add(base[:-1] + "ies")
    return sorted(forms, key=len, reverse=True)


def _extra_pattern(term: str) -> re.Pattern[str] | None:
    """The matcher for a feature name, or None when the name is too short or generic."""
    words = re.findall(r"[^\W_]+", term.lower())
    if not words:
        return None
    if len(words) == 1 and len(words[0]) < 6:
        return None
    phrase = " ".join(words)
    if phrase in GENERIC or _singular(phrase) in GENERIC:
        return None
    if all(w in GENERIC or _singular(w) in GENERIC for w in words):
        return None
    head = [re.escape(w) for w in words[:-1]]
    last = "(?:" + "|".join(re.escape(f) for f in _forms(words[-1])) + ")"
    return re.compile(r"(?<![\w])" + r"[\s\-]+".join([*head, last]) + r"(?![\w])",
                      re.IGNORECASE)
