"""The one quoting point, end to end: hostile words go through ``remote.quoting`` to a real
shell on both runners ("This computer" and a real sshd) and must arrive byte-exact as argv,
cwd and environment values, with no injected command ever running (marker files)."""

from __future__ import annotations

import os

import pytest

from remote.quoting import absolute_path, command_line, for_login_shell, quote, quote_path
from remote.runner import LocalRunner
from remote.ssh import SSHRunner


def hostile(markers: os.PathLike[str] | str) -> list[str]:
    m = os.fspath(markers)
    return [
        "with space", "it's", 'say "hi"', "$HOME", "${HOME}", f"$(touch {m}/dollar)",
        f"`touch {m}/backtick`", f";touch {m}/semicolon", f"&& touch {m}/and", f"| touch {m}/pipe",
        "; rm -rf ~/not-there", "line\nbreak", "tab\there", "Überlauf—試験", "-rf", "--help",
        "-", "*", "~", "~/x", "a\\b", "!!", "#comment", "", " ", "'", '"', "\\",
    ]


@pytest.fixture(params=["local", "ssh"])
def any_runner(request):
    if request.param == "local":
        yield LocalRunner()
        return
    ssh_env = request.getfixturevalue("ssh_env")
    r = SSHRunner("target", ssh_config=ssh_env.ssh_config, use_agent=False)
    yield r
    r.close()


@pytest.fixture
def markers(tmp_path):
    d = tmp_path / "markers"
    d.mkdir()
    yield d
    assert sorted(os.listdir(d)) == [], "an injected command ran"


def test_argv_arrives_byte_exact(any_runner, markers):
    words = hostile(markers)
    res = any_runner.run(["printf", r"%s\0", *words]).check()
    assert res.stdout.split("\0")[:-1] == words
    script = "import sys; sys.stdout.write(repr(sys.argv[1:]))"
    res = any_runner.run(["python3", "-c", script, *words]).check()
    assert res.stdout == repr(words)


def test_cwd_arrives_byte_exact(any_runner, markers, tmp_path):
    for word in hostile(markers):
        if "/" in word or word in ("", ".", "..", "-", "~") or word.strip() == "":
            continue  # not a single folder name
        folder = tmp_path / "cwd" / word
        folder.mkdir(parents=True, exist_ok=True)
        res = any_runner.run(
            ["python3", "-c", "import os, sys; sys.stdout.buffer.write(os.getcwdb())"],
            cwd=folder).check()
        assert res.stdout == str(folder), word


def test_env_values_arrive_byte_exact(any_runner, markers):
    words = hostile(markers)
    env = {f"V{i}": w for i, w in enumerate(words)}
    script = "import os, sys; sys.stdout.write(repr([os.environ[f'V{i}'] for i in range(%d)]))"
    res = any_runner.run(["python3", "-c", script % len(words)], env=env).check()
    assert res.stdout == repr(words)


def test_quote_path_expands_the_home(any_runner):
    res = any_runner.run_shell(f"printf '%s' {quote_path('~/a b')} {quote_path('~')}").check()
    assert res.stdout == any_runner.home() + "/a b" + any_runner.home()
    # Only a leading ~/ is left to the shell: the rest is quoted.
    res = any_runner.run_shell(f"printf '%s' {quote_path('~/$HOME')}").check()
    assert res.stdout == any_runner.home() + "/$HOME"


def test_nul_byte_is_refused_before_anything_runs(any_runner, markers):
    for call in (lambda: any_runner.run(["touch", f"{markers}/nul", "a\0b"]),
                 lambda: any_runner.run(["touch", f"{markers}/nul"], cwd="a\0b"),
                 lambda: any_runner.run(["touch", f"{markers}/nul"], env={"X": "a\0b"})):
        with pytest.raises(ValueError, match="NUL"):
            call()


def test_bad_env_name_is_refused():
    with pytest.raises(ValueError, match="identifier"):
        command_line(["true"], env={"A;touch x": "1"})
    assert quote("") == "''"


def test_relative_cwd_starting_with_dash(tmp_path):
    (tmp_path / "-dash").mkdir()
    res = LocalRunner().run_shell(f"cd {quote(tmp_path)} && "
                                  + command_line(["pwd"], cwd="-dash"))
    assert res.ok and res.stdout.strip().endswith("/-dash")


# --- a login shell that is not POSIX sh (fish, csh): commands carried to /bin/sh -------------


TRICKY = ("printf '%s|' 'a\\\\b' \"it's\" '!x' \"$((1+2))\" 'tab\tend'; echo; "
          "x='multi\nline'; echo \"$x\"; exit 3")


@pytest.mark.parametrize("shell", ["/bin/sh", "/bin/bash", "/usr/bin/fish", "/usr/bin/tcsh"])
def test_a_command_means_the_same_under_any_login_shell(shell):
    import subprocess

    if not os.path.exists(shell):
        pytest.skip(f"needs {shell}")
    want = subprocess.run(["/bin/sh", "-c", TRICKY], capture_output=True, text=True)
    wire = for_login_shell(TRICKY, shell)
    assert (wire == TRICKY) == (os.path.basename(shell) in ("sh", "bash"))
    got = subprocess.run([shell, "-c", wire], capture_output=True, text=True)
    assert (got.stdout, got.returncode) == (want.stdout, want.returncode) == (
        "a\\\\b|it's|!x|3|tab\tend|\nmulti\nline\n", 3), got.stderr


# --- ~ is made absolute in one place -----------------------------------------------------------


@pytest.mark.parametrize(("path", "want"), [
    ("~", "/home/u"), ("~/", "/home/u"), ("~/synthsmith/", "/home/u/synthsmith"),
    ("runs/r1", "/home/u/runs/r1"), ("/scratch//me/./x", "/scratch/me/x"),
    ("~user/x", "/home/u/~user/x"), ("~/a b/$x", "/home/u/a b/$x"),
])
def test_absolute_path_puts_home_where_a_shell_would(path, want):
    assert absolute_path("/home/u/", path) == want


def test_a_workdir_with_tilde_reaches_the_launch_paths_absolute():
    from remote.launch import Launcher
    from remote.profiles import ClusterProfile

    profile = ClusterProfile(name="c", host="h", workdir="~/work dir")
    paths = Launcher._paths(None, profile, "r1", "abc", home="/home/u")  # type: ignore[arg-type]
    assert paths == {"run_dir": "/home/u/work dir/runs/r1", "bundle": "/home/u/work dir/engine/abc",
                     "config": "/home/u/work dir/runs/r1/launch/config.yaml"}
    assert Launcher._paths(None, profile, "r1", "abc")["run_dir"] == "~/work dir/runs/r1"  # type: ignore[arg-type]
