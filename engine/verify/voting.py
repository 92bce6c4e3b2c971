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
2. Known outputs. An input with a known output is labelled with it whatever the vote. A
   candidate that ran clean there with another output, or crashed there (runtime_error,
   output_limit), has one sample failure.
3. Weights. Candidate c votes with weight w_c = sample_fail_discount ** sample_failures(c) *
   exposure_discount ** exposures(c), starting with exposures = 0. On each input the
   heaviest class is the label; an exact tie of the two heaviest leaves it unlabelled; an
   input with fewer than ``min_candidates_voting`` clean runs is unlabelled. A label is
   *confident* when its class holds >= ``exposure_share`` of the input's vote weight, has
   >= ``min_candidates_voting`` members and the input is not split (step 4). A candidate is
   *exposed* on a confident input when it ran clean there with another output, or crashed
   there; time and memory limits expose nobody, since a correct but slow solution still
   prints right answers elsewhere. Strongest evidence first: the confidence threshold starts
   at 1.0 and steps down by 0.05 to ``exposure_share``; at each step exposures are recounted
   from the current labels and the weights recomputed until they stop changing (at most 20
   rounds a step). Otherwise a wrong coalition holding just the threshold share on one
   input would expose the right minority in the same round as its own members get exposed
   where each stands alone, and nobody would gain.
   Why: a program is a fixed function, so a candidate shown wrong once is a wrong program,
   and its agreement elsewhere is weaker evidence. Plain voting is wrong where a coalition
   of wrong programs agrees on one wrong output (typically the same missed edge case) and
   outnumbers the correct ones; when those programs are wrong in different ways elsewhere,
   where they are outvoted with confidence, their coalition weighs less than the unexposed
   candidates. A crowd-worker reliability score would barely move: a program wrong on 1 of
   100 tests scores 0.99. When the wrong programs are identical clones nothing in the
   matrix tells them from the right ones; only known sample outputs can.
4. Split votes. When the runner-up class weighs >= ``split_ratio`` x the winner, the input
   is flagged split: it keeps its (low-confidence) label, exposes nobody, and neither
   scores nor checks the golden solution; it only breaks ties (step 6).
5. Agreement of an input = the label's share of the input's vote weight (plain voting: of
   its clean runs). Rejections, first that applies: "no_clean_runs";
   "too_few_labelled_tests: K < MIN" (labels, known ones included, fewer than
   ``min_labelled_tests``); "low_agreement: mean A < MIN" (mean over labelled inputs, under
   ``min_agreement``).
6. Golden. The labelled, not split inputs (all labelled ones if fewer than 2 remain) are
   split by a seeded shuffle within each kind into a selection part and a held-out part
   (``holdout_fraction``). A candidate passes a test when it ran clean with the label's
   output. Score = kind weight of the selection tests passed / kind weight of all selection
   tests (``kind_weights``). The best score wins; ties go to more of the other labelled
   tests passed (held-out and split ones: the selection could not tell these candidates
   apart, and rejecting for a pick the hold-out contradicts would waste the task), then the
   higher vote weight. If candidates still tied print different outputs somewhere (both
   clean), the evidence cannot tell two different programs apart: "ambiguous_golden: K
   equally supported candidates differ from the pick on up to D inputs"
   (``reject_ambiguous_golden``; off, the tie goes on). Remaining ties go to fewer failed
   runs (any status but "ok") over all inputs, then less CPU unless within 2x + 0.5 s of
   the least, then the lowest index.
   "no_passing_candidate" if the best score is 0; "golden_failed_holdout: R < MIN" if it
   passes under ``holdout_min_pass`` of the held-out tests. A rejected task has no golden
   (``chosen`` still says who was best).
7. Unsettled inputs (tie, split, too few voters) of an accepted task take the golden
   solution's output as their label when it ran clean there (source "golden"), so labels
   and golden solution never contradict each other.

Tasks with a checker (``checker=True``) have no labels: a candidate passes an input when
the checker accepted its output. Votes are the accepted and rejected counts of the clean
runs, agreement the accepted share; "labelled" means judged (some clean run was judged);
rejection by the checker or a crash counts as an exposure. The minimum agreement does not
apply (the checker judges, nobody votes), the golden choice and hold-out check do.

