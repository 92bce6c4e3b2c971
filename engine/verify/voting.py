"""Dual verification: vote each test input's expected output, then choose and check a golden
solution (SYNTHSMITH.md §6). Pure: it reads a matrix of run results and runs nothing.

    verdict = verify_task(cells, kinds, VerifyConfig(), known={0: "10"}, seed=7)
    verdict.labels, verdict.golden, verdict.reason          # our rule
    baseline = plain_majority(cells, VerifyConfig())        # the paper's reference rule

``cells[c][j]`` is candidate c on input j: a ``Cell`` with the sandbox status, the stdout
text and, for tasks judged by a checker, whether the checker accepted it. ``kinds[j]`` is
"sample", "edge", "random" or "stress"; ``known`` maps inputs whose expected output is
known (the statement's samples) to that output. The same matrix always gives the same
verdict (the hold-out split is seeded by ``seed``). ``engine/verify/folder.py`` builds the
matrix with the sandbox; ``tests/bench/verify_quality.py`` measures the rule.

The rule: exposure-weighted voting
----------------------------------
1. Comparing. Only clean runs (status "ok": exit 0, within limits) vote. Outputs compare by
   ``VerifyConfig.compare``: "whitespace" = the same tokens with any spacing, "strip" =
   ``normalize_output`` (trailing spaces and blank lines at either end dropped). With
   ``float_tolerance``, outputs compare token by token, and two tokens that both parse as
   finite numbers, at least one not an integer literal, match when |a - b| <= tol *
   max(1, |a|, |b|). Tolerant matching is not transitive, so the classes of equal outputs are
   built greedily: distinct outputs, most voters first (then lowest candidate index), join
   the first class whose representative they match. A class's text is its first output,
   normalised.
   Outputs too big to keep in memory (``outputs.py``) come as their start plus a digest of
   their comparison form (``Cell.digest``) and compare by it, exactly even with a tolerance.
2. Known outputs. An input with a known output (a statement sample, a trusted archive
   answer) is labelled with it whatever the vote. A candidate that ran clean there with
   another output, or crashed there (runtime_error), has one sample failure; a candidate
   that does not pass every known output (any other status included) is not *eligible*: it
   is never golden, however it votes. A statement's samples are the one source of truth
   that candidates cannot outvote.
3. Weights. Candidate c votes with weight w_c = sample_fail_discount ** sample_failures(c) *
   exposure_discount ** exposures(c), starting with exposures = 0. On each input the
   heaviest class is the label; an exact tie of the two heaviest leaves it unlabelled; an
   input with fewer than ``min_candidates_voting`` clean runs is unlabelled. A label is
   *confident* when its class holds >= ``exposure_share`` of the input's vote weight, has
   >= ``min_candidates_voting`` members and the input is not split (step 4). A candidate is
   *exposed* on a confident input when it ran clean there with another output, or crashed
   there; time limits expose nobody (a correct but slow solution still prints right
   answers elsewhere), nor do limits of ours (``OUR_LIMITS``: output over our cap, a
   sandbox fault): an input where most runs hit one is *unusable*: no label, no vote.
   Strongest evidence first: the confidence threshold starts at 1.0 and steps down by 0.05
   to ``exposure_share``; at each step exposures are recounted from the current labels and
   the weights recomputed until they stop changing (at most 20 rounds a step). Otherwise a
   wrong coalition holding just the threshold share on one input would expose the right
   minority in the same round as its own members get exposed where each stands alone.
   Why: a program is a fixed function, so a candidate shown wrong once is a wrong program,
   and its agreement elsewhere is weaker evidence. When the wrong programs are identical
   clones nothing in the matrix tells them from the right ones; only known outputs can, or
   the doubt itself: their majority is rarely confident.
4. Split votes. When the runner-up class weighs >= ``split_ratio`` x the winner, the input
   is flagged split: it is not confident.
5. Agreement of an input = the label's share of the input's vote weight (plain voting: of
   its clean runs). Rejections, first that applies: "no_clean_runs"; "unusable_tests: K
   inputs where most runs hit a limit of ours (...; the fix)"; "too_few_labelled_tests: K <
   MIN" (labels, known ones included, fewer than ``min_labelled_tests``); "low_agreement:
   mean A < MIN" (mean over labelled inputs, under ``min_agreement``);
   "too_few_confident_tests: K < MIN" (confident labels: precision over recall).
6. Golden. Only confident labels (known outputs included) pick and check it: a doubtful
   majority never crowns a golden solution. They are split by a seeded shuffle within each
   kind into a selection part and a held-out part (``holdout_fraction``). A candidate
   passes a test when it ran clean with the label's output. Score = kind weight of the
   selection tests passed / kind weight of all selection tests (``kind_weights``). Among
   eligible candidates the best score wins; ties go to more held-out tests passed, then the
   higher vote weight. If candidates still tied print different outputs somewhere (both
   clean), the evidence cannot tell two different programs apart: "ambiguous_golden: K
   equally supported candidates differ from the pick on up to D inputs"
   (``reject_ambiguous_golden``; off, the tie goes on). Remaining ties go to fewer failed
   runs (any status but "ok") over all inputs, then the most headroom on the largest
   inputs (CPU summed over inputs at least half the largest size, ``sizes``; a candidate
   only wins it with under 1/1.25 of the other's time and 10 ms: timing noise must not
   pick), then the lowest index: a brute force that is fast on tiny tests does not beat an
   efficient solution it would lose to at the real limits. "no_candidate_passes_samples"
   when nobody is eligible; "no_passing_candidate" if the best score is 0;
   "golden_failed_holdout: R < MIN" if it passes under ``holdout_min_pass`` of the held-out
   tests. A rejected task has no golden (``chosen`` still says who was best).
7. Inputs of an accepted task without a confident label (ties, splits, doubtful
   majorities, too few voters) take the golden solution's output as their label when it
   ran clean there (source "golden"), else no label: labels and golden solution never
   contradict each other, and no doubtful label reaches a reward.

Tasks with a checker (``checker=True``) have no labels: a candidate passes an input when
the checker accepted its output. Votes are the accepted and rejected counts of the clean
runs, agreement the accepted share; "labelled" means judged (some clean run was judged);
rejection by the checker or a crash counts as an exposure. On inputs with a known output
the checker compared against it, so failing one makes a candidate ineligible. A checker
that gave no verdict (``Cell.checker_error``: it crashed, timed out or said "fail")
rejects the task, "checker_failed": it is the task's fault, not a candidate's. The minimum
agreement does not apply (the checker judges, nobody votes), the golden choice and hold-out
check do.

``plain_majority`` is the reference rule the paper measures (labels 91.8/92.1/92.5% and
golden 84.2/85.0/85.8% correct with 4/8/16 candidates): unweighted plurality of the clean
outputs (a tie is flagged and goes to the output of the lowest-indexed candidate, as
``Counter.most_common`` would), no known outputs, golden = most labelled tests passed (ties
to fewer failed runs, then markedly less total CPU, then the lowest index), no hold-out, and
no rejection beyond having nothing to go on (no clean run, no label, nobody passing).

Measured, two benches (2 cores, bwrap):
- ``tests/bench/verify_families.py``: 30 hand-written tasks in six failure families (clones
  exposed only by a statement sample, clones nothing exposes, multi-MB outputs with and
  without a cap below them, any-answer tasks with 3-argument checkers, brute force vs
  efficient, a control). Golden precision ours 1.00 vs plain 0.57-0.60, recall (right
  goldens / tasks with a right candidate) 0.77 vs 0.57-0.60; 1.00 vs 0.00 on sample-exposed
  clones; the labels ours delivers (accepted tasks) are all right, against 0.92 for plain;
  over every input both label 0.92 (clone-majority stress inputs and outputs over the cap:
  nothing in the evidence can label them, so ours rejects those tasks).
- ``tests/bench/verify_quality.py`` (the 38 bundled seeds, 152 tasks per size, mutant
  candidates with repeated popular bugs; plain -> ours with 4 / 8 / 16 candidates): labels
  right 83.9 / 91.3 / 92.7% -> 91.3 / 96.6 / 97.5%; golden precision (right goldens /
  accepted tasks) 73.0 / 82.9 / 84.2% -> 93.2 / 95.5 / 96.8%, accepting 77 / 88 / 82% of
  tasks; right goldens over all tasks 73.0 / 82.9 / 84.2% -> 71.7 / 83.6 / 79.6%. Before
  doubtful labels stopped picking goldens (and split inputs stopped breaking ties) ours was
  88.2 / 93.2 / 92.0% precise accepting 89 / 97 / 98%: rejecting a task costs far less than
  a wrong golden. Most of the gain still comes from the known sample outputs (without
  them: precision 89.5 / 89.7 / 94.4%).

Leaves out: per-input confidence as a probability (weights are not calibrated), clustering
candidates by whole-behaviour signature, and judging against a checker and labels at once.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from engine.schema import VerifyConfig
from engine.verify.sandbox import normalize_output

__all__ = [
    "KINDS", "OUR_LIMITS", "CandidateScore", "Cell", "InputVote", "Kind", "OutputClass",
    "TaskVerdict", "comparison_form", "group_outputs", "output_digest", "plain_majority",
    "same_output", "split_tests", "verify_task",
]

Kind = Literal["sample", "edge", "random", "stress"]
KINDS: tuple[Kind, ...] = ("sample", "edge", "random", "stress")
Rule = Literal["weighted", "majority"]
Source = Literal["vote", "known", "golden"]

CLEAN = "ok"
CRASHES = frozenset({"runtime_error"})  # a bug, not a slow correct program
# Limits and faults of ours, not evidence against a program: a correct solution printing
# more than our output cap is still correct.
OUR_LIMITS = frozenset({"output_limit", "internal_error"})
MAX_ROUNDS = 20
_REL_EPS = 1e-9


# --- Inputs and results

@dataclass(frozen=True)
class Cell:
    """One candidate on one input: what the sandbox said, and the checker if any."""

    status: str  # a sandbox status; only "ok" votes
    output: str = ""  # stdout text, or only its start when ``digest`` is given
    accepted: bool | None = None  # checker tasks: the checker's verdict on this output
    cpu_s: float = 0.0
    # sha256 of the output's comparison form (``output_digest``): outputs too big to keep in
    # memory are compared and voted by it; None: compared by ``output`` itself.
    digest: str | None = None
    checker_error: str | None = None  # checker tasks: the checker failed on this output


@dataclass(frozen=True)
class OutputClass:
    """Clean outputs that compare equal on one input."""

    text: str  # the first member's output, normalised (only its start when ``digest``)
    members: tuple[int, ...]  # candidate indices, ascending
    weight: float  # the members' vote weights summed
    digest: str | None = None  # the members' output digest, when compared by digest

    @property
    def count(self) -> int:
        return len(self.members)


@dataclass(frozen=True)
class InputVote:
    classes: tuple[OutputClass, ...]  # heaviest first (most votes first in plain voting)
    voters: int  # clean runs (checker tasks: judged clean runs)
    label: str | None
    source: Source | None  # where the label comes from
    agreement: float | None  # the label's share of the vote weight; None: unlabelled
    tie: bool  # the two heaviest classes weigh the same: no label from the vote
    split: bool  # the runner-up weighs >= split_ratio x the winner
    confident: bool  # the label may expose disagreeing candidates and judge the golden pick
    accepted: int | None = None  # checker tasks only
    rejected: int | None = None
    label_digest: str | None = None  # the label's class digest, when compared by digest
    unusable: bool = False  # most runs hit a limit of ours: nobody can be judged here

    @property
    def label_members(self) -> tuple[int, ...]:
        for cls in self.classes:
            if self.label is not None and cls.text == self.label \
                    and cls.digest == self.label_digest:
                return cls.members
        return ()

    @property
    def label_class(self) -> OutputClass | None:
        return next((cls for cls in self.classes if self.label is not None
                     and cls.text == self.label and cls.digest == self.label_digest), None)


@dataclass(frozen=True)
class CandidateScore:
    weight: float  # final vote weight (1.0 in plain voting)
    exposures: int
    sample_failures: int
    clean_runs: int
    failed_runs: int  # any status but "ok"
    cpu_s: float
    selection_score: float | None  # weighted share of selection tests passed
    holdout_pass: float | None  # share of held-out tests passed
    eligible: bool = True  # passed every input with a known output: may be golden
    biggest_input_cpu_s: float | None = None  # CPU on the largest input (headroom)


@dataclass(frozen=True)
class TaskVerdict:
    rule: Rule
    inputs: tuple[InputVote, ...]
    candidates: tuple[CandidateScore, ...]
    verdicts: tuple[tuple[str, ...], ...]  # [c][j]: "ok"/"wrong" vs the label, else status
    selection: tuple[int, ...]  # inputs that picked the golden solution
    holdout: tuple[int, ...]  # inputs that checked it
    chosen: int | None  # best candidate on the selection tests, before the hold-out check
    golden: int | None  # chosen, when the task is accepted
    reason: str | None  # why the task is rejected; None: accepted
    holdout_pass_rate: float | None
    rounds: int  # weighting rounds until the weights settled

    @property
    def labels(self) -> list[str | None]:
        return [v.label for v in self.inputs]

    @property
    def accepted(self) -> bool:
        return self.reason is None

    @property
    def mean_agreement(self) -> float | None:
        values = [v.agreement for v in self.inputs if v.agreement is not None]
        return sum(values) / len(values) if values else None


# --- Comparing outputs

def comparison_form(text: str, compare: str) -> str:
    """What equal outputs have in common: their tokens ("whitespace") or normalised text."""
    return " ".join(text.split()) if compare == "whitespace" else normalize_output(text)


def _is_integer(token: str) -> bool:
    return token.lstrip("+-").isdigit()


def _number(token: str) -> float | None:
    try:
        value = float(token)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _tokens_match(a: str, b: str, tolerance: float) -> bool:
    if a == b:
        return True
    if _is_integer(a) and _is_integer(b):
        return False  # integers are exact even with a tolerance
    x, y = _number(a), _number(b)
    if x is None or y is None:
        return False
    return abs(x - y) <= tolerance * max(1.0, abs(x), abs(y))


def same_output(a: str, b: str, cfg: VerifyConfig) -> bool:
    """Whether two outputs are the same answer under ``cfg.compare`` and ``float_tolerance``."""
    if cfg.float_tolerance is None:
        return comparison_form(a, cfg.compare) == comparison_form(b, cfg.compare)
    ta, tb = a.split(), b.split()
    return len(ta) == len(tb) and all(_tokens_match(x, y, cfg.float_tolerance)
                                      for x, y in zip(ta, tb, strict=True))


def output_digest(text: str, cfg: VerifyConfig) -> str:
    """sha256 of an output's comparison form: equal digests are the same answer (without a
    float tolerance). Big outputs are kept as their start and this digest only."""
    return hashlib.sha256(comparison_form(text, cfg.compare).encode()).hexdigest()


def _group(outputs: Sequence[tuple[int, Cell]], cfg: VerifyConfig
           ) -> list[tuple[str, tuple[int, ...], str | None]]:
    """(candidate, clean cell) pairs of one input -> classes (text, members, digest), most
    members first. A cell with a digest compares by it (exactly, even with a tolerance: its
    whole text is not in memory); the others by their comparison form."""
    members_of: dict[str, list[int]] = {}
    first: dict[str, Cell] = {}
    for candidate, cell in sorted(outputs, key=lambda pair: pair[0]):
        key = cell.digest or comparison_form(cell.output, cfg.compare)
        members_of.setdefault(key, []).append(candidate)
        first.setdefault(key, cell)
    keys = sorted(members_of, key=lambda k: (-len(members_of[k]), members_of[k][0]))
    groups: list[tuple[Cell, list[int]]] = []  # (representative cell, members)
    for key in keys:
        cell = first[key]
        if cfg.float_tolerance is not None and cell.digest is None:
            home = next((g for g in groups if g[0].digest is None
                         and same_output(g[0].output, cell.output, cfg)), None)
            if home is not None:
                home[1].extend(members_of[key])
                continue
        groups.append((cell, list(members_of[key])))
    classes = [(cell.output if cell.digest else normalize_output(cell.output),
                tuple(sorted(members)), cell.digest) for cell, members in groups]
    return sorted(classes, key=lambda c: (-len(c[1]), c[1][0]))


def group_outputs(outputs: Sequence[tuple[int, str]],
                  cfg: VerifyConfig) -> list[tuple[str, tuple[int, ...]]]:
    """(candidate, output) pairs of one input -> classes (text, members), most members first."""
    return [(text, members) for text, members, _ in
            _group([(c, Cell(CLEAN, text)) for c, text in outputs], cfg)]


def _matches(cls: OutputClass, text: str, cfg: VerifyConfig) -> bool:
    """Whether a class's outputs are the known answer ``text``."""
    if cls.digest is not None:
        return cls.digest == output_digest(text, cfg)
    return same_output(cls.text, text, cfg)


