"""Sample tests read from task statements (engine/verify/samples.py), layout by layout.

    .venv/bin/python -m pytest tests/engine/verify/test_samples.py -q

Each statement below is written the way a site or an LLM writes one; every test checks the
pairs found and that nothing else (a format section, a function-call example, a broken
block) was taken as a sample.
"""

from __future__ import annotations

import random

import pytest

from engine.verify.samples import Sample, SampleParse, parse_samples, statement_samples


def pairs(statement: str) -> list[tuple[str, str, str]]:
    return [(s.input, s.output, s.name) for s in parse_samples(statement).pairs]


def problems(statement: str) -> tuple[str, ...]:
    return parse_samples(statement).problems


# --- Codeforces ------------------------------------------------------------------------------

CODEFORCES = """\
# B. Lanterns on the Bridge

Vasya walks across the old bridge every evening. There are n lanterns on it, the i-th one
shining with brightness a_i. Vasya calls an evening pleasant if he can pick two lanterns
whose brightness adds up to exactly k. Help him find such a pair.

## Input

The first line contains two integers n and k (2 <= n <= 2 * 10^5, 1 <= k <= 10^9).

The second line contains n integers a_1, a_2, ..., a_n (1 <= a_i <= 10^9).

## Output

If there is a pair, print YES, and on the next line the two indices. Otherwise print NO.

Input
```
standard input
```

## Examples

Input

```text
4 9
2 7 11 15
```

Output

```text
YES
1 2
```

Input

```text
3 100
1 2 3
```

Output

```text
NO
```

## Note

In the first example a_1 + a_2 = 2 + 7 = 9.
"""


def test_codeforces_examples_section_with_two_bare_input_output_pairs():
    # The "## Input" / "## Output" format sections (and the stray "Input" over a fence
    # outside the Examples section) are not samples.
    assert pairs(CODEFORCES) == [("4 9\n2 7 11 15", "YES\n1 2", "Example 1"),
                                 ("3 100\n1 2 3", "NO", "Example 2")]
    assert problems(CODEFORCES) == ()


def test_codeforces_copy_paste_with_lowercase_labels_and_copy_buttons():
    pasted = """\
A. Two Buttons
time limit per test
2 seconds
memory limit per test
256 megabytes
input
standard input
output
standard output

Vasya found a strange device with a red and a blue button...

Input
The first line contains two distinct integers n and m (1 <= n, m <= 10^4).

Output
Print a single number: the minimum number of times one needs to push the button.

Examples
inputCopy
4 6
outputCopy
2
inputCopy
10 1
outputCopy
9
Note
In the first example you need to push the blue button once, and then the red one.
"""
    assert pairs(pasted) == [("4 6", "2", "Example 1"), ("10 1", "9", "Example 2")]
    assert problems(pasted) == ()
    plain = ("Examples\ninput\n3\n1 2 3\noutput\n6\ninput\n1\n5\noutput\n5\n\nNote\n"
             "In the first test the sum is 6.\n")
    assert statement_samples(plain) == [("3\n1 2 3", "6"), ("1\n5", "5")]


def test_numbered_example_headings_with_bare_labels_and_notes_between():
    statement = """\
## Examples

### Example 1

**Input:**
```
5
1 2 3 4 5
```
**Output:**
```
15
```

Note

The sum of all five numbers.

### Example 2

**Input:**
```
1
-7
```
**Output:**
```
-7
```
"""
    assert pairs(statement) == [("5\n1 2 3 4 5", "15", "Example 1"), ("1\n-7", "-7", "Example 2")]
    assert problems(statement) == ()


# --- AtCoder and archives ---------------------------------------------------------------------

ATCODER = """\
# C - Grid Walk

## Problem Statement

There is a grid with H rows and W columns. Takahashi starts at the top-left square and
moves only right or down. Find the number of paths modulo 998244353.

## Constraints

- 1 \\le H, W \\le 10^5
- All values in the input are integers.

## Input

Input is given from Standard Input in the following format:

```
H W
```

## Output

Print the answer.

---

## Sample Input 1

```
2 3
```

## Sample Output 1

```
3
```

The paths are RRD, RDR and DRR.

## Sample Input 2

```
1 1
```

## Sample Output 2

```
1
```

## Sample Input 3

```
100000 100000
```

## Sample Output 3

```
703730963
```
"""


