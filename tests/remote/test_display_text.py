"""remote/display_text.py, and the CLI printing what a cluster sends through it (issue 15,
item 2): terminal escapes, C1 controls and bidi overrides shown, never obeyed; --json exact.

Run: .venv/bin/python -m pytest tests/remote/test_display_text.py -q
"""

from __future__ import annotations

import contextlib
import json
from types import SimpleNamespace

import pytest

from gui import cli
from remote import cli as remote_cli
from remote.display_text import is_unsafe, visible, visible_json

ESC = "\x1b"
HOSTILE = (f"{ESC}]0;pwned\x07{ESC}[2J{ESC}[31mred{ESC}[0m \x9b31m C1 "
           "\u202eevil\u202c \u2066iso\u2069 \u200e\u200f\u061c zw\u200b bom\ufeff "
           "ls\u2028ps\u2029 tag\U000e0041 del\x7f nul\x00 bell\x07 cr\r bs\x08 lone\udcff")


def assert_clean(text: str, *, newlines: bool = False) -> None:
    bad = [c for c in text if is_unsafe(c) and not (newlines and c in "\n\t")]
    assert not bad, [hex(ord(c)) for c in bad]


def test_visible_escapes_controls_c1_bidi_and_format_characters():
    out = visible(HOSTILE)
    assert_clean(out)
    for shown in (r"\x1b]0;pwned\x07", r"\x1b[2J", r"\x1b[31mred\x1b[0m", r"\x9b31m",
                  r"\u202eevil\u202c", r"\u2066iso\u2069", r"\u200e\u200f\u061c",
                  r"zw\u200b", r"bom\ufeff", r"ls\u2028ps\u2029", r"tag\U000e0041",
                  r"del\x7f", r"nul\x00", r"cr\x0d", r"bs\x08", r"lone\udcff"):
        assert shown in out
    out.encode("utf-8")  # lone surrogates would have made print() raise


def test_visible_keeps_ordinary_text_and_line_structure_when_asked():
    plain = "héllo wörld 日本語 emoji 👩\u200d💻 ZWNJ می\u200cخواهم back\\slash"
    assert visible(plain) == plain
    assert visible("a\tb\nc") == r"a\x09b\x0ac"
    assert visible("a\tb\r\nc\rd", keep_newlines=True) == "a\tb\nc\\x0dd"
    assert visible(42) == "42"


def test_visible_json_is_exact_and_safe():
    value = {"msg": HOSTILE, "n": 1, "ok": "日本 👩\u200d💻", "astral": "\U000e0041"}
    line = visible_json(value)
    assert_clean(line)
    assert "\n" not in line and "日本" in line
    assert json.loads(line) == value
    pretty = visible_json(value, indent=2)
    assert_clean(pretty, newlines=True)
    assert json.loads(pretty) == value


# ---------------------------------------------------------------------------------------------
# The CLI, against a fake launcher whose "cluster" answers with hostile text


class FakeTail:
    items: object = None

    def __init__(self, runner, run_dir, cache):
        pass

    def history(self):
        return type(self).items

    def poll(self):
        return {} if isinstance(type(self).items, dict) else []

    def drain(self, deliver, timeout_s=None):
        return True  # nothing new on this fake cluster


@pytest.fixture
def hostile_cluster(monkeypatch, tmp_path):
    monkeypatch.setenv("SYNTHSMITH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SYNTHSMITH_DATA_DIR", str(tmp_path / "data"))
    seg = SimpleNamespace(cluster="lab", stages=["seeds"], status="failed",
                          reason=f"{ESC}]0;title\x07 oom \u202ekcatta", jobs=[])
    record = SimpleNamespace(run_id="r1", status="failed", segments=[seg],
                             clusters={"lab": {"run_dir": "/x/runs/r1"}},
                             to_json=lambda: json.dumps({"run_id": "r1", "why": seg.reason}))
    state = {"stages": {f"seeds{ESC}[2J": {"status": "failed",
                                            "reason": f"{ESC}[31mboom\x9b2J\u202e"}}}
    launcher = SimpleNamespace(
        refresh=lambda run: record, remote_state=lambda run: state,
        runner=lambda name: None, fetch=lambda run, what, to: [to / f"out{ESC}[2J.jsonl"],
        registry=SimpleNamespace(tail_cache=lambda run, name: tmp_path / "cache"))

    @contextlib.contextmanager
    def fake_launcher(args):
        yield launcher

    monkeypatch.setattr(remote_cli, "_launcher", fake_launcher)
    import remote.stream as stream

    monkeypatch.setattr(stream, "LogTail", type("LogTail", (FakeTail,), {}))
    monkeypatch.setattr(stream, "EventTail", type("EventTail", (FakeTail,), {}))
    return SimpleNamespace(state=state, record=record, stream=stream)