# --- Tallying one input

def _tally(groups: list[tuple[str, tuple[int, ...], str | None]], weights: Sequence[float],
           cfg: VerifyConfig, known_text: str | None, min_voters: int,
           split_ratio: float, exposure_share: float, tie_label: bool = False) -> InputVote:
    classes = [OutputClass(text, members, sum(weights[c] for c in members), digest)
               for text, members, digest in groups]
    classes.sort(key=lambda k: (-k.weight, -k.count, k.members[0]))
    voters = sum(k.count for k in classes)
    if known_text is not None:
        home = next((k for k in classes if _matches(k, known_text, cfg)), None)
        if home is None:
            classes.append(OutputClass(normalize_output(known_text), (), 0.0))
            label, digest = normalize_output(known_text), None
        else:
            label, digest = home.text, home.digest
        return InputVote(tuple(classes), voters, label, "known", _share(home, classes), False,
                         False, True, label_digest=digest)
    if not classes or voters < min_voters:
        return InputVote(tuple(classes), voters, None, None, None, False, False, False)
    top = classes[0]
    second = classes[1] if len(classes) > 1 else None
    tie = second is not None and top.weight - second.weight <= _REL_EPS * top.weight
    if tie and not tie_label:
        return InputVote(tuple(classes), voters, None, None, None, True, True, False)
    split = second is not None and second.weight >= split_ratio * top.weight
    total = sum(k.weight for k in classes)
    confident = (not split and top.count >= min_voters
                 and top.weight >= exposure_share * total * (1 - _REL_EPS))
    return InputVote(tuple(classes), voters, top.text, "vote", _share(top, classes), tie,
                     split, confident, label_digest=top.digest)