def test_atcoder_three_numbered_samples_and_a_fenced_format_section():
    assert pairs(ATCODER) == [("2 3", "3", "Sample 1"), ("1 1", "1", "Sample 2"),
                              ("100000 100000", "703730963", "Sample 3")]
    assert problems(ATCODER) == ()


def test_unfenced_samples_of_a_plain_text_archive():
    statement = """\
Stamps

Lucy has n stamps in a row ...

INPUT FORMAT:
The first line contains n.

OUTPUT FORMAT:
One integer.

SAMPLE INPUT (file stamps.in):
5
3 1 4 1 5

SAMPLE OUTPUT (file stamps.out):
10

Sample Input 2:
1
42
Sample Output 2:
42
"""
    assert pairs(statement) == [("5\n3 1 4 1 5", "10", "Sample 1"), ("1\n42", "42", "Sample 2")]
    assert problems(statement) == ()
    # the seed statements' layout: plain "Input"/"Output" format sections, one sample
    seed = ("Input\nThe first line contains an integer n, the number of cards.\n\nOutput\n"
            "Print one integer.\n\nConstraints\n1 <= n <= 200000\n\nSample Input\n5\n3 1 4 1 5"
            "\n\nSample Output\n10\n\nNote\n3 - 1 + 4 - 1 + 5 = 10.\n")
    assert pairs(seed) == [("5\n3 1 4 1 5", "10", "Sample 1")]


def test_heading_styles_numbers_fences_and_info_strings():
    statement = """\
**Sample Input #1**
~~~
3
~~~
**Sample Output #1:**
~~~plaintext
9
~~~

### Sample Input (2):
````text
4
````
### Sample Output (2):
```
16
```

Sample input 3
```
5
```
Sample output 3:
```
25
```
"""
    assert pairs(statement) == [("3", "9", "Sample 1"), ("4", "16", "Sample 2"),
                                ("5", "25", "Sample 3")]
    assert problems(statement) == ()


def test_input_n_output_n_labels_inside_a_samples_section():
    statement = ("## Samples\n\nInput 1\n```\n2 2\n```\nOutput 1\n```\n4\n```\n\n"
                 "Input 2\n```\n3 5\n```\nOutput 2\n```\n15\n```\n")
    assert pairs(statement) == [("2 2", "4", "Sample 1"), ("3 5", "15", "Sample 2")]


def test_inputs_listed_before_outputs_pair_by_their_numbers():
    statement = ("Sample Input 1\n```\n1\n```\nSample Input 2\n```\n2\n```\n"
                 "Sample Output 2\n```\n20\n```\nSample Output 1\n```\n10\n```\n")
    assert pairs(statement) == [("1", "10", "Sample 1"), ("2", "20", "Sample 2")]
    # numbers repeated by a sloppy statement: names stay unique
    twice = "Sample Input 1\n5\nSample Output 1\n6\n\nSample Input 1\n7\nSample Output 1\n8\n"
    assert pairs(twice) == [("5", "6", "Sample 1"), ("7", "8", "Sample 1 (2)")]


def test_a_mixed_statement_written_by_an_llm():
    statement = """\
# Garden Paths

Mira's garden has n beds in a row ...

### Input Format

The first line contains an integer n. The second line contains n integers h_i.

### Output Format

Print one integer: the number of beds taller than both neighbours.

### Examples

#### Sample 1

Input:

```text
5
1 3 2 4 1
```

Output:

```text
2
```

#### Sample 2

Input: 3
Output: 0

Sample Input 3
4
1 1 1 1

Sample Output 3
0

**Note:** in the first sample beds 2 and 4 are peaks.

#### Sample 4

~~~
Input: 1
Output: 0
~~~
"""
    assert pairs(statement) == [("5\n1 3 2 4 1", "2", "Sample 1"), ("3", "0", "Sample 2"),
                                ("4\n1 1 1 1", "0", "Sample 3"), ("1", "0", "Sample 4")]
    assert problems(statement) == ()