``plain_majority`` is the reference rule the paper measures (labels 91.8/92.1/92.5% and
golden 84.2/85.0/85.8% correct with 4/8/16 candidates): unweighted plurality of the clean
outputs (a tie is flagged and goes to the output of the lowest-indexed candidate, as
``Counter.most_common`` would), no known outputs, golden = most labelled tests passed (ties
to the lowest index), no hold-out, and no rejection beyond having nothing to go on (no clean
run, no label, nobody passing).

Measured (``tests/bench/verify_quality.py``: the 38 bundled seeds, 152 tasks per size,
mutant candidates with repeated popular bugs; plain -> ours with 4 / 8 / 16 candidates):
labels right 83.9 / 91.3 / 92.7% -> 91.4 / 96.8 / 97.5%; golden fully correct over all
tasks (a rejected task counts as a miss) 73.0 / 82.9 / 84.2% -> 78.3 / 90.1 / 90.1%, and
over accepted tasks 88.2 / 93.2 / 92.0% (accepting 89 / 97 / 98% of tasks). Most of the
gain comes from the known sample outputs: without them the rule picks as well as plain
voting (and rejects the coin flips, so accepted goldens are right 84 / 87 / 86% of the
time against 73 / 83 / 84%). Exposure weights move the numbers by under a point either way
there: the bench's wrong majorities are mostly clones of one bug, which no weighting can
see; they matter where different bugs coincide (tests/engine/verify/test_voting.py).

Leaves out: per-input confidence as a probability (weights are not calibrated), clustering
candidates by whole-behaviour signature, and judging against a checker and labels at once.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from engine.schema import VerifyConfig
from engine.verify.sandbox import normalize_output

__all__ = [
    "KINDS", "CandidateScore", "Cell", "InputVote", "Kind", "OutputClass", "TaskVerdict",
    "comparison_form", "group_outputs", "plain_majority", "same_output", "split_tests",
    "verify_task",
]

Kind = Literal["sample", "edge", "random", "stress"]
KINDS: tuple[Kind, ...] = ("sample", "edge", "random", "stress")
Rule = Literal["weighted", "majority"]
Source = Literal["vote", "known", "golden"]

CLEAN = "ok"
CRASHES = frozenset({"runtime_error", "output_limit"})  # a bug, not a slow correct program
MAX_ROUNDS = 20
_REL_EPS = 1e-9


# --- Inputs and results

@dataclass(frozen=True)
class Cell:
    """One candidate on one input: what the sandbox said, and the checker if any."""

    status: str  # a sandbox status; only "ok" votes
    output: str = ""  # stdout text
    accepted: bool | None = None  # checker tasks: the checker's verdict on this output
    cpu_s: float = 0.0


@dataclass(frozen=True)
class OutputClass:
    """Clean outputs that compare equal on one input."""

    text: str  # the first member's output, normalised
    members: tuple[int, ...]  # candidate indices, ascending
    weight: float  # the members' vote weights summed

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
    confident: bool  # the label may expose disagreeing candidates
    accepted: int | None = None  # checker tasks only
    rejected: int | None = None

    @property
    def label_members(self) -> tuple[int, ...]:
        for cls in self.classes:
            if self.label is not None and cls.text == self.label:
                return cls.members
        return ()


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


def group_outputs(outputs: Sequence[tuple[int, str]],
                  cfg: VerifyConfig) -> list[tuple[str, tuple[int, ...]]]:
    """(candidate, output) pairs of one input -> classes (text, members), most members first."""
    members_of: dict[str, list[int]] = {}
    first_text: dict[str, str] = {}
    for candidate, text in sorted(outputs):
        form = comparison_form(text, cfg.compare)
        members_of.setdefault(form, []).append(candidate)
        first_text.setdefault(form, text)
    forms = sorted(members_of, key=lambda f: (-len(members_of[f]), members_of[f][0]))
    groups: list[tuple[str, list[int]]] = []  # (representative raw text, members)
    for form in forms:
        text = first_text[form]
        if cfg.float_tolerance is not None:
            home = next((g for g in groups if same_output(g[0], text, cfg)), None)
            if home is not None:
                home[1].extend(members_of[form])
                continue
        groups.append((text, list(members_of[form])))
    classes = [(normalize_output(text), tuple(sorted(members))) for text, members in groups]
    return sorted(classes, key=lambda c: (-len(c[1]), c[1][0]))


