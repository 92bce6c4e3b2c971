"""The dual-verification rule on hand-made matrices (no code runs).

    .venv/bin/python -m pytest tests/engine/verify/test_voting.py -q

A row is a candidate, a column an input; ``ok("5")`` is a clean run that printed 5.
"""

from __future__ import annotations

import pytest

from engine.schema import VerifyConfig
from engine.verify.voting import (
    Cell,
    group_outputs,
    plain_majority,
    same_output,
    split_tests,
    verify_task,
)


def loose(**changes) -> VerifyConfig:
    """Thresholds out of the way unless a test sets them."""
    return VerifyConfig(**{"min_labelled_tests": 2, "min_agreement": 0.0, **changes})


LOOSE = loose()


def ok(text: str, cpu_s: float = 0.0) -> Cell:
    return Cell("ok", text, cpu_s=cpu_s)


def failed(status: str, text: str = "") -> Cell:
    return Cell(status, text)


def rows(*outputs: str) -> list[list[Cell]]:
    """rows("1 2 3", "1 2 4") -> candidate 0 prints 1, 2, 3 on inputs 0, 1, 2; ..."""
    return [[ok(x) for x in line.split()] for line in outputs]


# --- Who votes, and what counts as the same output

def test_only_clean_exits_vote_even_when_failed_runs_printed_something():
    cells = [[ok("7")], [failed("time_limit", "9")], [failed("runtime_error", "9")],
             [failed("memory_limit", "9")], [ok("7")]]
    verdict = verify_task(cells, ["random"], loose(min_labelled_tests=2))
    vote = verdict.inputs[0]
    assert (vote.label, vote.voters, [k.count for k in vote.classes]) == ("7", 2, [2])
    assert plain_majority(cells, LOOSE).labels == ["7"]


def test_outputs_differing_only_in_whitespace_vote_together():
    outputs = ["1 2\n3\n", "1 2  \r\n3\n\n\n", "1   2\n3", "1 2 3", "1 2 4"]
    cells = [[ok(x)] for x in outputs]
    vote = verify_task(cells, ["random"], LOOSE).inputs[0]
    assert [k.count for k in vote.classes] == [4, 1]  # "whitespace": same tokens
    assert vote.label == "1 2\n3"  # the first member's output, normalised
    # "strip" keeps the text: only line-end spaces, CRLF and blank end lines go.
    strict = verify_task(cells, ["random"], loose(compare="strip")).inputs[0]
    assert [k.members for k in strict.classes] == [(0, 1), (2,), (3,), (4,)]


def test_float_tolerance_matches_close_decimals_but_keeps_integers_exact():
    cfg = loose(float_tolerance=1e-6)
    assert same_output("0.3333333", "0.33333334", cfg)
    assert same_output("1000000.5", "1000000.6", cfg)  # relative error 1e-7
    assert not same_output("0.333", "0.334", cfg)
    assert not same_output("4000000000", "4000000001", cfg)  # integers stay exact
    assert same_output("3", "3.0000000001", cfg)
    assert not same_output("1.0 2.0", "1.0", cfg)
    assert not same_output("0.3333333", "0.33333334", LOOSE)  # no tolerance: text
    classes = group_outputs([(0, "0.5000001"), (1, "0.5"), (2, "0.5"), (3, "0.7")], cfg)
    assert [members for _, members in classes] == [(0, 1, 2), (3,)]
    assert classes[0][0] == "0.5"  # the most voted form represents the class


def test_an_exact_tie_is_flagged_and_left_unlabelled():
    cells = rows("1 5", "1 5", "2 5", "2 5")
    vote = verify_task(cells, ["random", "random"], LOOSE).inputs[0]
    assert (vote.tie, vote.label, vote.agreement) == (True, None, None)
    # Plain voting flags it too but takes the first output, as Counter.most_common does.
    plain = plain_majority(cells, LOOSE).inputs[0]
    assert (plain.tie, plain.label) == (True, "1")