# --- Inline "Input: 3 4" -------------------------------------------------------------------


def test_inline_input_and_output_inside_examples():
    statement = """\
Given two integers, print their sum.

Input: two integers a and b separated by a space.
Output: their sum.

Example 1:
Input: 3 4
Output: 7

Example 2:
- **Input:** `-5 5`
- **Output:** `0`
Explanation: -5 + 5 = 0.
"""
    assert pairs(statement) == [("3 4", "7", "Example 1"), ("-5 5", "0", "Example 2")]
    assert problems(statement) == ()


def test_spoj_example_with_colon_labels_over_lines():
    statement = """\
Your program is to use the brute-force approach in order to find the Answer to Life, the
Universe, and Everything.

Example

Input:
1
2
88
42
99

Output:
1
2
88
"""
    assert statement_samples(statement) == [("1\n2\n88\n42\n99", "1\n2\n88")]


# --- LeetCode: function calls, not stdin -------------------------------------------------------

LEETCODE = """\
# 1. Two Sum

Given an array of integers `nums` and an integer `target`, return indices of the two numbers
such that they add up to `target`.

**Example 1:**

```
Input: nums = [2,7,11,15], target = 9
Output: [0,1]
Explanation: Because nums[0] + nums[1] == 9, we return [0, 1].
```

**Example 2:**

**Input:** nums = [3,2,4], target = 6
**Output:** [1,2]

**Example 3:**

Input
["TwoSum", "add", "find"]
[[], [3], [6]]
Output
[null, null, false]

**Constraints:**

- `2 <= nums.length <= 10^4`
"""


def test_leetcode_function_call_examples_are_not_stdin_pairs():
    found = parse_samples(LEETCODE)
    assert found.pairs == ()
    assert len(found.problems) == 3
    assert all("function-call example, not stdin/stdout" in p for p in found.problems)
    assert "Example 2" in found.problems[1]


def test_leetcode_with_a_stdin_version_keeps_only_the_stdin_pairs():
    statement = """\
**Example 1:**

Input: nums = [3,1,4]
Output: 8
Explanation: 3 + 1 + 4 = 8.

Input
```
3
3 1 4
```
Output
```
8
```

**Input format**

The first line holds n, the length of nums.
"""
    found = parse_samples(statement)
    assert found.pairs == (Sample("3\n3 1 4", "8", "Example 1"),)
    assert len(found.problems) == 1 and "function-call" in found.problems[0]


# --- Format sections are not samples ------------------------------------------------------------


@pytest.mark.parametrize("statement", [
    # markdown format sections, no samples at all
    "## Input\n\nThe first line contains n.\n\n## Output\n\nPrint the answer.\n",
    # plain ones
    "Input\nThe first line holds n.\nOutput\nOne number.",
    # AtCoder's format shown in a fence right under the heading
    "## Input\n\n```\nN\nA_1 A_2 ... A_N\n```\n\n## Output\n\nPrint the answer.\n",
    # bold ones, with colons, data-like format lines
    "**Input:**\n\nN M\nA_1 ... A_N\n\n**Output:**\n\nX\n",
    # inline, outside an example
    "Input: The first line contains a single integer n.\nOutput: Print n squared.\n",
    # Codeforces' page header
    "time limit per test\n1 second\ninput\nstandard input\noutput\nstandard output\n",
])
def test_format_sections_are_not_samples(statement):
    assert parse_samples(statement) == SampleParse()


def test_format_sections_after_the_examples_end_them():
    plain = """\
Example
Input
3 4
Output
7

Input
The first line contains two integers a and b.
Output
Print their sum.
"""
    assert statement_samples(plain) == [("3 4", "7")]
    markdown = ("## Examples\n\n### Input\n```\n3 4\n```\n### Output\n```\n7\n```\n\n"
                "## Input\n\nThe first line contains a and b.\n\n## Output\n\nTheir sum.\n")
    assert statement_samples(markdown) == [("3 4", "7")]
    assert problems(markdown) == ()


