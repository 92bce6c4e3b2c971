"""Reading the JSON an LLM wrote (engine.synth.json_repair).

    .venv/bin/python -m pytest tests/engine/synth/test_json_repair.py -q

Each repair on replies shaped like real model output, the cut-off replies that must stay
failures (nothing is invented), and the reason codes. Leaves out the stages that call it.
"""

from __future__ import annotations

import pytest

from engine.synth.json_repair import REASON_CODES, JSONParse, parse_json_reply, reason_code

FEATURES = '{"algorithms": {"graph": ["bfs", "dijkstra"]}, "data structures": ["heap"]}'
VALUE = {"algorithms": {"graph": ["bfs", "dijkstra"]}, "data structures": ["heap"]}


def code(got: JSONParse) -> str | None:
    return None if got.error is None else reason_code(got.error)


# --- no repair needed


def test_valid_reply_has_no_repairs():
    got = parse_json_reply(FEATURES)
    assert got.ok and not got.repaired
    assert got.value == VALUE
    assert got.repairs == ()
    assert got.error is None


def test_valid_list_with_expect_list():
    got = parse_json_reply('  [{"title": "A"}, {"title": "B"}]\n', expect=list)
    assert got.ok and got.value == [{"title": "A"}, {"title": "B"}]
    assert got.repairs == ()


# --- each repair


def test_code_fence_with_prose_around():
    text = f"Here are the features:\n```json\n{FEATURES}\n```\nHope this helps!"
    got = parse_json_reply(text)
    assert got.value == VALUE
    assert got.repairs == ("code_fence",)
    assert got.repaired


def test_last_fence_that_parses_wins():
    text = ('Draft:\n```json\n{"a": 1, "b": \n```\nFinal:\n```json\n{"a": 2}\n```\n'
            'Schema reminder:\n```json\n["not", "an", "object"]\n```')
    got = parse_json_reply(text)
    assert got.value == {"a": 2}
    assert got.repairs == ("code_fence",)


def test_think_block_then_fence_then_trailing_comma():
    text = ('<think>\nThe user wants {"x": ...} so I should list features.\n</think>\n\n'
            '```json\n{\n  "features": ["sorting", "greedy",],\n}\n```')
    got = parse_json_reply(text)
    assert got.value == {"features": ["sorting", "greedy"]}
    assert got.repairs == ("think_block", "code_fence", "trailing_comma")


def test_think_opened_by_the_template():
    got = parse_json_reply('Okay, {"draft": true} maybe.\n</think>\n{"final": true}')
    assert got.value == {"final": True}
    assert got.repairs == ("think_block",)


def test_empty_think_block_is_still_a_repair():
    got = parse_json_reply('<think>\n\n</think>\n\n{"a": 1}')
    assert got.value == {"a": 1} and got.repairs == ("think_block",)


def test_surrounding_text_and_braces_inside_strings():
    text = ('Sure! Here is the task:\n{"title": "Brackets", "statement": "Print } then {", '
            '"notes": ["a [b", "c]"]}\nLet me know if you want changes {or not}.')
    got = parse_json_reply(text)
    assert got.value == {"title": "Brackets", "statement": "Print } then {",
                         "notes": ["a [b", "c]"]}
    assert got.repairs == ("surrounding_text",)


def test_two_objects_unfenced_first_balanced_wins():
    got = parse_json_reply('{"a": 1}\n\nOr alternatively:\n\n{"a": 2}')
    assert got.value == {"a": 1}
    assert got.repairs == ("surrounding_text",)


def test_prose_braces_before_the_object_are_skipped():
    got = parse_json_reply('For each {feature} I give a list:\n{"dp": ["knapsack"]}')
    assert got.value == {"dp": ["knapsack"]}


def test_nested_objects():
    nested = '{"a": {"b": {"c": [1, {"d": "}}"}]}}, "e": null}'
    got = parse_json_reply(f"Result: {nested} done")
    assert got.value == {"a": {"b": {"c": [1, {"d": "}}"}]}}, "e": None}


def test_comments():
    text = ('{\n  // the main topics\n  "graph": ["bfs"], /* more later */\n'
            '  "url": "http://example.com/a//b"\n}')
    got = parse_json_reply(text)
    assert got.value == {"graph": ["bfs"], "url": "http://example.com/a//b"}
    assert got.repairs == ("comments",)


def test_comments_and_trailing_comma_in_order():
    got = parse_json_reply('{"a": [1, 2, // two\n], }')
    assert got.value == {"a": [1, 2]}
    assert got.repairs == ("comments", "trailing_comma")


def test_trailing_comma_inside_a_string_is_left_alone():
    got = parse_json_reply('{"s": "a,}", "t": [1,],}')
    assert got.value == {"s": "a,}", "t": [1]}
    assert got.repairs == ("trailing_comma",)


def test_control_chars_in_strings():
    got = parse_json_reply('{"statement": "Line one\nLine two\twith a tab"}')
    assert got.value == {"statement": "Line one\nLine two\twith a tab"}
    assert got.repairs == ("control_chars",)