def test_a_split_input_neither_picks_nor_breaks_ties_and_takes_the_golden_output():
    # Input 0: four votes for 2, three for 1 (ratio 0.75 >= split_ratio 0.7). Every other
    # input agrees, so nothing but the doubtful input tells the two programs apart.
    cfg = loose(split_ratio=0.7)
    cells = rows(*(["1 5 6 7"] * 3 + ["2 5 6 7"] * 4))
    verdict = verify_task(cells, ["edge", "random", "random", "random"], cfg)
    assert verdict.inputs[0].split and not verdict.inputs[0].tie
    assert verdict.inputs[0].confident is False
    assert 0 not in verdict.selection + verdict.holdout
    assert {c.selection_score for c in verdict.candidates} == {1.0}
    assert verdict.golden is None and verdict.reason.startswith("ambiguous_golden: 4 ")
    picked = verify_task(cells, ["edge", "random", "random", "random"],
                         loose(split_ratio=0.7, reject_ambiguous_golden=False))
    assert picked.golden == 0  # the doubtful majority (2) did not pick it
    assert (picked.labels[0], picked.inputs[0].source) == ("1", "golden")


def test_an_input_tied_by_weight_takes_the_golden_solutions_output():
    # Input 0: candidates 0-1 print 1, candidates 2-5 print 2; each of 2-5 is outvoted once
    # elsewhere (weight 0.5), so input 0 ties 2.0 to 2.0 and the vote cannot settle it.
    table = [["1", "10", "20", "30", "40", "50"] for _ in range(2)] + \
        [["2", "10", "20", "30", "40", "50"] for _ in range(4)]
    for k in range(4):
        table[2 + k][1 + k] = str(90 + k)
    cells = [[ok(x) for x in row] for row in table]
    verdict = verify_task(cells, ["random"] * 6, LOOSE)
    assert [c.weight for c in verdict.candidates] == [1, 1, 0.5, 0.5, 0.5, 0.5]
    assert verdict.inputs[0].tie and verdict.golden == 0
    assert (verdict.labels[0], verdict.inputs[0].source) == ("1", "golden")
    assert plain_majority(cells, LOOSE).labels[0] == "2"


def test_equally_supported_candidates_that_disagree_make_the_golden_ambiguous():
    cells = rows("7 1 2 3", "7 1 2 3", "8 1 2 3", "8 1 2 3")  # two clone pairs
    verdict = verify_task(cells, ["edge", "random", "random", "random"], LOOSE)
    assert verdict.reason == \
        "ambiguous_golden: 2 equally supported candidates differ from the pick on up to 1 inputs"
    assert verdict.golden is None and verdict.chosen == 0
    picked = verify_task(cells, ["edge", "random", "random", "random"],
                         loose(reject_ambiguous_golden=False))
    assert picked.golden == 0 and picked.labels[0] == "7"
    # Different only in failing (a time limit), candidates are not rivals.
    slow = [ok("7"), ok("1"), ok("2"), failed("time_limit")]
    assert verify_task([slow, cells[0]], ["edge", "random", "random", "stress"],
                       LOOSE).golden == 1


def test_an_input_with_fewer_clean_runs_than_min_candidates_voting_is_unlabelled():
    cells = [[ok("3"), ok("1")], [failed("time_limit"), ok("1")], [failed("runtime_error"),
                                                                   ok("1")]]
    verdict = plain_majority(cells, loose(min_candidates_voting=2))
    assert verdict.labels == [None, "1"]


# --- Beyond plain voting: exposure weights and known sample outputs

# Inputs: two edge cases (n = 1, say), then four random tests.
KINDS6 = ["edge", "edge", "random", "random", "random", "random"]


def coalition_case() -> list[list[Cell]]:
    """Three wrong candidates share one wrong answer on both edge inputs ("0", the usual
    missed-edge-case default), and each is wrong in its own way on one random input, where
    the others outvote it with confidence. Two correct candidates are right everywhere."""
    wrong = [["0", "0", "10", "20", "30", "40"] for _ in range(3)]
    for i, row in enumerate(wrong):
        row[2 + i] = str(91 + i)
    correct = [["1", "1", "10", "20", "30", "40"]] * 2
    return [[ok(x) for x in row] for row in wrong + correct]


def test_a_coalition_exposed_elsewhere_is_outvoted_by_fewer_unexposed_candidates():
    cells = coalition_case()
    plain = plain_majority(cells, LOOSE)
    assert plain.labels[:2] == ["0", "0"]  # 3 votes beat 2
    assert plain.golden == 0  # a wrong candidate: all pass 4 of 6, lowest index wins

    ours = verify_task(cells, KINDS6, LOOSE)
    assert ours.labels == ["1", "1", "10", "20", "30", "40"]
    assert [c.exposures for c in ours.candidates] == [1, 1, 1, 0, 0]
    assert [c.weight for c in ours.candidates] == [0.5, 0.5, 0.5, 1.0, 1.0]
    assert ours.golden == 3 and ours.reason is None
    assert ours.inputs[0].agreement == pytest.approx(2 / 3.5)  # share of the vote weight
    assert plain.inputs[0].agreement == pytest.approx(3 / 5)


