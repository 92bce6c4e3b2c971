"""remote/profiles.py: cluster profiles in the user's config dir, without secrets.

Run: .venv/bin/python -m pytest tests/remote/test_profiles.py -q
"""

from __future__ import annotations

import stat
import sys

import pytest
from pydantic import ValidationError

from remote.profiles import LOCAL, ClusterProfile, ProfileError, ProfileStore, runner_for
from remote.runner import LocalRunner


def h200(**kw) -> ClusterProfile:
    return ClusterProfile(**{"name": "h200", "host": "login.h200.example", "user": "me",
                             "jump": ["bastion.example"], "scheduler": "slurm",
                             "slurm": {"partition": "gpu", "account": "llm"},
                             "gpu_type": "H200", "activate": "source ~/venv/bin/activate",
                             **kw})


def test_profiles_round_trip_in_a_private_file(tmp_path):
    store = ProfileStore(tmp_path / "cfg")
    store.add(h200())
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    again = ProfileStore(tmp_path / "cfg")
    assert again.get("h200") == h200()
    assert again.names() == [LOCAL, "h200"]
    with pytest.raises(ProfileError, match="exists already; pass --replace"):
        again.add(h200())
    again.add(h200(gpu_type="H20"), replace=True)
    assert again.get("h200").gpu_type == "H20"
    again.remove("h200")
    assert again.names() == [LOCAL]
    with pytest.raises(ProfileError, match=r"no cluster profile 'h200' \(known: 'This computer'\)"):
        again.get("h200")


def test_this_computer_is_built_in_runs_locally_with_this_python(tmp_path):
    store = ProfileStore(tmp_path)
    local = store.get(LOCAL)
    assert local.is_local and local.python == sys.executable and local.scheduler == "direct"
    assert isinstance(runner_for(local), LocalRunner)
    with pytest.raises(ProfileError, match="built in"):
        store.add(ClusterProfile(name=LOCAL))


@pytest.mark.parametrize("field, value", [
    ("env", {"HF_TOKEN": "hf_abcdefghijklmnopqrstuvwxyz0123"}),
    ("env", {"KEY": "sk-live-1234567890abcdef"}),
    ("host", "evil; rm -rf ~"),
    ("jump", ["a b"]),
    ("activate", "source x\nrm -rf ~"),
    ("slurm", {"partition": "gpu\n#SBATCH --wrap=evil"}),
    ("slurm", {"extra": ["not-an-option"]}),
    ("password", "hunter2"),
])
def test_secrets_and_injections_are_refused(field, value):
    with pytest.raises(ValidationError) as info:
        h200(**{field: value})
    assert info.value.errors()


def test_a_broken_file_is_reported_with_the_way_out(tmp_path):
    store = ProfileStore(tmp_path)
    store.path.write_text("clusters:\n  - name: x\n    host: [oops\n")
    with pytest.raises(ProfileError, match="not valid YAML"):
        store.list()
    store.path.write_text("clusters:\n  - name: x\n    hots: typo\n")
    with pytest.raises(ProfileError, match=r"profile 'x' is invalid: hots"):
        store.list()


def test_the_config_dir_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SYNTHSMITH_CONFIG_DIR", str(tmp_path / "here"))
    assert ProfileStore().path == tmp_path / "here" / "clusters.yaml"
    monkeypatch.delenv("SYNTHSMITH_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert ProfileStore().path == tmp_path / "xdg" / "synthsmith" / "clusters.yaml"


def test_describe_says_how_a_cluster_is_reached():
    assert h200().describe() == "h200: me@login.h200.example via bastion.example, slurm, H200"