def test_a_format_fence_under_input_is_dropped_when_samples_are_labelled():
    statement = ("## Input\n```\nN\n```\n## Output\n```\nthe answer\n```\n\n"
                 "Sample Input 1\n```\n4\n```\nSample Output 1\n```\n16\n```\n")
    assert statement_samples(statement) == [("4", "16")]
    # with no labelled samples, a bare pair over fences is Codeforces' layout: kept
    codeforces = "Input\n```\n2\n1 2\n```\nOutput\n```\n3\n```\n"
    assert statement_samples(codeforces) == [("2\n1 2", "3")]
    # ... but a lone fenced "## Input" is the format: no pair, no problem
    assert parse_samples("## Input\n```\nN\n```\n## Output\nPrint N.\n") == SampleParse()


# --- Block text ---------------------------------------------------------------------------------


def test_block_text_is_kept_exactly():
    statement = ("Sample Input 1\n```\n\n  2\n\n a  b \n\n```\n"
                 "Sample Output 1\n```\n   *\n  ***\n```\n\n"
                 "Sample Input 2\r\n3\r\n\r\n1 2 3\r\n\r\nSample Output 2\r\n  6\r\n\r\nNote\r\n"
                 "- Sample Input 3\n  ```\n  1\n    2\n  ```\n- Sample Output 3\n  ```\n  x\n  ```\n")
    assert statement_samples(statement) == [("  2\n\n a  b ", "   *\n  ***"),
                                            ("3\n\n1 2 3", "  6"), ("1\n  2", "x")]


def test_an_unfenced_output_ends_at_the_blank_line_or_explanation():
    statement = ("Sample Input\n4\nSample Output\n16\nExplanation: 4 * 4 = 16.\n\n"
                 "Sample Input\n3\n\nSample Output\n9\n\n9 = 3 * 3, see above.\n")
    assert pairs(statement) == [("4", "16", "Sample 1"), ("3", "9", "Sample 2")]


# --- Malformed blocks ----------------------------------------------------------------------------


def test_an_input_without_output_is_a_problem_and_its_neighbours_still_pair():
    statement = ("Sample Input 1\n```\n1\n```\n\nSample Input 2\n```\n2\n```\n"
                 "Sample Output 2\n```\n4\n```\n")
    found = parse_samples(statement)
    assert found.pairs == (Sample("2", "4", "Sample 2"),)
    assert found.problems == ("line 1: input with no output ('Sample Input 1'); skipped",)


def test_an_output_without_input_is_a_problem():
    found = parse_samples("Sample Output 1\n```\n7\n```\nSample Input 2\n3\n\nSample Output 2\n9")
    assert found.pairs == (Sample("3", "9", "Sample 2"),)
    assert len(found.problems) == 1 and "output with no input" in found.problems[0]


def test_unnumbered_runs_that_do_not_match_are_skipped_not_guessed():
    statement = "Examples\nInput\n```\n3\n```\nInput\n```\n4\n```\nOutput\n```\n7\n```\n"
    found = parse_samples(statement)
    assert found.pairs == ()
    assert len(found.problems) == 1 and "more inputs than outputs" in found.problems[0]


def test_an_unclosed_fence_is_a_problem_and_its_sample_is_skipped():
    statement = ("Sample Input 1\n```\n1\n```\nSample Output 1\n```\n1\n```\n"
                 "Sample Input 2\n```\n2\n```\nSample Output 2\n```\n4\n")
    found = parse_samples(statement)
    assert found.pairs == (Sample("1", "1", "Sample 1"),)
    assert found.problems == ("line 14: unclosed ``` fence in the output block under "
                              "'Sample Output 2'; skipped",)
    swallowed = parse_samples("## Input\n```\nN\n\nSample Input 1\n3\n\nSample Output 1\n9\n")
    assert swallowed.pairs == () and "unclosed" in swallowed.problems[0]