def test_identical_wrong_clones_keep_their_majority_without_other_evidence():
    # Nothing in the matrix tells three clones from two correct programs: the rule must
    # not guess (this pins the limit the module docstring states).
    cells = rows(*(["0 0 10 20"] * 3 + ["1 1 10 20"] * 2))
    verdict = verify_task(cells, ["edge", "edge", "random", "random"], LOOSE)
    assert verdict.labels == ["0", "0", "10", "20"]


def test_a_candidate_failing_a_known_sample_output_is_discounted_everywhere():
    # The same clones, but input 2 is a statement sample whose answer (11) they get wrong.
    cells = rows(*(["0 0 10 20"] * 3 + ["1 1 11 20"] * 2))
    kinds = ["edge", "edge", "sample", "random"]
    plain = plain_majority(cells, LOOSE, kinds=kinds)
    assert plain.labels == ["0", "0", "10", "20"]
    ours = verify_task(cells, kinds, LOOSE, known={2: "11\n"})
    assert [c.sample_failures for c in ours.candidates] == [1, 1, 1, 0, 0]
    assert ours.labels == ["1", "1", "11", "20"]
    assert ours.inputs[2].source == "known" and ours.golden == 3


def test_a_known_output_labels_its_input_even_when_no_candidate_prints_it():
    cells = rows("4 1", "4 1", "4 1")
    verdict = verify_task(cells, ["sample", "random"], LOOSE, known={0: "5"})
    vote = verdict.inputs[0]
    assert (vote.label, vote.source, vote.agreement) == ("5", "known", 0.0)
    assert [c.sample_failures for c in verdict.candidates] == [1, 1, 1]
    assert verdict.verdicts[0][0] == "wrong"


def test_a_crash_on_a_confident_input_exposes_but_a_time_limit_does_not():
    cells = [[ok("1"), ok("2"), ok("3")], [ok("1"), ok("2"), ok("3")], [ok("1"), ok("2"),
                                                                        ok("3")],
             [failed("runtime_error"), ok("2"), ok("3")],
             [failed("time_limit"), ok("2"), ok("3")]]
    verdict = verify_task(cells, ["random"] * 3, LOOSE)
    assert [c.exposures for c in verdict.candidates] == [0, 0, 0, 1, 0]
    assert verdict.candidates[4].weight == 1.0


# --- Golden solution and rejections

def test_the_golden_tie_goes_to_fewer_failed_runs_then_markedly_less_cpu_then_index():
    kinds = ["random", "random", "stress"]
    slow = [ok("1"), ok("2"), failed("time_limit")]
    fast = [ok("1", 0.01), ok("2", 0.01), ok("3", 0.4)]
    sluggish = [ok("1", 0.5), ok("2", 0.5), ok("3", 1.5)]
    assert verify_task([slow, fast, fast], kinds, LOOSE).golden == 1
    assert verify_task([sluggish, fast], kinds, LOOSE).golden == 1
    within_noise = [ok("1", 0.01), ok("2", 0.01), ok("3", 0.405)]
    assert verify_task([within_noise, fast], kinds, LOOSE).golden == 0


def test_the_golden_tie_goes_to_headroom_on_the_largest_inputs_not_the_tiny_ones():
    # A brute force listed first is faster on the two tiny inputs (no set-up cost) but far
    # slower on the big one; total CPU would pick it, headroom on the big input does not.
    kinds = ["random", "random", "stress"]
    sizes = [10, 12, 200_000]
    brute = [ok("1", 0.01), ok("2", 0.01), ok("3", 0.9)]
    efficient = [ok("1", 0.4), ok("2", 0.4), ok("3", 0.3)]
    verdict = verify_task([brute, efficient], kinds, LOOSE, sizes=sizes)
    assert verdict.golden == 1
    assert [c.biggest_input_cpu_s for c in verdict.candidates] == [0.9, 0.3]
    # The reference rule (total CPU, coarse) keeps the brute force.
    assert plain_majority([brute, efficient], LOOSE, kinds=kinds).golden == 0
    with pytest.raises(ValueError, match="2 input sizes given for 3 inputs"):
        verify_task([brute, efficient], kinds, LOOSE, sizes=[1, 2])