def test_python_literal_dict():
    got = parse_json_reply("{'graph': ['bfs', 'dfs'], 'weighted': True, 'note': None, 'k': 2.5}")
    assert got.value == {"graph": ["bfs", "dfs"], "weighted": True, "note": None, "k": 2.5}
    assert got.repairs == ("python_literal",)


def test_python_literal_with_apostrophe_in_prose():
    got = parse_json_reply("Here's what I found: {'name': \"it's fine\"} - done")
    assert got.value == {"name": "it's fine"}
    assert got.repairs == ("surrounding_text", "python_literal")


@pytest.mark.parametrize("text", [
    "{'a': (1, 2)}",      # a tuple is not JSON
    "{'a': {1, 2}}",      # nor a set
    "{1: 'a'}",           # nor a non-string key
])
def test_python_literal_only_when_plain(text):
    assert code(parse_json_reply(text)) == "invalid"


# --- code is never the answer (issue #16: small models answer with a program)


@pytest.mark.parametrize("line, expect", [
    ("tree = {}", dict),        # was taken as the answer {}
    ("people = []", dict),      # was "wrong_type: got list"
    ("print(data[i])", dict),   # was "invalid: Expecting value"
    ("tree = {}", list),
])
def test_json_looking_lines_in_a_code_block_are_not_the_answer(line, expect):
    text = f"Here is how I would build it:\n```python\n{line}\nfor x in xs:\n    pass\n```\n"
    got = parse_json_reply(text, expect=expect)
    assert got.value is None
    assert got.error.startswith("no_json: ") and "code blocks (python)" in got.error


def test_the_object_in_prose_after_a_code_block_is_found():
    text = ('First a sketch:\n```python\ntree = {}\npeople = []\nprint(data[i])\n```\n'
            f'And the answer:\n{FEATURES}\n')
    got = parse_json_reply(text)
    assert got.value == VALUE and got.repairs == ("surrounding_text",)


def test_a_cpp_block_before_a_json_fence_changes_nothing():
    text = f'```cpp\nint a[3] = {{1, 2, 3}};\n```\n```json\n{FEATURES}\n```'
    assert parse_json_reply(text).value == VALUE


def test_an_unclosed_code_block_hides_what_follows_it():
    got = parse_json_reply('Plan:\n```python\nd = {"a": 1}\n')
    assert code(got) == "no_json"


def test_inline_code_in_prose_is_an_example_not_the_answer():
    got = parse_json_reply(f"Categories that do not apply get `{{}}` or `[]`.\n{FEATURES}")
    assert got.value == VALUE


def test_backticks_inside_a_json_string_are_kept():
    text = 'Done: {"statement": "print `x` then ``y``", "title": "T"}'
    assert parse_json_reply(text).value == {"statement": "print `x` then ``y``", "title": "T"}


# --- failures


@pytest.mark.parametrize("text", [
    '{"title": "Two arrays", "statement": "Given n integers a_1, ..., a_',   # mid-string
    '{"features": ["bfs", "dfs", ',                                          # mid-array
    '{"a": 1,',                                                              # after a comma
    '```json\n{"a": {"b": [1, 2]}, "c": {',                                  # open fence
    'Here you go:\n{"a": {"b": 1}',                                          # prose, then cut
])
def test_truncated_is_not_repaired(text):
    got = parse_json_reply(text)
    assert not got.ok and got.value is None
    assert code(got) == "truncated"


def test_truncated_inside_think():
    got = parse_json_reply('<think>\nI will output {"a": 1} after checking')
    assert code(got) == "truncated"


@pytest.mark.parametrize("text,got_name", [
    ('["bfs", "dfs"]', "list"),
    ('"just a string"', "string"),
    ("42", "number"),
    ("```json\n[1, 2]\n```", "list"),
])
def test_wrong_type(text, got_name):
    got = parse_json_reply(text)
    assert got.error == f"wrong_type: got {got_name}, expected object"


def test_wrong_type_for_list():
    assert parse_json_reply('{"a": [1]}', expect=list).error == \
        "wrong_type: got object, expected list"


def test_no_json():
    got = parse_json_reply("I'm sorry, I can't produce features for this problem.")
    assert code(got) == "no_json"


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty(text):
    assert parse_json_reply(text).error == "empty"


def test_invalid_has_json_position():
    got = parse_json_reply('{"a" 1, "b": 2}')
    assert got.error is not None
    assert got.error.startswith("invalid: Expecting ':' delimiter: line 1 column 6")
    assert len(got.error) <= len("invalid: ") + 120


def test_error_detail_is_short():
    text = "{" + ", ".join(f'"k{i}" {i}' for i in range(200)) + "}"
    got = parse_json_reply(text)
    assert code(got) == "invalid"
    assert len(got.error.split(": ", 1)[1]) <= 120


def test_reason_codes():
    assert REASON_CODES == ("empty", "no_json", "truncated", "wrong_type", "invalid")
    assert reason_code("truncated: cut off inside a string") == "truncated"
    assert reason_code("empty") == "empty"


def test_expect_must_be_dict_or_list():
    with pytest.raises(ValueError):
        parse_json_reply("{}", expect=str)