def test_empty_blocks_are_problems():
    statement = ("Sample Input 1\n```\n```\nSample Output 1\n```\n0\n```\n"
                 "Sample Input 2\n\nSample Output 2\n5\n\nSample Input 3\n5\nSample Output 3\n"
                 "```\n\n```\n")
    found = parse_samples(statement)
    assert found.pairs == ()
    assert [p.split(":")[0] for p in found.problems] == ["line 1", "line 8", "line 15"]
    assert all("empty" in p for p in found.problems)


# --- Compatibility and robustness --------------------------------------------------------------


def test_todays_statement_samples_expectations_still_hold():
    sum_statement = "# Sum\n\n## Sample Input 1\n```\n3\n1 2 3\n```\n\n## Sample Output 1\n```\n6\n```\n"
    plain = "Sample Input\n5\n3 1 4 1 5\n\nSample Output\n10\n\nNote\n3 - 1 = 2."
    assert statement_samples(plain) == [("5\n3 1 4 1 5", "10")]
    fenced = sum_statement + "\n### Example input 2:\n```\n1\n7\n```\n### Example output 2:\n" \
        "```\n7\n```\n"
    assert statement_samples(fenced) == [("3\n1 2 3", "6"), ("1\n7", "7")]
    assert statement_samples("Input\nThe first line holds n.\nOutput\nOne number.") == []
    codeforces = ("## Input\n\nThe first line holds n.\n\n## Output\n\nOne number.\n\n"
                  "## Examples\n\nInput\n```\n2\n1 2\n```\nOutput\n```\n3\n```\n\n"
                  "**Input**\n\n```\n1\n5\n```\n\n**Output**\n\n```\n5\n```\n")
    assert statement_samples(codeforces) == [("2\n1 2", "3"), ("1\n5", "5")]
    atcoder = ("## Input\n\nInput is given in the following format:\n\n```\nN\n```\n\n"
               "Sample Input 1\n\n```\n4\n```\n\nSample Output 1\n\n```\n16\n```\n")
    assert statement_samples(atcoder) == [("4", "16")]


def test_the_stub_llms_statements_in_every_style():
    # tests/synth_responder.py writes Codeforces-, LeetCode- and AtCoder-style statements
    # with two stdin samples each; its own reader is the reference.
    from synth_responder import BANK, render_statement, sample_pairs

    for style in ("codeforces", "leetcode", "atcoder"):
        for seed in range(12):
            _, statement = render_statement(BANK[seed % len(BANK)], style, random.Random(seed))
            want = [(i.rstrip("\n"), o.rstrip("\n")) for i, o in sample_pairs(statement)]
            found = parse_samples(statement)
            assert [(s.input, s.output) for s in found.pairs] == want, (style, seed)
            assert all("function-call" in p for p in found.problems), (style, seed)


_DATA = ["3", "-7", "1 2 3", "100000 100000", "abc", "YES", "NO", "Alice Bob", "0 0 0",
         "#..#", ".#.", "3.14159", "[1,2,3]", "a b c d e"]
_FORMATS = ["", "## Input\n\nThe first line contains n.\n\n## Output\n\nPrint the answer.\n",
            "Input\nThe first line contains n.\nOutput\nPrint it.\n",
            "## Input\n\n```\nN\nA_1 ... A_N\n```\n\n## Output\n\nPrint the answer.\n"]


def _data(rng: random.Random, fenced: bool) -> str:
    rows = [rng.choice(_DATA) for _ in range(rng.randrange(1, 4))]
    if fenced and rng.random() < 0.3:
        rows[0] = "  " + rows[0]  # leading spaces matter in outputs
    return "\n".join(rows)