# --- Tallying one input

def _tally(groups: list[tuple[str, tuple[int, ...]]], weights: Sequence[float],
           cfg: VerifyConfig, known_text: str | None, min_voters: int,
           split_ratio: float, exposure_share: float, tie_label: bool = False) -> InputVote:
    classes = [OutputClass(text, members, sum(weights[c] for c in members))
               for text, members in groups]
    classes.sort(key=lambda k: (-k.weight, -k.count, k.members[0]))
    voters = sum(k.count for k in classes)
    if known_text is not None:
        home = next((k for k in classes if same_output(k.text, known_text, cfg)), None)
        if home is None:
            classes.append(OutputClass(normalize_output(known_text), (), 0.0))
            label = normalize_output(known_text)
        else:
            label = home.text
        return InputVote(tuple(classes), voters, label, "known", _share(home, classes), False,
                         False, True)
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
                     split, confident)


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


def _pick(scores: Sequence[float], outside: Sequence[int],
          weights: Sequence[float] | None, failed: Sequence[int], cpu: Sequence[float]
          ) -> tuple[int, list[int]]:
    """-> (the pick, every candidate as well supported: same score and vote weight)."""
    best = max(scores)
    tied = [c for c in range(len(scores)) if scores[c] >= best - _REL_EPS]
    most = max(outside[c] for c in tied)
    tied = [c for c in tied if outside[c] == most]
    if weights is not None:
        heaviest = max(weights[c] for c in tied)
        tied = [c for c in tied if weights[c] >= heaviest * (1 - _REL_EPS)]
    supported = list(tied)
    fewest = min(failed[c] for c in tied)
    tied = [c for c in tied if failed[c] == fewest]
    # Markedly less CPU only: small differences are noise and would make runs disagree.
    least = min(cpu[c] for c in tied)
    tied = [c for c in tied if cpu[c] <= 2 * least + 0.5]
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


def _choose_golden(cells, kinds, cfg: VerifyConfig, inputs: Sequence[InputVote],
                   passes: list[list[bool | None]], weights: Sequence[float] | None,
                   seed: int, weighted: bool):
    """-> (selection, holdout, chosen, scores, holdout rates, reason)."""
    n = len(cells)
    labelled = [j for j, v in enumerate(inputs) if _is_labelled(v)]
    if weighted:
        eligible = [j for j in labelled if not inputs[j].split]
        if len(eligible) < 2:
            eligible = labelled
        selection, holdout = split_tests(eligible, kinds, cfg.holdout_fraction, seed)
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
        return selection, holdout, None, scores, rates, None
    failed = [sum(cell.status != CLEAN for cell in row) for row in cells]
    cpu = [sum(cell.cpu_s for cell in row) for row in cells]
    # The other labelled tests (held out, split) only break ties between equal scores: among
    # candidates the selection cannot tell apart, one that contradicts the hold-out labels
    # would be a needless rejection.
    outside = [sum(1 for j in labelled if j not in selection and passes[c][j])
               for c in range(n)]
    chosen, supported = _pick(scores, outside, weights, failed, cpu)
    if scores[chosen] <= 0:
        return selection, holdout, None, scores, rates, "no_passing_candidate"
    if weighted and cfg.reject_ambiguous_golden:  # equal evidence, different programs
        rivals = [c for c in supported if _disagreements(inputs, chosen, c)]
        if rivals:
            contested = max(_disagreements(inputs, chosen, c) for c in rivals)
            return (selection, holdout, chosen, scores, rates,
                    f"ambiguous_golden: {len(rivals)} equally supported candidates differ "
                    f"from the pick on up to {contested} inputs")
    rate = rates[chosen]
    if weighted and rate is not None and rate < cfg.holdout_min_pass - _REL_EPS:
        return (selection, holdout, chosen, scores, rates,
                f"golden_failed_holdout: {rate:.2f} < {cfg.holdout_min_pass:.2f}")
    return selection, holdout, chosen, scores, rates, None