def test_a_golden_solution_that_fails_held_out_tests_rejects_the_task_with_the_rate():
    kinds = ["random"] * 8
    selection, holdout = split_tests(range(8), kinds, 0.5, seed=3)
    right = [str(10 + j) for j in range(8)]
    a, b, c = list(right), list(right), list(right)
    a[holdout[0]] = "x"  # perfect on the selection half, wrong on one held-out test
    b[selection[0]] = "y"
    c[selection[1]] = "z"
    cells = [[ok(x) for x in row] for row in (a, b, c)]
    verdict = verify_task(cells, kinds, LOOSE, seed=3)
    assert verdict.labels == right
    assert (verdict.selection, verdict.holdout) == (selection, holdout)
    assert verdict.chosen == 0 and verdict.golden is None
    assert verdict.reason == "golden_failed_holdout: 0.75 < 1.00"
    assert verdict.holdout_pass_rate == 0.75
    lenient = loose(holdout_min_pass=0.75)
    assert verify_task(cells, kinds, lenient, seed=3).golden == 0


def test_too_few_labelled_tests_rejects_the_task():
    cells = rows("1 2 3", "1 2 3", "4 5 3", "4 5 3")  # inputs 0 and 1 tie
    cfg = VerifyConfig(min_labelled_tests=2, min_agreement=0.0)
    verdict = verify_task(cells, ["random"] * 3, cfg)
    assert verdict.reason == "too_few_labelled_tests: 1 < 2"
    assert verdict.golden is None


def test_low_agreement_rejects_the_task_with_the_mean():
    cells = rows("1 1 1 1", "2 2 2 2", "3 3 3 3", "1 1 1 1", "5 5 5 5")
    verdict = verify_task(cells, ["random"] * 4, VerifyConfig(min_agreement=0.5,
                                                              split_ratio=1.0))
    assert verdict.labels == ["1"] * 4
    assert verdict.reason == "low_agreement: mean 0.40 < 0.50"


def test_a_task_without_clean_runs_is_rejected_as_such():
    cells = [[failed("compile_error")] * 4, [failed("time_limit")] * 4]
    verdict = verify_task(cells, ["random"] * 4, LOOSE)
    assert verdict.reason == "no_clean_runs" and verdict.labels == [None] * 4


def test_the_holdout_split_is_seeded_and_stratified_by_kind():
    kinds = ["sample"] * 2 + ["edge"] * 4 + ["random"] * 6 + ["stress"] * 2
    sel, held = split_tests(range(14), kinds, 0.5, seed=11)
    assert (sel, held) == split_tests(range(14), kinds, 0.5, seed=11)
    assert sorted(sel + held) == list(range(14))
    for kind in ("sample", "edge", "random", "stress"):
        of_kind = [j for j in range(14) if kinds[j] == kind]
        assert sum(j in held for j in of_kind) == len(of_kind) // 2, kind
    assert {split_tests(range(14), kinds, 0.5, seed=s) for s in range(20)} != {(sel, held)}
    one, other = split_tests([4, 9], ["random"] * 10, 0.1, seed=0)
    assert len(one) == len(other) == 1  # both halves non-empty from two tests up


def test_kind_weights_decide_the_golden_solution():
    # The checker accepts A on the random tests only and B on the stress tests only.
    # Whichever kind weighs more decides.
    kinds = ["random"] * 4 + ["stress"] * 4
    a = [Cell("ok", "a", accepted=j < 4) for j in range(8)]
    b = [Cell("ok", "b", accepted=j >= 4) for j in range(8)]
    for stress_weight, golden in ((5.0, 1), (0.2, 0)):
        weights = {"sample": 1.0, "edge": 1.0, "random": 1.0, "stress": stress_weight}
        verdict = verify_task([a, b], kinds, loose(holdout_min_pass=0.0, kind_weights=weights),
                              checker=True)
        assert verdict.golden == golden, stress_weight


# --- Checker tasks and determinism

