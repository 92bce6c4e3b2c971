"""Cluster profiles: where stages run, stored in the user's config dir without secrets.

A profile says how to reach a cluster and how to run the engine there::

    from remote.profiles import ClusterProfile, ProfileStore, runner_for
    store = ProfileStore()                      # ~/.config/synthsmith/clusters.yaml
    store.add(ClusterProfile(name="h200", host="login.h200.example", user="me",
                             jump=["bastion.example"], workdir="~/synthsmith",
                             activate="source ~/venvs/ss/bin/activate", scheduler="slurm",
                             slurm={"partition": "gpu", "account": "llm"}, gpu_type="H200"))
    runner = runner_for(store.get("h200"))      # an SSHRunner (or LocalRunner)

``host`` may be an alias from ``~/.ssh/config``: its HostName, User, Port, IdentityFile and
ProxyJump apply, and fields set here win. The built-in profile ``This computer`` (the
placement every preset starts with) runs everything here, through the same runner and
scheduler code, without SSH; it uses this process's own Python, so the engine's packages are
there.

No secrets: there is no password field (keys and the SSH agent only), the file is written
with mode 0600 anyway, and a value that looks like a token (``env`` entries, say) is refused
with a message saying to keep it in the cluster's own environment instead. Where the file
lives: ``$SYNTHSMITH_CONFIG_DIR``, else ``$XDG_CONFIG_HOME/synthsmith``, else
``~/.config/synthsmith``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.schema import PLACEMENT_PATTERN, _looks_like_secret
from remote.runner import CommandRunner, LocalRunner

LOCAL = "This computer"
CONFIG_ENV = "SYNTHSMITH_CONFIG_DIR"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_NO_NEWLINE = r"^[^\n\r]*$"


class ProfileError(ValueError):
    """A profile that cannot be used, with what to change."""


class SlurmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partition: Annotated[str, Field(pattern=_NO_NEWLINE, max_length=128)] | None = Field(
        None, description="Partition (sbatch --partition); empty takes the cluster's default.")
    account: Annotated[str, Field(pattern=_NO_NEWLINE, max_length=128)] | None = Field(
        None, description="Account to charge (sbatch --account).")
    qos: Annotated[str, Field(pattern=_NO_NEWLINE, max_length=128)] | None = Field(
        None, description="Quality of service (sbatch --qos).")
    default_time: Annotated[str, Field(pattern=_NO_NEWLINE, max_length=32)] | None = Field(
        None, description="Time limit for stages that leave theirs at the default.")
    extra: list[Annotated[str, Field(pattern=r"^--[A-Za-z][A-Za-z0-9-]*(=[^\n\r]*)?$")]] = Field(
        default_factory=list, description="Further sbatch options, e.g. --constraint=h200.")


class ClusterProfile(BaseModel):
    """One cluster (or "This computer")."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=PLACEMENT_PATTERN, max_length=64,
                      description="What stage placements refer to, e.g. \"h200\".")
    host: str | None = Field(None, pattern=r"^[^\s'\"`$;|&<>]+$", max_length=255,
                             description="Host name or ~/.ssh/config alias; none for local.")
    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = Field(None, pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]*$", max_length=64)
    identity_file: str | None = Field(None, pattern=_NO_NEWLINE, max_length=4096,
                                      description="Private key file; else the agent and "
                                      "~/.ssh/config's IdentityFile.")
    use_agent: bool = True
    jump: list[Annotated[str, Field(pattern=r"^[^\s'\"`$;|&<>]+$", max_length=255)]] = Field(
        default_factory=list, description="Jump hosts, outermost first (ProxyJump).")
    workdir: str = Field("~/synthsmith", pattern=_NO_NEWLINE, max_length=4096,
                         description="Where the engine bundles and runs live on the cluster.")
    python: str = Field("python3", pattern=_NO_NEWLINE, max_length=4096,
                        description="The Python that runs the engine there.")
    activate: str | None = Field(None, pattern=_NO_NEWLINE, max_length=4096,
                                 description="Shell line run first, e.g. `source "
                                 "~/venv/bin/activate` or `module load python/3.11`.")
    scheduler: Literal["direct", "slurm"] = "direct"
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    gpu_type: str | None = Field(None, pattern=_NO_NEWLINE, max_length=32,
                                 description="A label for people: H20, H200, A100, ...")
    env: dict[Annotated[str, Field(pattern=_ENV_NAME)], str] = Field(
        default_factory=dict, description="Plain settings for every command (e.g. "
        "SLURM_CONF); never secrets.")

    @field_validator("env")
    @classmethod
    def _no_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            # A path (/..., ~/..., ./...) is a setting even when long and mixed-case.
            is_path = text.startswith(("/", "~/", "./", "../"))
            if "\n" in text or (_looks_like_secret(text) and not is_path):
                raise ValueError(
                    f"env {key} looks like a secret (or holds a newline): profiles are stored "
                    "in plain text, so keep tokens in the cluster's own environment (e.g. "
                    "~/.bashrc there) instead")
        return value

    @property
    def is_local(self) -> bool:
        return self.host is None

    def describe(self) -> str:
        if self.is_local:
            return f"{self.name}: this computer, {self.scheduler}"
        via = f" via {' -> '.join(self.jump)}" if self.jump else ""
        who = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        gpu = f", {self.gpu_type}" if self.gpu_type else ""
        return f"{self.name}: {who}{self.host}{port}{via}, {self.scheduler}{gpu}"