def _share(home: OutputClass | None, classes: Sequence[OutputClass]) -> float:
    """Agreement: the label's share of the input's vote weight (0 when nobody gave it)."""
    total = sum(k.weight for k in classes)
    return home.weight / total if home is not None and total > 0 else 0.0


def _shape(cells: Sequence[Sequence[Cell]], kinds: Sequence[str]) -> tuple[int, int]:
    m = len(kinds)
    bad = [c for c, row in enumerate(cells) if len(row) != m]
    if bad:
        raise ValueError(f"cells rows {bad} do not have one cell per input ({m} kinds given)")
    unknown = sorted({k for k in kinds if k not in KINDS})
    if unknown:
        raise ValueError(f"unknown test kinds {unknown}; use one of {list(KINDS)}")
    return len(cells), m


# --- Splitting and picking the golden solution

def split_tests(tests: Sequence[int], kinds: Sequence[str], holdout_fraction: float,
                seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Tests -> (selection, held out): shuffled within each kind, dealt out in turn."""
    rng = random.Random(seed)
    dealt: list[int] = []
    for kind in KINDS:
        group = sorted(j for j in tests if kinds[j] == kind)
        rng.shuffle(group)
        dealt.extend(group)
    held = {dealt[p] for p in range(len(dealt))
            if math.floor((p + 1) * holdout_fraction + 1e-9)
            > math.floor(p * holdout_fraction + 1e-9)}
    if len(dealt) >= 2 and not held:
        held = {dealt[-1]}
    if len(dealt) >= 2 and len(held) == len(dealt):
        held.discard(dealt[0])
    return (tuple(sorted(j for j in dealt if j not in held)), tuple(sorted(held)))


# Two CPU times within this of each other are the same speed: timing noise must not pick.
HEADROOM_RATIO, HEADROOM_SLACK_S = 1.25, 0.01


def _pick(pool: Sequence[int], scores: Sequence[float], outside: Sequence[int],
          weights: Sequence[float] | None, failed: Sequence[int], cpu: Sequence[float],
          ratio: float, slack: float) -> tuple[int, list[int]]:
    """-> (the pick among ``pool``, every candidate as well supported: same score, same
    other tests passed, same vote weight)."""
    best = max(scores[c] for c in pool)
    tied = [c for c in pool if scores[c] >= best - _REL_EPS]
    most = max(outside[c] for c in tied)
    tied = [c for c in tied if outside[c] == most]
    if weights is not None:
        heaviest = max(weights[c] for c in tied)
        tied = [c for c in tied if weights[c] >= heaviest * (1 - _REL_EPS)]
    supported = list(tied)
    fewest = min(failed[c] for c in tied)
    tied = [c for c in tied if failed[c] == fewest]
    # Markedly less CPU only: small differences are noise and would make reruns disagree.
    least = min(cpu[c] for c in tied)
    tied = [c for c in tied if cpu[c] <= ratio * least + slack]
    return tied[0], supported


def _disagreements(inputs: Sequence[InputVote], a: int, b: int) -> int:
    """Inputs where both candidates ran clean with different outputs."""
    count = 0
    for vote in inputs:
        home = [k for k in vote.classes if a in k.members or b in k.members]
        count += len(home) == 2
    return count


def _statuses(cells: Sequence[Sequence[Cell]], passes: list[list[bool | None]]
              ) -> tuple[tuple[str, ...], ...]:
    return tuple(
        tuple(cell.status if cell.status != CLEAN
              else ("wrong" if passes[c][j] is False else "ok")
              for j, cell in enumerate(row))
        for c, row in enumerate(cells))


def _biggest(sizes: Sequence[int]) -> tuple[list[int], int | None]:
    """The largest inputs (at least half the largest size) and the largest one."""
    if not sizes:
        return [], None
    top = max(sizes)
    return [j for j, size in enumerate(sizes) if size * 2 >= top], sizes.index(top)


@dataclass
class _Golden:
    selection: tuple[int, ...]
    holdout: tuple[int, ...]
    chosen: int | None
    scores: list[float]
    rates: list[float | None]
    reason: str | None


def _choose_golden(cells, kinds, cfg: VerifyConfig, inputs: Sequence[InputVote],
                   passes: list[list[bool | None]], weights: Sequence[float] | None,
                   seed: int, weighted: bool, eligible: Sequence[bool],
                   sizes: Sequence[int]) -> _Golden:
    n = len(cells)
    labelled = [j for j, v in enumerate(inputs) if _is_labelled(v)]
    if weighted:
        # Only confident labels (known outputs, judged checker runs, votes holding the
        # confidence share) pick and check the golden solution: a doubtful majority never
        # crowns one.
        trusted = [j for j in labelled if inputs[j].confident]
        selection, holdout = split_tests(trusted, kinds, cfg.holdout_fraction, seed)
        kind_weight = cfg.kind_weights.model_dump()
        test_weight = {j: kind_weight[kinds[j]] for j in selection}
        if sum(test_weight.values()) <= 0:
            test_weight = dict.fromkeys(selection, 1.0)
    else:
        selection, holdout = tuple(labelled), ()
        test_weight = dict.fromkeys(selection, 1.0)
    total = sum(test_weight.values())
    scores = [sum(w for j, w in test_weight.items() if passes[c][j]) / total if total else 0.0
              for c in range(n)]
    rates = [sum(1 for j in holdout if passes[c][j]) / len(holdout) if holdout else None
             for c in range(n)]
    if not selection or n == 0:
        return _Golden(selection, holdout, None, scores, rates,
                       "no_confident_tests" if weighted and n else None)
    pool = [c for c in range(n) if eligible[c]]
    if not pool:
        return _Golden(selection, holdout, None, scores, rates,
                       f"no_candidate_passes_samples: all {n} candidates fail an input with a "
                       "known output")
    failed = [sum(cell.status != CLEAN for cell in row) for row in cells]
    # Among candidates the selection cannot tell apart, one that contradicts the hold-out
    # would be a needless rejection, so held-out tests passed break ties first.
    outside = [sum(1 for j in holdout if passes[c][j]) for c in range(n)]
    if weighted:  # efficiency: the most headroom on the largest inputs, not the tiny ones
        big, _ = _biggest(sizes)
        cpu = [sum(cells[c][j].cpu_s for j in big) for c in range(n)]
        chosen, supported = _pick(pool, scores, outside, weights, failed, cpu,
                                  HEADROOM_RATIO, HEADROOM_SLACK_S)
    else:  # the reference rule as the paper's baseline had it: total CPU, coarse
        cpu = [sum(cell.cpu_s for cell in row) for row in cells]
        chosen, supported = _pick(pool, scores, outside, None, failed, cpu, 2.0, 0.5)
    if scores[chosen] <= 0:
        return _Golden(selection, holdout, None, scores, rates, "no_passing_candidate")
    if weighted and cfg.reject_ambiguous_golden:  # equal evidence, different programs
        rivals = [c for c in supported if _disagreements(inputs, chosen, c)]
        if rivals:
            contested = max(_disagreements(inputs, chosen, c) for c in rivals)
            return _Golden(selection, holdout, chosen, scores, rates,
                           f"ambiguous_golden: {len(rivals)} equally supported candidates "
                           f"differ from the pick on up to {contested} inputs")
    rate = rates[chosen]
    if weighted and rate is not None and rate < cfg.holdout_min_pass - _REL_EPS:
        return _Golden(selection, holdout, chosen, scores, rates,
                       f"golden_failed_holdout: {rate:.2f} < {cfg.holdout_min_pass:.2f}")
    return _Golden(selection, holdout, chosen, scores, rates, None)


def _unusable(cells: Sequence[Sequence[Cell]], j: int) -> bool:
    """Most runs on input ``j`` hit a limit of ours: its outputs tell nothing."""
    hit = sum(row[j].status in OUR_LIMITS for row in cells)
    return 2 * hit > len(cells)


def _unusable_reason(cells, inputs: Sequence[InputVote]) -> str | None:
    bad = [j for j, v in enumerate(inputs) if v.unusable]
    if not bad:
        return None
    statuses = Counter(row[j].status for j in bad for row in cells
                       if row[j].status in OUR_LIMITS)
    fixes = {"output_limit": "output over our cap: raise verify.max_output_kb "
                             "(verify-folder: --max-output-mb)",
             "internal_error": "the sandbox failed: see the runs' details"}
    why = "; ".join(fixes.get(s, s) for s in sorted(statuses))
    return (f"unusable_tests: {len(bad)} inputs where most runs hit a limit of ours "
            f"({dict(sorted(statuses.items()))}; {why})")


def _first_rejection(cells, inputs: Sequence[InputVote], cfg: VerifyConfig,
                     use_agreement: bool, min_labelled: int, weighted: bool) -> str | None:
    if not any(cell.status == CLEAN for row in cells for cell in row):
        return "no_clean_runs"
    if weighted:
        unusable = _unusable_reason(cells, inputs)
        if unusable:
            return unusable
    labelled = [v for v in inputs if _is_labelled(v)]
    if len(labelled) < min_labelled:
        return f"too_few_labelled_tests: {len(labelled)} < {min_labelled}"
    if use_agreement:
        mean = sum(v.agreement or 0.0 for v in labelled) / len(labelled)
        if mean < cfg.min_agreement - _REL_EPS:
            return f"low_agreement: mean {mean:.2f} < {cfg.min_agreement:.2f}"
    if weighted:
        trusted = sum(v.confident for v in labelled)
        if trusted < min_labelled:
            return (f"too_few_confident_tests: {trusted} < {min_labelled} "
                    f"({len(labelled) - trusted} labels below the confidence share "
                    f"{cfg.exposure_share:.2f})")
    return None


# --- The rules

def _sizes_of(sizes: Sequence[int] | None, m: int) -> list[int]:
    if sizes is None:
        return [0] * m
    if len(sizes) != m:
        raise ValueError(f"{len(sizes)} input sizes given for {m} inputs")
    return list(sizes)


def verify_task(cells: Sequence[Sequence[Cell]], kinds: Sequence[str],
                cfg: VerifyConfig | None = None, *, known: Mapping[int, str] | None = None,
                checker: bool = False, seed: int = 0,
                sizes: Sequence[int] | None = None) -> TaskVerdict:
    """Exposure-weighted voting, golden choice and hold-out check (module docstring).

    ``sizes[j]`` is input j's size in bytes: the golden pick prefers headroom on the largest
    inputs. ``known`` maps inputs to their known outputs (statement samples, trusted answers).
    """
    cfg = cfg or VerifyConfig()
    n, m = _shape(cells, kinds)
    sizes = _sizes_of(sizes, m)
    known = dict(known or {})
    outside = sorted(j for j in known if not 0 <= j < m)
    if outside:
        raise ValueError(f"known outputs for inputs {outside}, but there are {m} inputs")
    if checker:
        return _judged(cells, kinds, cfg, seed, True, set(known), sizes)
    groups = [_group([(c, cells[c][j]) for c in range(n) if cells[c][j].status == CLEAN], cfg)
              for j in range(m)]
    unusable = {j for j in range(m) if _unusable(cells, j)}
    sample_failures = [0] * n
    eligible = [True] * n
    for j, text in known.items():
        home = next((members for label, members, digest in groups[j]
                     if _matches(OutputClass(label, members, 0.0, digest), text, cfg)), ())
        for c in range(n):
            status = cells[c][j].status
            if (status == CLEAN and c not in home) or status in CRASHES:
                sample_failures[c] += 1
            if status != CLEAN or c not in home:
                eligible[c] = False  # a candidate that fails a sample is never golden
    base = [cfg.sample_fail_discount ** f for f in sample_failures]

    def tally(weights: list[float], share: float) -> tuple[list[InputVote], list[int]]:
        inputs = [_tally(groups[j], weights, cfg, known.get(j), cfg.min_candidates_voting,
                         cfg.split_ratio, share) for j in range(m)]
        for j in unusable:
            inputs[j] = replace(inputs[j], label=None, source=None, agreement=None,
                                confident=False, label_digest=None, unusable=True)
        exposures = [0] * n
        for j, vote in enumerate(inputs):
            if not vote.confident or j in known:
                continue
            right = set(vote.label_members)
            for c in range(n):
                status = cells[c][j].status
                if (status == CLEAN and c not in right) or status in CRASHES:
                    exposures[c] += 1
        return inputs, exposures

    weights, rounds = base, 0
    for share in _confidence_steps(cfg.exposure_share):  # strongest evidence first
        for _ in range(MAX_ROUNDS):
            rounds += 1
            inputs, exposures = tally(weights, share)
            new = [base[c] * cfg.exposure_discount ** exposures[c] for c in range(n)]
            if new == weights:
                break
            weights = new
    inputs, exposures = tally(weights, cfg.exposure_share)

    reason = _first_rejection(cells, inputs, cfg, True, cfg.min_labelled_tests, True)
    passes = _passes(cells, inputs)
    pick = _choose_golden(cells, kinds, cfg, inputs, passes, weights, seed, True, eligible,
                          sizes)
    reason = reason or pick.reason
    golden = pick.chosen if reason is None else None
    if golden is not None:
        # Inputs without a confident label (ties, splits, doubtful majorities, too few
        # voters) take the golden solution's output, or no label when it has none there:
        # labels and golden solution never contradict each other, and no doubtful label
        # reaches a reward.
        for j, vote in enumerate(inputs):
            if vote.source == "known" or vote.unusable or vote.confident:
                continue
            cell = cells[golden][j]
            if cell.status == CLEAN:
                home = next(k for k in vote.classes if golden in k.members)
                inputs[j] = _relabel(vote, home)
            elif vote.label is not None:
                inputs[j] = replace(vote, label=None, source=None, agreement=None,
                                    label_digest=None)
        passes = _passes(cells, inputs)
    return TaskVerdict(
        "weighted", tuple(inputs),
        _scores(cells, weights, exposures, sample_failures, pick.scores, pick.rates, eligible,
                sizes),
        _statuses(cells, passes), pick.selection, pick.holdout, pick.chosen, golden, reason,
        pick.rates[pick.chosen] if pick.chosen is not None else None, rounds)


def plain_majority(cells: Sequence[Sequence[Cell]], cfg: VerifyConfig | None = None, *,
                   kinds: Sequence[str] | None = None, checker: bool = False) -> TaskVerdict:
    """The reference rule: unweighted plurality, most tests passed, no hold-out."""
    cfg = cfg or VerifyConfig()
    kinds = list(kinds) if kinds is not None else ["random"] * (len(cells[0]) if cells else 0)
    n, m = _shape(cells, kinds)
    if checker:
        return _judged(cells, kinds, cfg, 0, False, set(), [0] * m)
    ones = [1.0] * n
    inputs = [_tally(_group([(c, cells[c][j]) for c in range(n)
                             if cells[c][j].status == CLEAN], cfg),
                     ones, cfg, None, cfg.min_candidates_voting, cfg.split_ratio, 1.0,
                     tie_label=True)
              for j in range(m)]
    inputs = [replace(v, confident=False) for v in inputs]
    reason = _first_rejection(cells, inputs, cfg, False, 1, False)
    passes = _passes(cells, inputs)
    everyone = [True] * n
    pick = _choose_golden(cells, kinds, cfg, inputs, passes, None, 0, False, everyone, [0] * m)
    reason = reason or pick.reason
    return TaskVerdict(
        "majority", tuple(inputs),
        _scores(cells, ones, [0] * n, [0] * n, pick.scores, pick.rates, everyone, [0] * m),
        _statuses(cells, passes), pick.selection, pick.holdout, pick.chosen,
        pick.chosen if reason is None else None, reason, None, 1)


def _judged(cells, kinds, cfg: VerifyConfig, seed: int, weighted: bool, known: set[int],
            sizes: Sequence[int]) -> TaskVerdict:
    """Checker tasks: the checker says who passes; nobody votes on outputs. On inputs with
    a known output the checker compared against it, so failing one bars the golden pick."""
    n, m = len(cells), len(kinds)
    inputs: list[InputVote] = []
    exposures = [0] * n
    unusable = {j for j in range(m) if _unusable(cells, j)} if weighted else set()
    for j in range(m):
        column = [cells[c][j] for c in range(n)]
        accepted = [c for c, cell in enumerate(column)
                    if cell.status == CLEAN and cell.accepted is True]
        rejected = [c for c, cell in enumerate(column)
                    if cell.status == CLEAN and cell.accepted is False]
        judged = len(accepted) + len(rejected)
        if judged and j not in unusable:
            for c, cell in enumerate(column):
                if c in rejected or cell.status in CRASHES:
                    exposures[c] += 1
        inputs.append(InputVote((), judged, None, None,
                                len(accepted) / judged if judged else None, False, False,
                                bool(judged) and j not in unusable, len(accepted),
                                len(rejected), unusable=j in unusable))
    weights = [cfg.exposure_discount ** e for e in exposures] if weighted else [1.0] * n
    passes: list[list[bool | None]] = [
        [(cells[c][j].status == CLEAN and cells[c][j].accepted is True)
         if inputs[j].voters and not inputs[j].unusable else None for j in range(m)]
        for c in range(n)]
    eligible = [all(passes[c][j] for j in known) for c in range(n)]
    sample_failures = [sum(not passes[c][j] for j in known) for c in range(n)]
    reason = None
    failures = [cell.checker_error for row in cells for cell in row
                if cell.status == CLEAN and cell.checker_error]
    if weighted and failures:
        # A checker that crashes, times out or says "fail" is the task's fault, not a
        # candidate's: no judgement of this task can be trusted.
        reason = (f"checker_failed: {len(failures)} of "
                  f"{sum(cell.status == CLEAN for row in cells for cell in row)} checks "
                  f"gave no verdict (first: {failures[0]})")
    reason = reason or _first_rejection(cells, inputs, cfg, False,
                                        cfg.min_labelled_tests if weighted else 1, weighted)
    pick = _choose_golden(cells, kinds, cfg, inputs, passes,
                          weights if weighted else None, seed, weighted,
                          eligible if weighted else [True] * n, sizes)
    reason = reason or pick.reason
    return TaskVerdict(
        "weighted" if weighted else "majority", tuple(inputs),
        _scores(cells, weights, exposures if weighted else [0] * n,
                sample_failures if weighted else [0] * n, pick.scores, pick.rates,
                eligible if weighted else [True] * n, sizes),
        _statuses(cells, passes), pick.selection, pick.holdout, pick.chosen,
        pick.chosen if reason is None else None, reason,
        pick.rates[pick.chosen] if pick.chosen is not None else None, 1)


def _is_labelled(vote: InputVote) -> bool:
    """Has a label, or (checker tasks) was judged on some clean run."""
    return vote.label is not None or (vote.accepted is not None and vote.voters > 0
                                      and not vote.unusable)


def _confidence_steps(lowest: float) -> list[float]:
    """1.0, 0.95, ... down to ``lowest``: the exposing threshold, lowered step by step."""
    steps = [round(1.0 - 0.05 * k, 10) for k in range(21) if 1.0 - 0.05 * k > lowest + 1e-9]
    return [*steps, lowest]


def _relabel(vote: InputVote, home: OutputClass) -> InputVote:
    if home.text == vote.label and home.digest == vote.label_digest:
        return vote  # the golden solution confirms the vote: nothing changes
    return replace(vote, label=home.text, source="golden",
                   agreement=_share(home, vote.classes), confident=False,
                   label_digest=home.digest)


def _passes(cells, inputs: Sequence[InputVote]) -> list[list[bool | None]]:
    """[c][j]: True/False against the label; None where the input has no label."""
    members = [set(v.label_members) if v.label is not None else None for v in inputs]
    return [[None if members[j] is None else (cell.status == CLEAN and c in members[j])
             for j, cell in enumerate(row)] for c, row in enumerate(cells)]


def _scores(cells, weights, exposures, sample_failures, scores, rates, eligible, sizes
            ) -> tuple[CandidateScore, ...]:
    _, largest = _biggest(sizes)
    return tuple(
        CandidateScore(weights[c], exposures[c], sample_failures[c],
                       sum(cell.status == CLEAN for cell in row),
                       sum(cell.status != CLEAN for cell in row),
                       sum(cell.cpu_s for cell in row), scores[c] if scores else None,
                       rates[c] if rates else None, eligible[c],
                       row[largest].cpu_s if largest is not None else None)
        for c, row in enumerate(cells))