def test_a_checker_task_passes_whom_the_checker_accepts_and_has_no_labels():
    cells = [[Cell("ok", "2", True), Cell("ok", "3", True), Cell("ok", "-1", True)],
             [Cell("ok", "6", True), Cell("ok", "5", True), Cell("ok", "-1", True)],
             [Cell("ok", "1", False), Cell("ok", "1", False), Cell("runtime_error")]]
    verdict = verify_task(cells, ["random", "random", "edge"], LOOSE, checker=True)
    assert verdict.labels == [None] * 3
    assert [(v.accepted, v.rejected) for v in verdict.inputs] == [(2, 1), (2, 1), (2, 0)]
    assert verdict.golden == 0 and verdict.reason is None
    assert verdict.verdicts[2] == ("wrong", "wrong", "runtime_error")
    assert [c.exposures for c in verdict.candidates] == [0, 0, 3]
    assert plain_majority(cells, LOOSE, checker=True).golden == 0


def test_the_same_matrix_always_gives_the_same_verdict():
    cells = coalition_case()
    assert verify_task(cells, KINDS6, LOOSE, seed=5) == verify_task(cells, KINDS6, LOOSE,
                                                                    seed=5)


def test_a_ragged_matrix_or_unknown_kind_is_refused():
    with pytest.raises(ValueError, match="one cell per input"):
        verify_task([[ok("1")], [ok("1"), ok("2")]], ["random"], LOOSE)
    with pytest.raises(ValueError, match="unknown test kinds"):
        verify_task([[ok("1")]], ["huge"], LOOSE)
    with pytest.raises(ValueError, match=r"known outputs for inputs \[3\]"):
        verify_task([[ok("1")]], ["sample"], LOOSE, known={3: "1"})


# --- Rules against wrong goldens (issue 13): samples, limits of ours, doubtful labels

def test_clones_outvoting_the_right_answer_lose_to_a_statement_sample():
    # Three identical float-sqrt clones print 1000000000 where the answer is 999999999; the
    # statement's sample (input 0, known output) shows it. The other inputs are small.
    clones = [ok(x) for x in (["3", "4", "1000000000", "7", "8", "9"])]
    right = [ok(x) for x in (["3", "4", "999999999", "7", "8", "9"])]
    kinds = ["sample", "random", "stress", "random", "random", "edge"]
    sample = {0: "3"}  # every candidate passes this one
    cells = [clones, clones, clones, right, right]
    plain = plain_majority(cells, LOOSE, kinds=kinds)
    assert plain.labels[2] == "1000000000" and plain.golden == 0
    # Without the sample that exposes them the clones cannot be told apart: no golden.
    assert verify_task(cells, kinds, LOOSE, known=sample).golden is None
    exposing = {0: "3", 2: "999999999"}  # the sample shows the big case
    verdict = verify_task(cells, kinds, LOOSE, known=exposing)
    assert verdict.golden == 3 and verdict.reason is None
    assert verdict.labels[2] == "999999999"
    assert [c.eligible for c in verdict.candidates] == [False, False, False, True, True]


def test_a_candidate_failing_a_sample_is_never_golden_even_when_best_elsewhere():
    # Candidate 0 passes every voted input but fails the sample; candidate 1 passes the
    # sample but is outvoted once. Weights alone would still pick 0 on score.
    kinds = ["sample", "random", "random", "random", "random"]
    cells = [[ok("x"), ok("1"), ok("2"), ok("3"), ok("4")],
             [ok("s"), ok("1"), ok("2"), ok("3"), ok("9")],
             [ok("q"), ok("1"), ok("2"), ok("3"), ok("4")],
             [ok("q"), ok("1"), ok("2"), ok("3"), ok("4")]]
    verdict = verify_task(cells, kinds, loose(holdout_min_pass=0.0), known={0: "s"})
    assert verdict.golden == 1
    everyone_fails = verify_task(cells, kinds, LOOSE, known={0: "zzz"})
    assert everyone_fails.golden is None
    assert everyone_fails.reason.startswith("no_candidate_passes_samples: all 4 candidates")


