"""Every user-given field that reaches a remote command or a file name is validated where it
is entered: the profile model (remote/profiles.py) and the CLI's arguments (issue 15, item 5).

Run: .venv/bin/python -m pytest tests/remote/test_field_validation.py -q
"""

from __future__ import annotations

import pytest
import yaml
from pydantic import ValidationError

from engine.paths import ASSETS_DIR
from gui import cli
from remote.profiles import (
    ClusterProfile,
    ProfileError,
    ProfileStore,
    check_run_id,
    check_sbatch_option,
    env_name_looks_secret,
)

SMOKE = str(ASSETS_DIR / "presets" / "smoke-cpu.yaml")


def profile(**kw) -> ClusterProfile:
    return ClusterProfile(**{"name": "lab", "host": "login.example", "scheduler": "slurm", **kw})


@pytest.fixture
def desktop(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHSMITH_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("SYNTHSMITH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    return tmp_path


# ---------------------------------------------------------------------------------------------
# The profile model


@pytest.mark.parametrize("slurm, where", [
    ({"partition": "gpu;touch x"}, "partition"),
    ({"partition": "gpu debug"}, "partition"),
    ({"account": "llm$(id)"}, "account"),
    ({"account": "a,b"}, "account"),
    ({"qos": "normal|x"}, "qos"),
    ({"default_time": "1:00:00;reboot"}, "default_time"),
    ({"default_time": "one hour"}, "default_time"),
    ({"extra": ["--constraint=h200;touch x"]}, "extra"),
    ({"extra": ["--reservation=$(id)"]}, "extra"),
    ({"extra": ["-C", "h200"]}, "extra"),
    ({"extra": ["--comment=a\x1b[2J"]}, "extra"),
    ({"extra": ["--comment=a\nb"]}, "extra"),
    ({"extra": ["not-an-option"]}, "extra"),
])
def test_slurm_fields_take_slurms_own_characters(slurm, where):
    with pytest.raises(ValidationError) as e:
        profile(slurm=slurm)
    err = e.value.errors()[0]
    assert err["loc"][:2] == ("slurm", where)
    assert "Slurm allows" in err["msg"] or "option" in err["msg"] or "line" in err["msg"]


def test_ordinary_slurm_settings_still_pass():
    p = profile(slurm={"partition": "gpu,gpu-h200", "account": "llm_team.1", "qos": "high",
                       "default_time": "2-00:00:00",
                       "extra": ["--constraint=h200&ib|[a100*2]", "--reservation=maint_1",
                                 "--mail-type=END,FAIL", "--exclusive", "-Ch200",
                                 "--gres=gpu:h200:8", "--nodelist=node[01-04]"]})
    assert p.slurm.partition == "gpu,gpu-h200"
    assert profile(slurm={"partition": "", "default_time": "90"}).slurm.partition is None
    for t in ("90", "30:00", "12:00:00", "1-12", "1-12:30", "1-12:30:00", "UNLIMITED"):
        assert profile(slurm={"default_time": t}).slurm.default_time == t


@pytest.mark.parametrize("field, value, says", [
    ("host", "-oProxyCommand=touch /tmp/x", "starts with '-'"),
    ("host", "login\x1b[2J", "control character"),
    ("host", "login example", "spaces"),
    ("jump", ["bastion", "-J evil"], "jump host 2"),
    ("jump", ["-oProxyCommand=x"], "starts with '-'"),
    ("user", "-oProxyCommand=x", "pattern"),
    ("user", "me\tyou", "pattern"),
    ("workdir", "-rf", "starts with '-'"),
    ("workdir", "--help", "starts with '-'"),
    ("workdir", "~/ss\nrm -rf ~", "line break"),
    ("workdir", "~/ss\x00", "control character"),
    ("workdir", "", "empty"),
    ("python", "-c", "starts with '-'"),
    ("identity_file", "-i", "starts with '-'"),
    ("activate", "source x\rrm -rf ~", "control character"),
    ("gpu_type", "H200\x1b]0;x\x07", "control character"),
])
def test_hosts_users_workdirs_refuse_options_and_control_characters(field, value, says):
    with pytest.raises(ValidationError) as e:
        profile(**{field: value})
    err = e.value.errors()[0]
    assert err["loc"][0] == field and says in err["msg"]
    assert "\x1b" not in err["msg"] and "\n" not in err["msg"].replace("\\n", "")


def test_ordinary_hosts_and_workdirs_still_pass():
    p = profile(host="login-1.h200.example", user="me.x", jump=["bastion", "me@gw:2222"],
                workdir="./-odd/ss dir", activate="source ~/venv/bin/activate\t# ok",
                identity_file="~/.ssh/id_ed25519", python="/opt/py 3.11/bin/python")
    assert p.workdir == "./-odd/ss dir"


@pytest.mark.parametrize("name, value", [
    ("DB_PASSWORD", "hunter2"), ("PASSWORD", "x"), ("MYSQL_PWD", "pw"), ("DBPASSWD", "pw"),
    ("WANDB_API_KEY", "abc"), ("API_KEY", "abc"), ("OPENAI_APIKEY", "abc"), ("KEY", "k"),
    ("HF_TOKEN", "hf_x"), ("GITHUB_TOKEN", "t"), ("AWS_SECRET_ACCESS_KEY", "s"),
    ("CLIENT_SECRET", "s"), ("GOOGLE_CREDENTIALS", "{}"), ("PRIVATE_KEY", "k"),
    ("BASIC_AUTH", "me:pw"), ("SSH_PASSPHRASE", "p"), ("AUTH2", "x"),
])
def test_env_values_with_secret_names_are_refused_without_showing_them(name, value):
    assert env_name_looks_secret(name)
    with pytest.raises(ValidationError) as e:
        profile(env={name: value})
    msg = e.value.errors()[0]["msg"]
    assert "looks like a secret" in msg and name in msg and f"={value}" not in msg
    assert "cluster's own environment" in msg


@pytest.mark.parametrize("name, value", [
    ("SLURM_CONF", "/etc/slurm/slurm.conf"), ("TOKENIZERS_PARALLELISM", "false"),
    ("HF_HOME", "~/hf"), ("SSH_KEY_FILE", "~/.ssh/id"), ("KEYBOARD", "us"),
    ("CUDA_VISIBLE_DEVICES", "0,1"), ("MONKEY_PATCH", "1"), ("HF_TOKEN", ""),
    ("GOOGLE_APPLICATION_CREDENTIALS_FILE", "/x.json"), ("PWD", "/tmp"),
])
def test_plain_settings_are_kept(name, value):
    assert profile(env={name: value}).env == {name: value}


def test_env_values_with_control_characters_are_refused():
    with pytest.raises(ValidationError, match="control character"):
        profile(env={"MODE": "a\x1b[2J"})


def test_a_hand_edited_profile_file_is_checked_when_read(tmp_path):
    store = ProfileStore(tmp_path)
    store.dir.mkdir(parents=True, exist_ok=True)
    store.path.write_text(yaml.safe_dump({"clusters": [
        {"name": "lab", "host": "h", "scheduler": "slurm", "slurm": {"partition": "gpu;x"}}]}))
    with pytest.raises(ProfileError, match=r"'lab' is invalid: slurm.partition: .*Slurm"):
        store.get("lab")


@pytest.mark.parametrize("run_id", ["../../..", "..", "/etc", "//etc", "a/b", "a..b", "-rf",
                                    ".hidden", "", "x" * 129, "a b", "a\nb", "a\\b", "é",
                                    "ok\n"])
def test_run_ids_are_plain_names(run_id):
    with pytest.raises(ProfileError, match="not a plain run id"):
        check_run_id(run_id)


def test_ordinary_run_ids_pass():
    for run_id in ("cli-run", "smoke-20250101-120000", "A.b_c-1", "x" * 128):
        assert check_run_id(run_id) == run_id


def test_sbatch_option_check_names_the_fix():
    with pytest.raises(ValueError, match=r"--partition='a;b': Slurm allows letters"):
        check_sbatch_option("--partition=a;b")
    with pytest.raises(ValueError, match="--constraint="):
        check_sbatch_option("-Ca;b")


# ---------------------------------------------------------------------------------------------
# The CLI: clear messages naming the field, never a traceback


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    assert "Traceback" not in out.err + out.out
    return code, out.err


@pytest.mark.parametrize("argv, says", [
    (["--scheduler", "slurm", "--partition", "gpu;touch x"],
     "slurm.partition (--partition): 'gpu;touch x' is not a Slurm partition"),
    (["--scheduler", "slurm", "--account", "a b"], "slurm.account (--account)"),
    (["--scheduler", "slurm", "--qos", "q`id`"], "slurm.qos (--qos)"),
    (["--scheduler", "slurm", "--default-time", "1h"], "slurm.default_time (--default-time)"),
    (["--scheduler", "slurm", "--sbatch=--constraint=a;b"], "slurm.extra (--sbatch)"),
    (["--workdir=-rf"], "workdir (--workdir): '-rf' starts with '-'"),
    (["--jump=-oProxyCommand=x"], "jump (--jump): jump host 1"),
    (["--env", "DB_PASSWORD=hunter2"], "env (--env): env DB_PASSWORD looks like a secret"),
    (["--env", "1BAD=x"], "--env '1BAD': a variable name is letters, digits and _"),
])
def test_cluster_add_refuses_bad_fields_with_the_field_and_fix(desktop, capsys, argv, says):
    code, err = run_cli(capsys, "cluster", "add", "lab", "--host", "login.example", *argv)
    assert code == 1 and says in err
    assert "hunter2" not in err
    assert not (desktop / "config" / "clusters.yaml").exists()


def test_cluster_add_refuses_a_host_that_looks_like_an_option(desktop, capsys):
    code, err = run_cli(capsys, "cluster", "add", "lab", "--host=-oProxyCommand=touch /tmp/x")
    assert code == 1 and "host (--host)" in err and "starts with '-'" in err


@pytest.mark.parametrize("argv", [
    ["status", "../../.."], ["status", "/etc", "--json"], ["tail", "../x", "--logs"],
    ["cancel", "a/b"], ["resume", ".."], ["fetch", "//etc", "--to", "."],
    ["launch", SMOKE, "--run-id", "../../escape"], ["launch", SMOKE, "--run-id", "/abs"],
])
def test_run_ids_from_the_command_line_are_refused_as_bad_usage(desktop, capsys, argv):
    code, err = run_cli(capsys, *argv)
    assert code == 2 and "is not a plain run id" in err
    assert ("--run-id" if "--run-id" in argv else "RUN") in err
    assert not (desktop / "data").exists()  # nothing was created, locally or remotely


def test_launch_with_a_bad_hand_edited_profile_is_a_message(desktop, capsys):
    cfg = desktop / "config"
    cfg.mkdir()
    (cfg / "clusters.yaml").write_text(yaml.safe_dump({"clusters": [
        {"name": "gpu", "host": "gpu.invalid", "scheduler": "slurm",
         "slurm": {"partition": "gpu;touch x"}}]}))
    code, err = run_cli(capsys, "launch", SMOKE, "--stages", "seeds", "--cluster", "gpu",
                        "--preview")
    assert code == 1 and "profile 'gpu' is invalid: slurm.partition" in err