def _layout(rng: random.Random, k: int, given: str, want: str) -> tuple[str, str]:
    """One sample in a random layout: (its text, the section heading it needs or "")."""
    fence = rng.choice(["```", "```text", "~~~", "```plaintext"])
    close = fence[:3]
    colon = rng.choice(["", ":"])
    style = rng.randrange(5)
    if style == 0:  # AtCoder
        h = rng.choice(["", "## ", "### "])
        return (f"{h}Sample Input {k}{colon}\n\n{fence}\n{given}\n{close}\n\n"
                f"{h}Sample Output {k}{colon}\n\n{fence}\n{want}\n{close}\n\n"
                "The answer follows from the definition.\n\n", "")
    if style == 1:  # Codeforces, fenced
        b = rng.choice(["", "**"])
        return (f"{b}Input{colon}{b}\n{fence}\n{given}\n{close}\n{b}Output{colon}{b}\n"
                f"{fence}\n{want}\n{close}\n\n", "## Examples\n\n")
    if style == 2:  # pasted, unfenced
        return f"input\n{given}\noutput\n{want.lstrip()}\n", "Examples\n"
    if style == 3:  # numbered example heading, bare colon labels over lines
        return (f"### Example {k}\n\nInput:\n{given}\n\nOutput:\n{want.lstrip()}\n\n"
                f"Explanation: see above.\n\n", "")
    # plain archive
    return (f"Sample Input\n{given}\n\nSample Output\n{want.lstrip()}\n\n"
            "Note\nNothing to add.\n\n", "")


def test_generated_statements_in_every_layout_give_exactly_their_samples():
    rng = random.Random(7)
    for _ in range(500):
        statement, expected, current = rng.choice(_FORMATS) + "\n", [], None
        for k in range(1, rng.randrange(1, 5)):
            given, want = _data(rng, False), _data(rng, True)
            text, section = _layout(rng, k, given, want)
            if section and section != current:
                statement += section
            current = section or None
            statement += text
            expected.append((given, want if "```" in text or "~~~" in text else want.lstrip()))
        found = parse_samples(statement)
        assert statement_samples(statement) == expected, statement
        assert found.problems == (), statement


_FUZZ_LINES = [
    "", "", "", "```", "```text", "~~~", "````", "  ```", "Input", "Output", "input", "output:",
    "## Input", "### Output", "**Input:**", "Input: 3 4", "Output: 7", "Input: a = 1, b = 2",
    "Sample Input 1", "Sample Output 1", "Sample Input #2:", "Sample Output (2)", "Examples",
    "## Example 1", "**Example 2:**", "Note", "Explanation: because.", "## Constraints",
    "Copy", "inputCopy", "outputCopy", "3", "1 2 3", "  4 5", "#..#", "# . #", "**", "*",
    "The first line contains n.", '["A","b"]', "[[1],[2]]", "- Input: `5`", "\t", "\r", "::",
    "Sample", "(1)", "Input 1", "Output 12", "Sample Input 1 Copy", "__Output__",
]


def _garble(rng: random.Random) -> str:
    lines = []
    for _ in range(rng.randrange(0, 40)):
        roll = rng.random()
        if roll < 0.8:
            lines.append(rng.choice(_FUZZ_LINES))
        elif roll < 0.9:
            lines.append("".join(rng.choice("#*_`~:() \t0123456789abInputOutputSample\r")
                                 for _ in range(rng.randrange(0, 30))))
        else:
            lines.append("".join(chr(rng.randrange(1, 0x3000)) for _ in range(rng.randrange(9))))
    return rng.choice(["\n", "\r\n", "\n\n"]).join(lines)


def test_fuzz_never_raises_and_pairs_are_whole():
    rng = random.Random(20240611)
    for _ in range(3000):
        statement = _garble(rng)
        found = parse_samples(statement)
        assert isinstance(found, SampleParse)
        text = statement.replace("\r\n", "\n").replace("\r", "\n")
        for sample in found.pairs:
            assert sample.input.strip() and sample.output.strip() and sample.name
            for line in (sample.input + "\n" + sample.output).split("\n"):
                assert line.strip() in text  # nothing made up
        assert len({s.name for s in found.pairs}) == len(found.pairs)
        assert all(isinstance(p, str) and p.startswith("line ") for p in found.problems)
        assert statement_samples(statement) == [(s.input, s.output) for s in found.pairs]
    for odd in ("", "\n" * 50, "```" * 500, "Input:" + " 1" * 20000, "#" * 10000,
                "Sample Input\n" * 2000, "Input\n```\n" * 1000,
                "Examples\n" + "".join("`~"[k % 2] * (300 - k // 2) + "\n" for k in range(500))):
        parse_samples(odd)
    assert parse_samples(None) == SampleParse()  # type: ignore[arg-type]