def test_identical_wrong_clones_at_a_doubtful_share_cannot_crown_a_golden():
    # Three int-overflow clones against two correct programs: 0.6 / 0.4 on the two stress
    # inputs, agreement everywhere else. Plain voting takes the clones' answer.
    kinds = ["random"] * 6 + ["stress"] * 2
    clone = [ok(str(j)) for j in range(6)] + [ok("-727379968"), ok("-1")]
    right = [ok(str(j)) for j in range(6)] + [ok("3567587328"), ok("4294967295")]
    cells = [clone, clone, clone, right, right]
    assert plain_majority(cells, LOOSE, kinds=kinds).golden == 0
    verdict = verify_task(cells, kinds, LOOSE)
    assert verdict.golden is None
    assert verdict.reason.startswith("ambiguous_golden: ")
    assert not any(verdict.inputs[j].confident for j in (6, 7))
    assert all(j not in verdict.selection + verdict.holdout for j in (6, 7))
    # Too few confident inputs left: rejected as such, not decided by the doubtful ones.
    few = verify_task(cells, kinds, loose(min_labelled_tests=7))
    assert few.reason == ("too_few_confident_tests: 6 < 7 (2 labels below the confidence "
                          "share 0.66)")


def test_output_over_our_cap_is_not_a_crash_and_an_input_most_runs_exceed_is_unusable():
    # Four correct candidates print more than our cap on input 2; one reads only the first
    # MiB of stdin and prints less (wrong, but "ok"). It must not become golden.
    kinds = ["random", "random", "stress", "random", "random"]
    right = [ok("1"), ok("2"), failed("output_limit"), ok("4"), ok("5")]
    short = [ok("1"), ok("2"), ok("3 (first MiB only)"), ok("4"), ok("5")]
    cells = [right, right, right, right, short]
    verdict = verify_task(cells, kinds, LOOSE)
    assert verdict.golden is None
    assert verdict.reason.startswith("unusable_tests: 1 inputs where most runs hit a limit of "
                                     "ours ({'output_limit': 4}; output over our cap: raise "
                                     "verify.max_output_kb")
    assert verdict.inputs[2].unusable and verdict.labels[2] is None
    assert plain_majority(cells, LOOSE, kinds=kinds).golden == 4  # the reference rule
    # A minority over the cap: the input stays usable and nobody is exposed by it.
    cells = [right, short, short, [ok("1"), ok("2"), ok("3 (first MiB only)"), ok("4"),
                                   ok("5")]]
    verdict = verify_task(cells, kinds, LOOSE)
    assert not verdict.inputs[2].unusable
    assert verdict.candidates[0].exposures == 0


def test_big_outputs_vote_by_digest_and_match_known_outputs_by_digest():
    from engine.verify.voting import output_digest
    big_a, big_b = "1 " * 100_000, "1 " * 99_999 + "2 "
    head = big_a[:64]
    assert big_b[:64] == head  # the same start: only the digest tells them apart

    def by_digest(text: str) -> Cell:
        return Cell("ok", text[:64], digest=output_digest(text, LOOSE))

    cells = [[by_digest(big_a), ok("5")], [by_digest(big_a), ok("5")],
             [by_digest(big_b), ok("5")]]
    verdict = verify_task(cells, ["stress", "random"], LOOSE)
    vote = verdict.inputs[0]
    assert [k.members for k in vote.classes] == [(0, 1), (2,)]
    assert vote.label_class.digest == output_digest(big_a, LOOSE)
    assert vote.label_members == (0, 1)
    known = verify_task(cells, ["sample", "random"], LOOSE, known={0: big_b})
    assert known.inputs[0].label_members == (2,)
    assert [c.eligible for c in known.candidates] == [False, False, True]


def test_a_checker_that_fails_rejects_the_task_and_known_inputs_bar_the_golden():
    kinds = ["sample", "random", "random"]
    good = [Cell("ok", "a", accepted=True)] * 3
    bad_sample = [Cell("ok", "b", accepted=False)] + [Cell("ok", "b", accepted=True)] * 2
    verdict = verify_task([bad_sample, good], kinds, LOOSE, checker=True, known={0: "a"})
    assert verdict.golden == 1
    assert [c.eligible for c in verdict.candidates] == [False, True]
    broken = [Cell("ok", "a", accepted=True), Cell("ok", "a", checker_error="exit code 3: "
                                                   "jury answer is worse"),
              Cell("ok", "a", accepted=True)]
    verdict = verify_task([broken, good], kinds, LOOSE, checker=True)
    assert verdict.golden is None
    assert verdict.reason == ("checker_failed: 1 of 6 checks gave no verdict (first: exit code "
                              "3: jury answer is worse)")