def _first_rejection(cells, inputs: Sequence[InputVote], cfg: VerifyConfig,
                     use_agreement: bool, min_labelled: int) -> str | None:
    if not any(cell.status == CLEAN for row in cells for cell in row):
        return "no_clean_runs"
    labelled = [v for v in inputs if _is_labelled(v)]
    if len(labelled) < min_labelled:
        return f"too_few_labelled_tests: {len(labelled)} < {min_labelled}"
    if use_agreement:
        mean = sum(v.agreement or 0.0 for v in labelled) / len(labelled)
        if mean < cfg.min_agreement - _REL_EPS:
            return f"low_agreement: mean {mean:.2f} < {cfg.min_agreement:.2f}"
    return None


# --- The rules

def verify_task(cells: Sequence[Sequence[Cell]], kinds: Sequence[str],
                cfg: VerifyConfig | None = None, *, known: Mapping[int, str] | None = None,
                checker: bool = False, seed: int = 0) -> TaskVerdict:
    """Exposure-weighted voting, golden choice and hold-out check (module docstring)."""
    cfg = cfg or VerifyConfig()
    n, m = _shape(cells, kinds)
    if checker:
        return _judged(cells, kinds, cfg, seed, weighted=True)
    known = dict(known or {})
    outside = sorted(j for j in known if not 0 <= j < m)
    if outside:
        raise ValueError(f"known outputs for inputs {outside}, but there are {m} inputs")
    groups = [group_outputs([(c, cells[c][j].output) for c in range(n)
                             if cells[c][j].status == CLEAN], cfg) for j in range(m)]
    sample_failures = [0] * n
    for j, text in known.items():
        home = next((members for label, members in groups[j]
                     if same_output(label, text, cfg)), ())
        for c in range(n):
            status = cells[c][j].status
            if (status == CLEAN and c not in home) or status in CRASHES:
                sample_failures[c] += 1
    base = [cfg.sample_fail_discount ** f for f in sample_failures]

    def tally(weights: list[float], share: float) -> tuple[list[InputVote], list[int]]:
        inputs = [_tally(groups[j], weights, cfg, known.get(j), cfg.min_candidates_voting,
                         cfg.split_ratio, share) for j in range(m)]
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

    reason = _first_rejection(cells, inputs, cfg, True, cfg.min_labelled_tests)
    passes = _passes(cells, inputs)
    selection, holdout, chosen, scores, rates, golden_reason = _choose_golden(
        cells, kinds, cfg, inputs, passes, weights, seed, weighted=True)
    reason = reason or golden_reason
    golden = chosen if reason is None else None
    if golden is not None:  # unsettled inputs take the golden solution's output
        for j, vote in enumerate(inputs):
            cell = cells[golden][j]
            if vote.source != "known" and (vote.label is None or vote.split) \
                    and cell.status == CLEAN:
                home = next(k for k in vote.classes if golden in k.members)
                inputs[j] = _relabel(vote, home)
        passes = _passes(cells, inputs)
    return TaskVerdict(
        "weighted", tuple(inputs),
        _scores(cells, weights, exposures, sample_failures, scores, rates),
        _statuses(cells, passes), selection, holdout, chosen, golden, reason,
        rates[chosen] if chosen is not None else None, rounds)


def plain_majority(cells: Sequence[Sequence[Cell]], cfg: VerifyConfig | None = None, *,
                   kinds: Sequence[str] | None = None, checker: bool = False) -> TaskVerdict:
    """The reference rule: unweighted plurality, most tests passed, no hold-out."""
    cfg = cfg or VerifyConfig()
    kinds = list(kinds) if kinds is not None else ["random"] * (len(cells[0]) if cells else 0)
    n, m = _shape(cells, kinds)
    if checker:
        return _judged(cells, kinds, cfg, 0, weighted=False)
    ones = [1.0] * n
    inputs = [_tally(group_outputs([(c, cells[c][j].output) for c in range(n)
                                    if cells[c][j].status == CLEAN], cfg),
                     ones, cfg, None, cfg.min_candidates_voting, cfg.split_ratio, 1.0,
                     tie_label=True)
              for j in range(m)]
    inputs = [_unconfident(v) for v in inputs]
    reason = _first_rejection(cells, inputs, cfg, False, 1)
    passes = _passes(cells, inputs)
    selection, holdout, chosen, scores, rates, golden_reason = _choose_golden(
        cells, kinds, cfg, inputs, passes, None, 0, weighted=False)
    reason = reason or golden_reason
    return TaskVerdict(
        "majority", tuple(inputs), _scores(cells, ones, [0] * n, [0] * n, scores, rates),
        _statuses(cells, passes), selection, holdout, chosen,
        chosen if reason is None else None, reason, None, 1)


