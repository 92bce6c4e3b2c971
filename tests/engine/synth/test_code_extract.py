"""The one complete code block of a candidate solution (engine.synth.code_extract).

    .venv/bin/python -m pytest tests/engine/synth/test_code_extract.py -q

Answers are shaped like real ones: R1-style ``<think>`` sections with drafts, explanations
around the block, sample I/O blocks, cut-off generations. Leaves out compiling C++ (the
sandbox's job).
"""

from __future__ import annotations

import pytest

from engine.synth.code_extract import (
    REJECT_CODES,
    extract_solution,
    fenced_blocks,
    reason_code,
    split_think,
)

PY = "import sys\n\ndef main():\n    n = int(sys.stdin.readline())\n    print(n * 2)\n\nmain()\n"
CPP = (
    "#include <bits/stdc++.h>\nusing namespace std;\n\nint main() {\n"
    "    long long n; cin >> n;\n    string s = \"}{\"; char c = '{';\n"
    "    cout << n * 2 << '\\n'; // done }\n    return 0;\n}\n"
)

R1_ANSWER = f"""<think>
The answer is twice n. Let me draft it:

```python
print(int(input()) + 1)
```

No wait, that adds one. Doubling is right.
</think>

We read n and print 2n.

```python
{PY}```

Example:

```
Input
3
```

```output
6
```

This runs in constant time.
"""


def code_of(reason: str | None) -> str | None:
    return None if reason is None else reason_code(reason)


# --- accepted answers


def test_r1_answer_takes_the_final_block_not_the_draft_inside_think():
    ex = extract_solution(R1_ANSWER, "python")
    assert ex.ok and ex.reject_reason is None
    assert ex.code == PY
    assert ex.language == "python"
    # Thinking first, then the prose around the accepted block; the block itself is gone.
    assert ex.reasoning.startswith("The answer is twice n.")
    assert "We read n and print 2n." in ex.reasoning
    assert "This runs in constant time." in ex.reasoning
    assert "def main" not in ex.reasoning
    assert "print(int(input()) + 1)" in ex.reasoning  # the draft stays in the thinking


def test_server_reasoning_comes_first_in_reasoning():
    ex = extract_solution(f"Doubling.\n\n```py\n{PY}```\n", reasoning="  server thoughts \n")
    assert ex.ok
    assert ex.reasoning == "server thoughts\n\nDoubling."


def test_prefilled_think_without_opening_tag():
    text = f"I think doubling works.\n</think>\n\n```python\n{PY}```"
    ex = extract_solution(text)
    assert ex.ok and ex.code == PY
    assert ex.reasoning == "I think doubling works."


def test_untagged_block_counts_as_the_requested_language():
    ex = extract_solution(f"Solution:\n```\n{PY}```\n")
    assert ex.ok and ex.code == PY


def test_tagged_block_wins_over_untagged_ones():
    text = f"Input format:\n```\n3\n```\n\n```python3\n{PY}```\n"
    ex = extract_solution(text)
    assert ex.ok and ex.code == PY


def test_sample_io_blocks_are_ignored():
    text = f"```text\n3\n```\n```python\n{PY}```\n```bash\npython sol.py < in.txt\n```\n"
    assert extract_solution(text).code == PY


def test_tilde_fences_and_a_reply_with_no_reasoning():
    ex = extract_solution(f"~~~python\n{PY}~~~")
    assert ex.ok and ex.code == PY
    assert ex.reasoning == ""


def test_truncated_after_the_block_is_accepted():
    text = f"```python\n{PY}```\n\nNow let me explain the complexity: it is"
    ex = extract_solution(text, truncated=True)
    assert ex.ok and ex.code == PY


def test_cpp_accepted_braces_in_strings_and_comments_do_not_count():
    ex = extract_solution(f"Here:\n```cpp\n{CPP}```\n", "cpp")
    assert ex.ok, ex.reject_reason
    assert ex.code == CPP
    assert ex.language == "cpp"


@pytest.mark.parametrize("tag", ["c++", "cc", "cxx", "CPP"])
def test_cpp_tag_spellings(tag):
    assert extract_solution(f"```{tag}\n{CPP}```", "cpp").ok


def test_cpp_raw_strings_and_digit_separators():
    code = ('#include <cstdio>\nint main() {\n    const char* s = R"x(})x";\n'
            "    long long big = 1'000'000;\n    printf(\"%s %lld\", s, big);\n}\n")
    assert extract_solution(f"```cpp\n{code}```", "cpp").ok


# --- rejected answers


def test_two_python_blocks():
    text = f"First:\n```python\n{PY}```\nOr:\n```python\n{PY}```\n"
    ex = extract_solution(text)
    assert not ex.ok and ex.code is None
    assert ex.reject_reason == "multiple_code_blocks: 2"


