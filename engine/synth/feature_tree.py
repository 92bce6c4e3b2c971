"""The feature tree (SYNTHSMITH.md §1–3): normalising extractions, merging, and sampling.

A tree is a nested dict ``{name: subtree}``; a leaf is ``{}``. Insertion order is kept and
meaningful (it is the order prompts show and samples come back in). The roots are the feature
``CATEGORIES``; a path is a tuple of names, category first, as the store's ``features.path``
holds it (``engine.store.join_feature_path``).

Use::

    tree, report = extraction_to_tree(llm_json)         # one seed's features, canonical names
    merged = merge_trees(merged, tree)                  # §1: fold every seed into one tree
    sample = sample_subtree(merged, (2, 1, 2, 1), item_rng(seed, "evolve", step))
    prompt_json = tree_to_json(sample)                  # what the evolution prompt shows
    grown = merge_trees(merged, json_to_tree(answer))   # §2: merge the expansion back
    added = new_paths(merged, grown)
    configs = sample_configs(grown, 1000, [(3, 3, 1), (3, 3, 2), (4, 3, 2)],
                             min_leaves=25, seed=seed)  # §3: task configs

Value rules, shared by ``extraction_to_tree`` and ``json_to_tree`` (the paper's merge rules):
a list holds leaves, de-duplicated in order after ``normalize_name``; a dict recurses (keys
normalised, two keys that normalise alike are merged); a dict inside a list is merged in at
the list's level, so a list meeting a dict turns its items into keys; a string in a value
position becomes one leaf; free text (a name ``normalize_name`` refuses) is dropped with its
subtree, as are numbers, booleans and ``None`` (a key whose value is one goes too:
``{"dp": false}`` means "not used"); a key whose string value is prose stays. An empty list
or dict under a key keeps the key as a leaf: that is how ``tree_to_json`` writes a leaf that
has non-leaf siblings, and it keeps the round trip exact. ``prune_empty=True`` drops such
keys instead, for extraction prompts that hand the LLM a template of sub-categories to fill
(an unfilled one is then not a feature).

Sampling is reproducible per item: ``item_rng(seed, *labels)`` seeds a ``random.Random`` from
sha256 of the labels' repr, so a config or an evolution step can be re-drawn alone, on any
machine, from the seed stored with it (``config_rng_seed``; 63 bits, so it fits SQLite's
INTEGER). Weighted picks use Efraimidis–Spirakis keys, computed in log space so EpiCoder's
``(frequency + 1) ** (1 / temperature)`` weights cannot overflow at small temperatures.

What it leaves out
- No I/O and no store access: the stages read and write trees (engine/stages/{features,
  evolve,tasks}.py); frequencies come from the store as ``{path: frequency}``.
- No JSON repair (``engine.synth.json_repair``) and no prompt text.
- Names are not stemmed or de-synonymised ("bfs" and "breadth-first search" stay two
  features); underscores are kept, since code identifiers (``__builtin_popcount``) use them.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.schema import FEATURE_CATEGORIES
from engine.store import canonical_json

SUMMARY_KEY = "summary"  # the 11th key of an extraction; it goes to the report, not the tree
# The ten categories: the schema's list of extraction keys, less the free-text summary.
CATEGORIES: tuple[str, ...] = tuple(k for k in FEATURE_CATEGORIES if k != SUMMARY_KEY)
# Language roots say nothing about the task to invent, so configs and evolution skip them.
LANGUAGE_ROOTS: tuple[str, ...] = ("programming_language",)
SAMPLE_MODES: tuple[str, ...] = ("uniform", "frequency")

MAX_NAME_CHARS = 80
MAX_NAME_WORDS = 8

Tree = dict[str, "Tree"]
Path = tuple[str, ...]

# ---------------------------------------------------------------------------------------------
# Names and categories

_SPACE = re.compile(r"\s+")
_TRAILING_PUNCT = ".,:;!?"
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_KEY_SEPARATORS = re.compile(r"[\s\-/]+")
# Spellings an LLM uses for a category that plain normalisation does not reach.
_CATEGORY_ALIASES = {
    "language": "programming_language",
    "languages": "programming_language",
    "domain": "problem_domain",
    "paradigm": "algorithmic_paradigm",
    "math": "mathematics",
    "maths": "mathematics",
    "strategies": "problem_solving_strategies",
    "complexity": "complexity_analysis",
}


def normalize_name(text: Any) -> str | None:
    """A feature name in its one spelling, or None when ``text`` is no feature name.

    Strips, collapses whitespace, lower-cases and drops trailing ``. , : ; ! ?``. None for a
    non-string, an empty name, more than 80 characters or 8 words, or a newline anywhere (an
    LLM that wrote a line break wrote prose, not a name).
    """
    if not isinstance(text, str) or "\n" in text or "\r" in text:
        return None
    name = _SPACE.sub(" ", text).strip().lower().rstrip(_TRAILING_PUNCT).rstrip()
    if not name or len(name) > MAX_NAME_CHARS or len(name.split(" ")) > MAX_NAME_WORDS:
        return None
    return name


def _key_form(key: Any) -> str | None:
    # "DataStructures" / "data-structures" / "Data Structures" -> "data_structures".
    if not isinstance(key, str):
        return None
    key = _CAMEL.sub("_", key.strip())
    return _KEY_SEPARATORS.sub("_", key.lower()).strip("_") or None


def normalize_category(key: Any) -> str | None:
    """The category ``key`` names, or None when it names none of ``CATEGORIES``.

    Case, spaces, hyphens, slashes and camel case are ignored ("Data Structures",
    "data-structures", "DataStructures" -> "data_structures"); a singular ("algorithm") and
    the British "optimisation" are accepted, plus a few short forms ("math", "complexity").
    """
    form = _key_form(key)
    if form is None:
        return None
    form = form.replace("optimisation", "optimization")
    for cand in (form, form + "s"):
        if cand in CATEGORIES:
            return cand
    return _CATEGORY_ALIASES.get(form)


# ---------------------------------------------------------------------------------------------
# JSON <-> tree


@dataclass
class ExtractionReport:
    """What ``extraction_to_tree`` did not put in the tree."""

    unknown_keys: list[str] = field(default_factory=list)  # top-level keys naming no category
    dropped: int = 0  # values dropped as free text or of the wrong type
    summary: str | None = None


def _merge_into(dst: Tree, src: Tree) -> None:
    for name, sub in src.items():
        if name in dst:
            _merge_into(dst[name], sub)
        else:
            dst[name] = _copy(sub)


def _copy(tree: Tree) -> Tree:
    return {name: _copy(sub) for name, sub in tree.items()}


def _value_to_tree(value: Any, report: ExtractionReport, prune_empty: bool) -> Tree:
    """The children a JSON value stands for (see the module docstring's value rules)."""
    out: Tree = {}
    if isinstance(value, Mapping):
        for key, sub in value.items():
            name = normalize_name(key)
            if name is None:
                report.dropped += 1
                continue
            if not _is_container_or_str(sub):
                # {"dp": false} / {"dp": null} says "not used": the key goes with its value.
                report.dropped += 1
                continue
            child = _value_to_tree(sub, report, prune_empty)
            if not child and prune_empty:
                continue
            _merge_into(out, {name: child})
    elif isinstance(value, list | tuple):
        for item in value:
            if isinstance(item, Mapping | list | tuple):
                _merge_into(out, _value_to_tree(item, report, prune_empty))
            else:
                name = normalize_name(item)
                if name is None:
                    report.dropped += 1
                elif name not in out:
                    out[name] = {}
    elif isinstance(value, str):
        name = normalize_name(value)
        if name is None:
            report.dropped += 1
        else:
            out[name] = {}
    else:
        report.dropped += 1  # number, bool, None, anything else JSON cannot hold
    return out


def _is_container_or_str(value: Any) -> bool:
    return isinstance(value, Mapping | list | tuple | str)


def extraction_to_tree(
    obj: Mapping[str, Any], *, prune_empty: bool = False
) -> tuple[Tree, ExtractionReport]:
    """One LLM feature extraction (§1) -> (tree with canonical category roots, report).

    Roots come out in ``CATEGORIES`` order whatever order the LLM wrote them in, so merged
    trees grow their roots in one fixed order; two keys naming the same category are merged;
    a category with nothing under it is left out. ``"summary"`` goes to ``report.summary``
    (stripped; a non-string one is dropped and counted). Raises TypeError when ``obj`` is no
    mapping (the caller decides whether a list answer is a failed extraction).
    """
    if not isinstance(obj, Mapping):
        raise TypeError(f"an extraction is a JSON object, got {type(obj).__name__}")
    report = ExtractionReport()
    by_category: dict[str, Tree] = {}
    for key, value in obj.items():
        if _key_form(key) == SUMMARY_KEY:
            if isinstance(value, str) and value.strip():
                report.summary = _SPACE.sub(" ", value).strip()
            elif value is not None and value != "":
                report.dropped += 1
            continue
        cat = normalize_category(key)
        if cat is None:
            report.unknown_keys.append(str(key))
            continue
        _merge_into(by_category.setdefault(cat, {}), _value_to_tree(value, report, prune_empty))
    tree = {cat: by_category[cat] for cat in CATEGORIES if by_category.get(cat)}
    return tree, report


def json_to_tree(obj: Any, *, prune_empty: bool = False) -> Tree:
    """Any JSON value -> tree by the same value rules, no category handling (evolution answers).

    Callers that need roots to be categories filter with ``normalize_category`` themselves.
    """
    return _value_to_tree(obj, ExtractionReport(), prune_empty)


def _node_json(children: Tree) -> Any:
    if all(not sub for sub in children.values()):
        return list(children)  # [] for a leaf, a list of names when every child is a leaf
    return {name: _node_json(sub) for name, sub in children.items()}


def tree_to_json(tree: Tree) -> Any:
    """The tree as prompts show it: a node whose children are all leaves is a list of names, a
    leaf is ``[]``, anything else a dict. The top level is always a dict of roots.
    ``json_to_tree(tree_to_json(t)) == t`` for a tree of normalised names, order included."""
    return {name: _node_json(sub) for name, sub in tree.items()}


# ---------------------------------------------------------------------------------------------
# Tree algebra


def merge_trees(a: Tree, b: Tree) -> Tree:
    """A new tree holding both; b's nodes new to a come after a's, at every level."""
    out = _copy(a)
    _merge_into(out, b)
    return out


def _walk(tree: Tree, prefix: Path, leaves_only: bool, out: list[Path]) -> None:
    for name, sub in tree.items():
        path = (*prefix, name)
        if not leaves_only or not sub:
            out.append(path)
        _walk(sub, path, leaves_only, out)


def node_paths(tree: Tree) -> list[Path]:
    """Every node's path, pre-order."""
    out: list[Path] = []
    _walk(tree, (), False, out)
    return out


def leaf_paths(tree: Tree) -> list[Path]:
    """The paths of nodes with no children, pre-order."""
    out: list[Path] = []
    _walk(tree, (), True, out)
    return out


def count_leaves(tree: Tree) -> int:
    return sum(count_leaves(sub) if sub else 1 for sub in tree.values())


def new_paths(old: Tree, new: Tree) -> list[Path]:
    """The nodes of ``new`` that ``old`` lacks, pre-order (what an evolution step added)."""
    known = set(node_paths(old))
    return [p for p in node_paths(new) if p not in known]


def tree_from_paths(paths: Iterable[Sequence[str]]) -> Tree:
    """The tree holding these paths (and their ancestors), in first-seen order.

    Raises ValueError for an empty path or name, TypeError for a bare string (it would be read
    as a path of single characters; split store paths with ``split_feature_path`` first).
    """
    tree: Tree = {}
    for path in paths:
        if isinstance(path, str):
            raise TypeError(f"a path is a sequence of names, got the string {path!r}")
        if not path or any(not isinstance(p, str) or not p for p in path):
            raise ValueError(f"a path needs non-empty names, got {list(path)!r}")
        node = tree
        for name in path:
            node = node.setdefault(name, {})
    return tree


# ---------------------------------------------------------------------------------------------
# Reproducible randomness and weighted picks


def _seed_int(seed: int, *labels: object) -> int:
    # repr of ints, strs and tuples of them is the same in every process (no hash salt).
    digest = hashlib.sha256(repr((seed, *labels)).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # 63 bits: a signed SQLite INTEGER holds it


def item_rng(seed: int, *labels: object) -> random.Random:
    """A ``random.Random`` for one item, the same stream for the same arguments anywhere.

    Labels should be ints, strings, or tuples of them: their repr is stable; an object's
    default repr holds its address and is not.
    """
    return random.Random(_seed_int(seed, *labels))


def config_rng_seed(seed: int, index: int, attempt: int) -> int:
    """The seed of ``item_rng(seed, "config", index, attempt)``, stored with a config:
    ``random.Random(config_rng_seed(...))`` re-draws it."""
    return _seed_int(seed, "config", index, attempt)


def _pick_indices(
    n: int, k: int, rng: random.Random, log_weights: Sequence[float] | None
) -> list[int]:
    """k distinct indices of range(n), ascending; weighted by exp(log_weights) if given."""
    if k <= 0 or n == 0:
        return []
    if log_weights is None:
        return list(range(n)) if k >= n else sorted(rng.sample(range(n), k))
    # Efraimidis–Spirakis: keep the k largest u ** (1 / w). Same order as the smallest
    # log(-log u) - log w, which stays finite for huge w. Draw a u for every item even when
    # k >= n so the stream a call consumes depends only on n.
    keys = []
    for i, lw in enumerate(log_weights):
        u = rng.random()
        if lw == -math.inf:
            continue  # weight 0: never picked
        keys.append((math.log(-math.log(u)) - lw if u > 0.0 else math.inf, i))
    keys.sort()
    return sorted(i for _, i in keys[:k])


def sample_children(
    names: Sequence[str], k: int, rng: random.Random, weights: Sequence[float] | None = None
) -> list[str]:
    """k distinct names, without replacement, in their order in ``names`` (all when k >= len).

    Uniform, or weighted by Efraimidis–Spirakis keys ``u ** (1 / w)``. A name of weight 0 is
    never picked, so fewer than k may come back; a negative or NaN weight raises ValueError.
    """
    log_weights = None
    if weights is not None:
        if len(weights) != len(names):
            raise ValueError(f"{len(weights)} weights for {len(names)} names")
        if any(not w >= 0 for w in weights):  # catches NaN too
            raise ValueError(f"weights must be >= 0, got {list(weights)!r}")
        log_weights = [math.log(w) if w > 0 else -math.inf for w in weights]
    return [names[i] for i in _pick_indices(len(names), k, rng, log_weights)]


def _log_feature_weight(frequency: int, temperature: float) -> float:
    if frequency < 0:
        raise ValueError(f"frequency must be >= 0, got {frequency}")
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return math.log(frequency + 1) / temperature


def feature_weight(frequency: int, temperature: float) -> float:
    """EpiCoder-style weight ``(frequency + 1) ** (1 / temperature)``; the +1 lets evolved
    features (frequency 0) be picked. Low temperatures favour frequent features; the result
    is ``inf`` where it would overflow a float (sampling itself works in log space)."""
    try:
        return math.exp(_log_feature_weight(frequency, temperature))
    except OverflowError:
        return math.inf


# ---------------------------------------------------------------------------------------------
# Sampling for evolution (§2) and task configs (§3)


def sample_subtree(
    tree: Tree,
    branching: Sequence[int],
    rng: random.Random,
    *,
    frequencies: Mapping[Path, int] | None = None,
    mode: str = "uniform",
    temperature: float = 1.0,
    skip_roots: Sequence[str] = LANGUAGE_ROOTS,
) -> Tree:
    """A small subtree for one evolution step.

    At depth d, ``branching[d]`` children of every chosen node are picked (at depth 0 the
    roots, less ``skip_roots``); chosen nodes at depth ``len(branching) - 1`` come back as
    leaves. Mode ``"frequency"`` weights a node by ``feature_weight(frequencies.get(path, 0),
    temperature)``. ValueError for an unknown mode, an empty ``branching`` or a value < 1.
    """
    if mode not in SAMPLE_MODES:
        raise ValueError(f"mode={mode!r}: use one of {SAMPLE_MODES}")
    if not branching or any(b < 1 for b in branching):
        raise ValueError(f"branching needs values >= 1, got {list(branching)!r}")
    if mode == "frequency":
        _log_feature_weight(0, temperature)  # validates temperature even for an empty tree
    freqs = frequencies or {}
    skip = set(skip_roots)

    def pick(children: Tree, prefix: Path, depth: int) -> Tree:
        names = [n for n in children if depth > 0 or n not in skip]
        log_w = None
        if mode == "frequency":
            log_w = [_log_feature_weight(freqs.get((*prefix, n), 0), temperature) for n in names]
        out: Tree = {}
        for i in _pick_indices(len(names), branching[depth], rng, log_w):
            name = names[i]
            sub = children[name]
            out[name] = pick(sub, (*prefix, name), depth + 1) if depth + 1 < len(branching) else {}
        return out

    return pick(tree, (), 0)


def _check_shape(shape: Sequence[int]) -> tuple[int, int, int]:
    if len(shape) != 3 or any(not isinstance(k, int) or k < 1 for k in shape):
        raise ValueError(f"a config shape is (root_k, inner_k, leaf_k), each >= 1, got {shape!r}")
    return shape[0], shape[1], shape[2]


def sample_config(
    tree: Tree,
    shape: Sequence[int],
    rng: random.Random,
    *,
    skip_roots: Sequence[str] = LANGUAGE_ROOTS,
) -> Tree:
    """One feature config (§3) of shape (root_k, inner_k, leaf_k).

    ``root_k`` categories among those with children (less ``skip_roots``); under every chosen
    node, ``inner_k`` of its inner children (those with children of their own) and ``leaf_k``
    of its leaf children, down to the tree's real leaves. Every leaf of the config is a leaf
    of the tree, so no branch is empty. A config has about root_k * inner_k^(depth-2) * leaf_k
    leaves, which is why the paper's shapes (3,3,1) .. (4,3,2) reach ``min_leaves`` = 25 only
    on a tree grown a few levels deep by evolution. Uniform picks, kept in tree order.
    """
    root_k, inner_k, leaf_k = _check_shape(shape)

    def down(children: Tree) -> Tree:
        names = list(children)
        inner = [k for k, name in enumerate(names) if children[name]]
        leaves = [k for k, name in enumerate(names) if not children[name]]
        chosen = sorted([inner[i] for i in _pick_indices(len(inner), inner_k, rng, None)]
                        + [leaves[i] for i in _pick_indices(len(leaves), leaf_k, rng, None)])
        return {names[k]: down(children[names[k]]) for k in chosen}

    skip = set(skip_roots)
    roots = [n for n, sub in tree.items() if sub and n not in skip]
    return {roots[r]: down(tree[roots[r]])
            for r in _pick_indices(len(roots), root_k, rng, None)}


@dataclass(frozen=True)
class SampledConfig:
    """One item of ``sample_configs``: a config, or why none was found."""

    index: int  # item number 0..n-1
    config: Tree | None  # None when no acceptable config was found
    shape: tuple[int, int, int] | None
    n_leaves: int  # leaves of config; 0 when config is None
    rng_seed: int  # seed of the accepted attempt (of the last attempt when config is None)
    attempts: int  # attempts made, the accepted one included
    reason: str | None  # why config is None


def sample_configs(
    tree: Tree,
    n: int,
    shapes: Sequence[Sequence[int]],
    *,
    min_leaves: int,
    seed: int,
    max_attempts: int = 20,
    skip_roots: Sequence[str] = LANGUAGE_ROOTS,
) -> list[SampledConfig]:
    """n feature configs, each reproducible from (seed, index) alone.

    Item i, attempt a draws with ``item_rng(seed, "config", i, a)``: first the shape
    (``rng.choice(shapes)``), then ``sample_config``. The first attempt with at least
    ``min_leaves`` leaves (and at least 1: an empty config is never accepted) whose
    ``canonical_json`` no earlier item took is accepted. Items depend on each other only
    through that de-duplication, so the first m items of n are the m items of a run of m.
    """
    if n < 0 or max_attempts < 1:
        raise ValueError(f"need n >= 0 and max_attempts >= 1, got {n=}, {max_attempts=}")
    if not shapes:
        raise ValueError("shapes is empty")
    checked = [_check_shape(s) for s in shapes]
    need = max(min_leaves, 1)
    taken: set[str] = set()
    out: list[SampledConfig] = []
    for i in range(n):
        best = n_small = n_dup = 0
        rs = 0
        found: SampledConfig | None = None
        for a in range(max_attempts):
            rs = config_rng_seed(seed, i, a)
            rng = random.Random(rs)
            shape = rng.choice(checked)
            config = sample_config(tree, shape, rng, skip_roots=skip_roots)
            leaves = count_leaves(config)
            if leaves < need:
                best, n_small = max(best, leaves), n_small + 1
                continue
            key = canonical_json(config)
            if key in taken:
                n_dup += 1
                continue
            taken.add(key)
            found = SampledConfig(i, config, shape, leaves, rs, a + 1, None)
            break
        if found is None:
            if n_dup:
                reason = f"only duplicates in {max_attempts} draws"
                if n_small:
                    reason += f" ({n_small} had fewer than {need} leaves)"
            else:
                reason = f"fewer than {need} leaves in {max_attempts} draws (best {best})"
            found = SampledConfig(i, None, None, 0, rs, max_attempts, reason)
        out.append(found)
    return out