def test_tail_logs_shows_escapes_in_log_text_and_file_names(hostile_cluster, capsys):
    hostile_cluster.stream.LogTail.items = {
        f"seeds{ESC}]0;t\x07.log": f"line one {ESC}[2J\tcol\nline two \x9b31m \u202eabc\n"}
    assert cli.main(["tail", "r1", "--logs"]) == 0
    out = capsys.readouterr().out
    assert_clean(out, newlines=True)
    assert r"seeds\x1b]0;t\x07.log: line one \x1b[2J" + "\tcol" in out
    assert r"line two \x9b31m \u202eabc" in out


def test_tail_event_lines_stay_exact_json_without_raw_controls(hostile_cluster, capsys):
    payload = {"msg": HOSTILE}
    hostile_cluster.stream.EventTail.items = [SimpleNamespace(
        t=1.0, stage="seeds\u202e", rank=0, kind="log", seq=1, data=payload)]
    assert cli.main(["tail", "r1", "--json"]) == 0
    out = capsys.readouterr().out
    assert_clean(out, newlines=True)
    event = json.loads(out.strip())
    assert event["data"] == payload and event["stage"] == "seeds\u202e"


def test_tail_readable_lines_show_hostile_text_as_escapes(hostile_cluster, capsys):
    hostile_cluster.stream.EventTail.items = [SimpleNamespace(
        t=1.0, stage="seeds\u202e", rank=0, kind="log", seq=1,
        data={"level": "error", "message": HOSTILE + "\nsecond line"})]
    assert cli.main(["tail", "r1"]) == 0
    out = capsys.readouterr().out
    assert_clean(out, newlines=True)
    assert out.count("\n") == 1  # one event, one line: its newline shows as \x0a
    assert r"seeds\u202e" in out and r"error: \x1b]0;pwned\x07\x1b[2J" in out
    assert r"\x0asecond line" in out


def test_status_shows_reasons_made_visible_and_json_stays_exact(hostile_cluster, capsys):
    assert cli.main(["status", "r1"]) == 0
    out = capsys.readouterr().out
    assert_clean(out, newlines=True)
    assert r"(\x1b]0;title\x07 oom \u202ekcatta)" in out
    assert r"seeds\x1b[2J: failed - \x1b[31mboom\x9b2J\u202e" in out
    assert cli.main(["status", "r1", "--json"]) == 0
    out = capsys.readouterr().out
    assert_clean(out, newlines=True)
    assert json.loads(out)["state"] == hostile_cluster.state


def test_fetch_prints_file_names_made_visible(hostile_cluster, capsys, tmp_path):
    assert cli.main(["fetch", "r1", "--to", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert_clean(out, newlines=True)
    assert r"out\x1b[2J.jsonl" in out


def test_errors_quoting_the_cluster_are_made_visible(hostile_cluster, monkeypatch, capsys):
    from remote.errors import RemoteError

    def boom(run):
        raise RemoteError(f"stat failed: {ESC}]0;pwned\x07\u202e")

    monkeypatch.setattr(remote_cli, "_launcher", lambda args: contextlib.nullcontext(
        SimpleNamespace(cancel=boom)))
    assert cli.main(["cancel", "r1"]) == 1
    err = capsys.readouterr().err
    assert_clean(err, newlines=True)
    assert r"\x1b]0;pwned\x07\u202e" in err