def test_unterminated_block():
    ex = extract_solution(f"```python\n{PY}")
    assert ex.reject_reason == "unterminated_code_block"


def test_truncated_inside_the_block():
    ex = extract_solution("```python\nimport sys\nfor line in sys.std", truncated=True)
    assert ex.reject_reason == "truncated: cut off inside the code block"


def test_truncated_while_thinking():
    text = "<think>\nLet me consider ```python\nprint(1)\n``` as a first try, but"
    ex = extract_solution(text, truncated=True)
    assert ex.reject_reason == "truncated: cut off while thinking"
    assert "Let me consider" in ex.reasoning


def test_blank_answer_truncated_after_server_reasoning():
    ex = extract_solution("", reasoning="long thoughts", truncated=True)
    assert ex.reject_reason == "truncated: cut off while thinking"
    assert ex.reasoning == "long thoughts"


def test_code_only_inside_think_is_no_code_block():
    text = f"<think>\n```python\n{PY}```\n</think>\nThe answer doubles n."
    ex = extract_solution(text)
    assert ex.reject_reason == "no_code_block"


def test_truncated_before_any_block():
    ex = extract_solution("We need to double n. The program reads", truncated=True)
    assert code_of(ex.reject_reason) == "truncated"


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty(text):
    ex = extract_solution(text)
    assert ex.reject_reason == "empty"
    assert ex.reasoning == ""


def test_syntax_error_reports_the_line():
    code = "n = int(input())\nif n > 0\n    print(n)\n"
    ex = extract_solution(f"```python\n{code}```")
    assert ex.reject_reason is not None
    assert ex.reject_reason.startswith("syntax_error: line 2: ")


def test_only_imports_and_comments_is_incomplete():
    ex = extract_solution("```python\nimport sys\n# solve it here\n\"\"\"docs\"\"\"\n```")
    assert ex.reject_reason == "incomplete_program: no statements"


def test_definitions_that_nothing_calls_are_incomplete():
    ex = extract_solution("```python\ndef solve():\n    print(1)\n```")
    assert code_of(ex.reject_reason) == "incomplete_program"


def test_cpp_missing_main():
    code = "#include <cstdio>\nint solve() { return 1; }\n"
    ex = extract_solution(f"```cpp\n{code}```", "cpp")
    assert ex.reject_reason == "incomplete_program: no main function"


def test_cpp_unbalanced_braces():
    code = "int main() {\n    if (1) {\n        return 0;\n}\n"
    ex = extract_solution(f"```cpp\n{code}```", "cpp")
    assert ex.reject_reason == "syntax_error: unbalanced braces"


def test_wrong_language_both_ways():
    assert extract_solution(f"```cpp\n{CPP}```", "python").reject_reason == \
        "wrong_language: cpp"
    assert extract_solution(f"```python\n{PY}```", "cpp").reject_reason == \
        "wrong_language: python"
    assert extract_solution("```java\nclass A {}\n```", "python").reject_reason == \
        "wrong_language: java"


def test_rejected_reasoning_keeps_the_whole_answer():
    ex = extract_solution("<think>hm</think>Two ideas.\n```python\nx=1\n```\n```python\ny=2\n```")
    assert not ex.ok
    assert ex.reasoning.startswith("hm\n\nTwo ideas.")


def test_every_reject_code_is_listed():
    cases = [
        extract_solution(""),
        extract_solution("no code"),
        extract_solution("```python\nx = 1\n"),
        extract_solution("```python\nx=1\n```\n```python\ny=1\n```"),
        extract_solution("```cpp\nint main(){}\n```"),
        extract_solution("```python\nif\n```"),
        extract_solution("```python\nimport os\n```"),
        extract_solution("```python\nx = (", truncated=True),
    ]
    assert sorted(code_of(ex.reject_reason) for ex in cases) == sorted(REJECT_CODES)


def test_unknown_language_is_an_error():
    with pytest.raises(ValueError):
        extract_solution("x", "rust")


# --- the shared helpers


def test_fenced_blocks_offsets_and_indent():
    text = "Steps:\n\n1. Run:\n   ```python\n   print(1)\n   ```\nend"
    (block,) = fenced_blocks(text)
    assert block.tag == "python" and block.closed
    assert block.body == "print(1)\n"
    assert text[block.start:block.end] == "   ```python\n   print(1)\n   ```\n"


def test_fenced_blocks_longer_fence_holds_a_shorter_one():
    text = "````markdown\n```python\nx\n```\n````\n"
    (block,) = fenced_blocks(text)
    assert block.tag == "markdown" and block.body == "```python\nx\n```\n"


def test_split_think_several_sections():
    thoughts, answer, unclosed = split_think("<think>a</think>x<THINK>b</THINK>y<think>c")
    assert thoughts == ["a", "b", "c"]
    assert answer == "xy"
    assert unclosed