def _judged(cells, kinds, cfg: VerifyConfig, seed: int, weighted: bool) -> TaskVerdict:
    """Checker tasks: the checker says who passes; nobody votes on outputs."""
    n, m = len(cells), len(kinds)
    inputs: list[InputVote] = []
    exposures = [0] * n
    for j in range(m):
        column = [cells[c][j] for c in range(n)]
        accepted = [c for c, cell in enumerate(column)
                    if cell.status == CLEAN and cell.accepted is True]
        rejected = [c for c, cell in enumerate(column)
                    if cell.status == CLEAN and cell.accepted is False]
        judged = len(accepted) + len(rejected)
        if judged:
            for c, cell in enumerate(column):
                if c in rejected or cell.status in CRASHES:
                    exposures[c] += 1
        inputs.append(InputVote((), judged, None, None,
                                len(accepted) / judged if judged else None, False, False,
                                bool(judged), len(accepted), len(rejected)))
    weights = [cfg.exposure_discount ** e for e in exposures] if weighted else [1.0] * n
    passes: list[list[bool | None]] = [
        [(cells[c][j].status == CLEAN and cells[c][j].accepted is True) if inputs[j].voters
         else None for j in range(m)] for c in range(n)]
    reason = _first_rejection(cells, inputs, cfg, False,
                              cfg.min_labelled_tests if weighted else 1)
    selection, holdout, chosen, scores, rates, golden_reason = _choose_golden(
        cells, kinds, cfg, inputs, passes, weights if weighted else None, seed, weighted)
    reason = reason or golden_reason
    return TaskVerdict(
        "weighted" if weighted else "majority", tuple(inputs),
        _scores(cells, weights, exposures if weighted else [0] * n, [0] * n, scores, rates),
        _statuses(cells, passes), selection, holdout, chosen,
        chosen if reason is None else None, reason,
        rates[chosen] if chosen is not None else None, 1)


def _is_labelled(vote: InputVote) -> bool:
    """Has a label, or (checker tasks) was judged on some clean run."""
    return vote.label is not None or (vote.accepted is not None and vote.voters > 0)


def _confidence_steps(lowest: float) -> list[float]:
    """1.0, 0.95, ... down to ``lowest``: the exposing threshold, lowered step by step."""
    steps = [round(1.0 - 0.05 * k, 10) for k in range(21) if 1.0 - 0.05 * k > lowest + 1e-9]
    return [*steps, lowest]


def _unconfident(vote: InputVote) -> InputVote:
    return InputVote(vote.classes, vote.voters, vote.label, vote.source, vote.agreement,
                     vote.tie, vote.split, False)


def _relabel(vote: InputVote, home: OutputClass) -> InputVote:
    if home.text == vote.label:
        return vote  # the golden solution confirms the vote: nothing changes
    return InputVote(vote.classes, vote.voters, home.text, "golden",
                     _share(home, vote.classes), vote.tie, vote.split, False)


def _passes(cells, inputs: Sequence[InputVote]) -> list[list[bool | None]]:
    """[c][j]: True/False against the label; None where the input has no label."""
    members = [set(v.label_members) if v.label is not None else None for v in inputs]
    return [[None if members[j] is None else (cell.status == CLEAN and c in members[j])
             for j, cell in enumerate(row)] for c, row in enumerate(cells)]


def _scores(cells, weights, exposures, sample_failures, scores, rates
            ) -> tuple[CandidateScore, ...]:
    return tuple(
        CandidateScore(weights[c], exposures[c], sample_failures[c],
                       sum(cell.status == CLEAN for cell in row),
                       sum(cell.status != CLEAN for cell in row),
                       sum(cell.cpu_s for cell in row), scores[c] if scores else None,
                       rates[c] if rates else None)
        for c, row in enumerate(cells))