def local_profile() -> ClusterProfile:
    home = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return ClusterProfile(name=LOCAL, workdir=str(Path(home) / "synthsmith"),
                          python=sys.executable)


def config_dir() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.expanduser("~/.config")
    return Path(base) / "synthsmith"


class ProfileStore:
    """``clusters.yaml`` in the config dir: profiles by name, "This computer" built in."""

    def __init__(self, directory: str | os.PathLike[str] | None = None) -> None:
        self.dir = Path(directory) if directory is not None else config_dir()
        self.path = self.dir / "clusters.yaml"

    def _read(self) -> dict[str, ClusterProfile]:
        if not self.path.exists():
            return {}
        try:
            raw = yaml.safe_load(self.path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as e:
            raise ProfileError(f"{self.path} is not valid YAML ({e}); fix or delete it") from None
        out: dict[str, ClusterProfile] = {}
        for entry in raw.get("clusters", []):
            try:
                p = ClusterProfile.model_validate(entry)
            except ValidationError as e:
                name = entry.get("name", "?") if isinstance(entry, dict) else "?"
                raise ProfileError(f"{self.path}: profile {name!r} is invalid: "
                                   f"{_first_error(e)}; edit the file or remove the profile "
                                   "with `synthsmith cluster remove`") from None
            out[p.name] = p
        return out

    def _write(self, profiles: dict[str, ClusterProfile]) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        data = {"clusters": [p.model_dump(exclude_defaults=True) | {"name": p.name}
                             for p in profiles.values()]}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.safe_dump(data, f, sort_keys=False, allow_unicode=True)
        os.replace(tmp, self.path)

    def list(self) -> list[ClusterProfile]:
        return [local_profile(), *self._read().values()]

    def names(self) -> list[str]:
        return [p.name for p in self.list()]

    def get(self, name: str) -> ClusterProfile:
        if name == LOCAL:
            return local_profile()
        profiles = self._read()
        if name not in profiles:
            known = ", ".join(repr(n) for n in self.names())
            raise ProfileError(f"no cluster profile {name!r} (known: {known}); add it with "
                               "`synthsmith cluster add`")
        return profiles[name]

    def add(self, profile: ClusterProfile, *, replace: bool = False) -> None:
        if profile.name == LOCAL:
            raise ProfileError(f"{LOCAL!r} is built in; give your profile another name")
        profiles = self._read()
        if profile.name in profiles and not replace:
            raise ProfileError(f"a profile {profile.name!r} exists already; pass --replace "
                               "to overwrite it")
        profiles[profile.name] = profile
        self._write(profiles)

    def remove(self, name: str) -> None:
        profiles = self._read()
        if name not in profiles:
            raise ProfileError(f"no cluster profile {name!r} to remove")
        del profiles[name]
        self._write(profiles)


def _first_error(e: ValidationError) -> str:
    err = e.errors()[0]
    where = ".".join(str(p) for p in err["loc"])
    return f"{where}: {err['msg']}"


def runner_for(profile: ClusterProfile, **ssh_options: Any) -> CommandRunner:
    """The runner of a profile: ``LocalRunner`` for "This computer", else ``SSHRunner``.
    ``ssh_options`` (``ssh_config``, ``known_hosts``, ...) go to ``SSHRunner``."""
    if profile.is_local:
        return LocalRunner(profile.name)
    from remote.ssh import SSHRunner

    return SSHRunner(profile.host, port=profile.port, user=profile.user,
                     identity_file=profile.identity_file, jump=profile.jump or None,
                     name=profile.name, use_agent=profile.use_agent, **ssh_options)
