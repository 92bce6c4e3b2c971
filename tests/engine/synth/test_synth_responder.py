"""The SynthResponder test double, through a real StubServer and real HTTP."""

from __future__ import annotations

import ast
import json
import random
import re
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from synth_responder import (
    BANK,
    CATEGORIES,
    FAULTS,
    SynthResponder,
    find_json_objects,
    recognise,
    render_statement,
    sample_pairs,
)

PROMPTS = Path(__file__).resolve().parents[3] / "assets" / "prompts"
SEEDS = Path(__file__).resolve().parents[3] / "assets" / "seeds" / "seeds.jsonl"
STYLES = ("codeforces", "leetcode", "atcoder")
SUBTREE = {"algorithms": {"graph": {"shortest paths": ["dijkstra"]}, "sorting": ["merge sort"]},
           "data_structures": {"trees": ["segment tree", "fenwick tree"]}}


def render(name: str, **fields: object) -> str:
    text = (PROMPTS / f"{name}.md").read_text(encoding="utf-8")
    for key, value in fields.items():
        text = text.replace("{{" + key + "}}", str(value))
    assert "{{" not in text, f"{name}: a placeholder was left"
    return text


def post(stub, text: str, seed: int = 0, temperature: float = 0.7) -> dict:
    body = {"model": "m", "messages": [{"role": "user", "content": text}], "seed": seed,
            "temperature": temperature, "top_p": 0.95}
    req = urllib.request.Request(stub.url + "/chat/completions", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


def content(reply: dict) -> str:
    return reply["choices"][0]["message"]["content"]


def parse_json(text: str) -> dict:
    """What a tolerant client does: the ```json fence, else the first balanced object."""
    m = re.search(r"^```json[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M)
    return json.loads(m.group(1)) if m else find_json_objects(text)[0]


def code_blocks(text: str, lang: str = "python") -> list[str]:
    return re.findall(rf"^```{lang}[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M)


def seed_record(i: int = 0) -> dict:
    return json.loads(SEEDS.read_text(encoding="utf-8").splitlines()[i])


def features_prompt(i: int = 0) -> str:
    rec = seed_record(i)
    return render("features_extract", problem=rec["problem"], solution=rec["solution"])


def statement_prompt(style: str) -> str:
    guide = (PROMPTS / f"tasks_style_{style}.md").read_text(encoding="utf-8")
    return render("tasks_statement", selected_features=json.dumps({"algorithms": ["x"]}),
                  integration_strategy="One array task.", style_name=style, style_guide=guide)


def solution_prompt(statement: str, cpp: bool = False) -> str:
    return render("solutions", statement=statement, language="C++17" if cpp else "Python 3",
                  fence="cpp" if cpp else "python")


def leaves(node) -> list[str]:
    if isinstance(node, list):
        return [str(x) for x in node]
    out: list[str] = []
    for k, v in node.items():
        out += leaves(v) if v and isinstance(v, dict | list) else [k]
    return out


def all_names(node) -> set[str]:
    if isinstance(node, list):
        return {str(x) for x in node}
    out: set[str] = set()
    for k, v in node.items():
        out |= {k} | all_names(v)
    return out


@pytest.fixture
def responder(openai_stub):
    r = SynthResponder()
    openai_stub.rule = r
    return r


def test_templates_start_with_the_headings_and_have_their_placeholders() -> None:
    expect = {"features_extract": ("# Extract competitive-programming features",
                                   {"problem", "solution"}),
              "evolve": ("# Evolve a feature tree", {"subtree", "min_new_siblings"}),
              "tasks_select": ("# Select compatible features for one problem", {"features"}),
              "tasks_statement": ("# Write a competitive-programming problem statement",
                                  {"selected_features", "integration_strategy", "style_name",
                                   "style_guide"}),
              "solutions": ("# Solve a competitive-programming problem",
                            {"statement", "language", "fence"})}
    for name, (heading, fields) in expect.items():
        text = (PROMPTS / f"{name}.md").read_text(encoding="utf-8")
        assert text.splitlines()[0] == heading
        assert set(re.findall(r"\{\{(\w+)\}\}", text)) == fields, name
    for style in STYLES:
        assert "{{" not in (PROMPTS / f"tasks_style_{style}.md").read_text(encoding="utf-8")


def test_features_answer(openai_stub, responder) -> None:
    for i in range(3):
        obj = parse_json(content(post(openai_stub, features_prompt(i))))
        assert set(obj) == set(CATEGORIES) | {"summary"}
        assert isinstance(obj["summary"], str) and "\n" not in obj["summary"]
        assert sum(1 for k in CATEGORIES if obj[k]) >= 3
        assert obj["programming_language"] == ["python"]
    assert responder.counts["features"] == 3


def test_features_follow_the_problem_keywords(openai_stub, responder) -> None:
    text = render("features_extract", problem="Given a graph with n vertices and m edges, "
                  "find the shortest distance modulo a prime.", solution="print(0)")
    obj = parse_json(content(post(openai_stub, text)))
    assert "graph" in obj["algorithms"]
    assert "number theory" in obj["mathematics"]


def test_evolve_keeps_nodes_and_grows(openai_stub, responder) -> None:
    text = render("evolve", subtree=json.dumps(SUBTREE, indent=2), min_new_siblings=3)
    obj = parse_json(content(post(openai_stub, text)))
    assert all_names(SUBTREE) <= all_names(obj)
    # the fixed top-level categories get no siblings; inner levels get 3 new ones
    assert set(obj) == set(SUBTREE)
    assert len(obj["algorithms"]) == 2 + 3
    assert len(obj["algorithms"]["graph"]["shortest paths"]) == 1 + 3
    assert len(obj["algorithms"]["graph"]["shortest paths"]["dijkstra"]) == 2
    for leaf_list in (obj["data_structures"]["trees"]["segment tree"],):
        assert isinstance(leaf_list, list) and len(leaf_list) == 2
    assert len(leaves(obj)) > len(leaves(SUBTREE)) * 4
    assert responder.counts["evolve"] == 1


def test_select_answer(openai_stub, responder) -> None:
    tree = {"algorithms": {"graph": ["bfs", "dfs", "dijkstra", "topological sort"],
                           "dp": ["knapsack dp", "bitmask dp"]},
            "mathematics": {"number theory": ["gcd", "sieve"]}}
    obj = parse_json(content(post(openai_stub, render("tasks_select",
                                                      features=json.dumps(tree, indent=2)))))
    assert set(obj) == {"feature_roles", "selected_features", "integration_strategy"}
    assert set(leaves(obj["feature_roles"])) == set(leaves(tree))
    chosen = leaves(obj["selected_features"])
    assert chosen and set(chosen) <= set(leaves(tree)) and len(chosen) < len(leaves(tree))
    assert all_names(obj["selected_features"]) <= all_names(tree)
    assert isinstance(obj["integration_strategy"], str) and obj["integration_strategy"]


def run_py(code: str, stdin: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], input=stdin, capture_output=True,
                         text=True, timeout=30, check=True)
    return out.stdout


@pytest.mark.parametrize("style", STYLES)
def test_statement_samples_match_the_solution(openai_stub, style) -> None:
    openai_stub.rule = SynthResponder(wrong_rate=0.0)
    seen = set()
    for seed in range(6):
        obj = parse_json(content(post(openai_stub, statement_prompt(style), seed=seed)))
        assert set(obj) == {"title", "statement"}
        statement = obj["statement"]
        problem = recognise(statement)
        assert problem is not None
        seen.add(problem.key)
        pairs = sample_pairs(statement)
        assert len(pairs) == 2
        for tag in {"codeforces": ("## Input", "## Output", "Note"),
                    "leetcode": ("Input: nums = [", "Constraints", "Input format"),
                    "atcoder": ("## Problem Statement", "## Constraints",
                                "Sample Input 1", "Sample Output 2")}[style]:
            assert tag in statement
        answer = content(post(openai_stub, solution_prompt(statement), seed=seed))
        assert answer.startswith("<think>") and "</think>" in answer
        (code,) = code_blocks(answer)
        ast.parse(code)
        for inp, out in pairs:
            assert run_py(code, inp).strip() == out.strip()
            nums = [int(x) for x in inp.split()[1:]]
            assert str(problem.solve(nums)) == out.strip()
    assert len(seen) >= 2


def test_statements_are_hint_free() -> None:
    import random

    from synth_responder import render_statement
    banned = re.compile(r"segment tree|dynamic programming|binary search|prefix sum|"
                        r"O\(|kadane|hash|greedy|sort", re.I)
    for p in BANK:
        for style in STYLES:
            _, text = render_statement(p, style, random.Random(1))
            assert not banned.search(text), (p.key, style)


def test_every_bank_program_is_right_and_the_wrong_one_differs() -> None:
    import random

    from synth_responder import python_program
    for p in BANK:
        inputs = [p.make(random.Random(s), s % 2) for s in range(8)]
        inputs += [[p.lo if p.lo > 0 else -5], [7, 7, 7]]
        wrong_differs = False
        for s in range(6):
            code = python_program(p, random.Random(s))
            bad = python_program(p, random.Random(s), wrong=True)
            for a in inputs:
                stdin = f"{len(a)}\n{' '.join(map(str, a))}\n"
                assert run_py(code, stdin).strip() == str(p.solve(a))
                if s == 0 and run_py(bad, stdin).strip() != str(p.solve(a)):
                    wrong_differs = True
        assert wrong_differs, p.key


def test_solutions_vary_and_some_are_wrong(openai_stub, responder) -> None:
    obj = parse_json(content(post(openai_stub, statement_prompt("codeforces"))))
    prompt = solution_prompt(obj["statement"])
    codes = [code_blocks(content(post(openai_stub, prompt, seed=s)))[0] for s in range(24)]
    assert len(set(codes)) > 6
    assert 0 < responder.counts["wrong_solution"] < 12
    assert responder.counts["solution"] == 24


def test_cpp_solution(openai_stub, responder, tmp_path) -> None:
    obj = parse_json(content(post(openai_stub, statement_prompt("atcoder"), seed=2)))
    answer = content(post(openai_stub, solution_prompt(obj["statement"], cpp=True)))
    (code,) = code_blocks(answer, "cpp")
    assert not code_blocks(answer) and "int main()" in code
    gxx = shutil.which("g++")
    if gxx is None:
        return
    src = tmp_path / "a.cpp"
    src.write_text(code)
    subprocess.run([gxx, "-std=c++17", "-O1", "-o", str(tmp_path / "a"), str(src)], check=True,
                   timeout=120)
    for inp, out in sample_pairs(obj["statement"]):
        got = subprocess.run([str(tmp_path / "a")], input=inp, capture_output=True, text=True,
                             timeout=30, check=True).stdout
        assert got.strip() == out.strip()


def test_deterministic_and_sample_dependent(openai_stub) -> None:
    prompts = [features_prompt(), statement_prompt("codeforces"),
               render("evolve", subtree=json.dumps(SUBTREE), min_new_siblings=2)]
    openai_stub.rule = SynthResponder()
    first = [[content(post(openai_stub, p, seed=s)) for s in range(4)] for p in prompts]
    openai_stub.rule = SynthResponder()
    again = [[content(post(openai_stub, p, seed=s)) for s in range(4)] for p in prompts]
    assert first == again
    for answers in first:
        assert len(set(answers)) > 1
    openai_stub.rule = SynthResponder(seed=1)
    other = [[content(post(openai_stub, p, seed=s)) for s in range(4)] for p in prompts]
    assert other != first


def test_other_prompts_fall_through(openai_stub, responder) -> None:
    text = content(post(openai_stub, render("eval_solve", title="x", statement="x",
                                            starter="", convention="")))
    assert "answer " in text  # the stub's canned completion
    assert sum(responder.counts.values()) == 0


def test_the_tests_stage_prompts_get_valid_inputs_a_generator_and_a_validator(
        openai_stub, responder) -> None:
    from engine.verify.test_synthesis import parse_direct_inputs, parse_program

    problem = BANK[4]  # gcd: values from 1
    statement = render_statement(problem, "codeforces", random.Random(0))[1]
    found = parse_direct_inputs(content(post(openai_stub, render("tests_direct",
                                                                 statement=statement, n=4))))
    assert [k for k, _ in found] == ["random", "edge", "random", "edge"]
    generator = parse_program(content(post(openai_stub, render(
        "tests_generator", statement=statement, kind="stress", kind_description="big"))))
    validator = parse_program(content(post(openai_stub, render("tests_validator",
                                                               statement=statement))))
    made = subprocess.run([sys.executable, "-c", generator], input="5 stress\n",
                          capture_output=True, text=True, timeout=30, check=True).stdout
    assert 1000 <= int(made.split()[0]) <= 2000
    for data in [made, *(d for _, d in found)]:
        assert subprocess.run([sys.executable, "-c", validator], input=data, text=True,
                              timeout=30).returncode == 0
    assert subprocess.run([sys.executable, "-c", validator], input="2\n0 5\n", text=True,
                          timeout=30).returncode == 1  # 0 is below the gcd problem's bound
    assert (responder.counts["direct"], responder.counts["generator"],
            responder.counts["validator"]) == (1, 1, 1)


@pytest.mark.parametrize("fault", ["code_json", "code_only"])
def test_code_where_json_was_asked(openai_stub, fault) -> None:
    openai_stub.rule = r = SynthResponder(faults={fault: 1.0})
    text = content(post(openai_stub, JSON_PROMPTS["evolve"]()))
    (code,) = code_blocks(text)
    assert re.search(r"tree = \{\}|people = \[\]|data\[i\]", code)
    after = text.split("```\n", 2)[-1]
    assert bool(find_json_objects(after)) == (fault == "code_json")
    assert r.counts[fault] == 1


def test_empty_expansion_and_drop(openai_stub) -> None:
    openai_stub.rule = r = SynthResponder(faults={"empty_expansion": 1.0})
    got = parse_json(content(post(openai_stub, JSON_PROMPTS["evolve"]())))
    assert got in ({}, SUBTREE) and r.counts["empty_expansion"] == 1
    openai_stub.rule = r = SynthResponder(faults={"drop": 1.0}, fault_kinds=["evolve"])
    with pytest.raises(OSError):  # the connection closed without a reply
        post(openai_stub, JSON_PROMPTS["evolve"]())
    assert r.counts["drop"] == 1
    post(openai_stub, features_prompt())  # not a kind the faults apply to
    with pytest.raises(ValueError, match="unknown prompt kinds"):
        SynthResponder(fault_kinds=["nope"])


JSON_PROMPTS = {
    "features": features_prompt,
    "evolve": lambda: render("evolve", subtree=json.dumps(SUBTREE), min_new_siblings=2),
    "statement": lambda: statement_prompt("leetcode"),
}


def _strict(text: str) -> dict | None:
    """The whole answer's object (the fence, else from the first '{'), or None."""
    m = re.search(r"^```json[ \t]*\n(.*?)^```[ \t]*$", text, re.S | re.M)
    try:
        if m:
            return json.loads(m.group(1))
        return json.JSONDecoder().raw_decode(text, text.index("{"))[0]
    except ValueError:
        return None


def test_json_faults_fire_at_one_and_not_at_zero(openai_stub) -> None:
    for fault in ("malformed_json", "trailing_comma", "prose_json"):
        for make in JSON_PROMPTS.values():
            openai_stub.rule = r = SynthResponder(faults={fault: 1.0})
            text = content(post(openai_stub, make()))
            assert r.counts[fault] == 1
            if fault == "prose_json":
                assert "```" not in text.split("{", 1)[0] and not text.startswith("{")
                assert find_json_objects(text)
            else:
                assert _strict(text) is None
            if fault == "trailing_comma":
                fixed = re.sub(r",(\s*[}\]])", r"\1", text)
                assert _strict(fixed) is not None
            openai_stub.rule = r = SynthResponder(faults={fault: 0.0})
            assert _strict(content(post(openai_stub, make()))) is not None
            assert r.counts[fault] == 0


def test_truncated(openai_stub) -> None:
    openai_stub.rule = r = SynthResponder(faults={"truncated": 1.0})
    full_rule = SynthResponder()
    prompt = features_prompt()
    reply = post(openai_stub, prompt)
    assert reply["choices"][0]["finish_reason"] == "length"
    openai_stub.rule = full_rule
    full = content(post(openai_stub, prompt))
    assert content(reply) == full[: len(full) // 2]
    assert r.counts["truncated"] == 1


def test_hint_leak(openai_stub) -> None:
    openai_stub.rule = r = SynthResponder(faults={"hint_leak": 1.0})
    obj = parse_json(content(post(openai_stub, statement_prompt("codeforces"))))
    assert re.search(r"segment tree|O\(n log n\)|dynamic programming|binary search",
                     obj["statement"])
    assert r.counts["hint_leak"] == 1
    openai_stub.rule = r = SynthResponder(faults={"hint_leak": 0.0})
    obj = parse_json(content(post(openai_stub, statement_prompt("codeforces"))))
    assert "Hint" not in obj["statement"] and "O(" not in obj["statement"]


@pytest.mark.parametrize("fault", ["no_code", "two_blocks", "syntax_error"])
def test_code_faults(openai_stub, fault) -> None:
    openai_stub.rule = SynthResponder()
    statement = parse_json(content(post(openai_stub, statement_prompt("codeforces"))))["statement"]
    openai_stub.rule = r = SynthResponder(faults={fault: 1.0})
    blocks = code_blocks(content(post(openai_stub, solution_prompt(statement))))
    assert r.counts[fault] == 1
    if fault == "no_code":
        assert blocks == []
    elif fault == "two_blocks":
        assert len(blocks) == 2
    else:
        (code,) = blocks
        with pytest.raises(SyntaxError):
            ast.parse(code)
    openai_stub.rule = r = SynthResponder(faults={fault: 0.0})
    (code,) = code_blocks(content(post(openai_stub, solution_prompt(statement))))
    ast.parse(code)
    assert r.counts[fault] == 0


def test_unknown_fault_is_refused() -> None:
    with pytest.raises(ValueError):
        SynthResponder(faults={"nope": 1.0})
    assert "truncated" in FAULTS
