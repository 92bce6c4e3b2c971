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
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.contracts.config import PLACEMENT_PATTERN, looks_like_secret
from remote.runner import CommandRunner, LocalRunner

LOCAL = "This computer"
CONFIG_ENV = "SYNTHSMITH_CONFIG_DIR"
_ENV_NAME = r"^[A-Za-z_][A-Za-z0-9_]*$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# Host names and ssh_config aliases: no whitespace, quotes or shell characters (and, checked
# apart, no leading "-", which ssh would read as an option, and no control characters).
_HOST_BAD = re.compile(r"[\s'\"`$;|&<>\\]")
# Slurm's own characters: a name (partition, account, qos, reservation...), or a
# comma-separated list of them (partitions and qos may be lists).
SLURM_NAME = r"^[A-Za-z0-9_.-]+$"
SLURM_NAME_LIST = r"^[A-Za-z0-9_.-]+(,[A-Za-z0-9_.-]+)*$"
# sbatch --time: minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS, or no limit.
SLURM_TIME = r"^(?:(?:\d+-)?\d+(?::\d+){0,2}|UNLIMITED|INFINITE|unlimited|infinite)$"
# Run ids name a folder here and on every cluster: plain names, never a path.
RUN_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"

# Values of sbatch options given in ``slurm.extra``, by option: what Slurm itself allows.
_SLURM_OPTION_VALUES = {
    "partition": (SLURM_NAME_LIST, "letters, digits and _ . - (a list: comma-separated)"),
    "account": (SLURM_NAME, "letters, digits and _ . -"),
    "qos": (SLURM_NAME_LIST, "letters, digits and _ . - (a list: comma-separated)"),
    "reservation": (SLURM_NAME_LIST, "letters, digits and _ . - (a list: comma-separated)"),
    "wckey": (SLURM_NAME, "letters, digits and _ . -"),
    "clusters": (SLURM_NAME_LIST, "letters, digits and _ . - (a list: comma-separated)"),
    "constraint": (r"^[A-Za-z0-9_.,:&|*\[\]()!-]+$",
                   "letters, digits, _ . - , : and the operators & | * [ ] ( ) !"),
    "cluster-constraint": (r"^[A-Za-z0-9_.,:&|*\[\]()!-]+$",
                           "letters, digits, _ . - , : and the operators & | * [ ] ( ) !"),
    "licenses": (r"^[A-Za-z0-9_.,:@-]+$", "letters, digits and _ . - , : @"),
    "gres": (r"^[A-Za-z0-9_.,:-]+$", "letters, digits and _ . - , :"),
    "nodelist": (r"^[A-Za-z0-9_.,\[\]-]+$", "letters, digits, _ . - , and [ ] ranges"),
    "exclude": (r"^[A-Za-z0-9_.,\[\]-]+$", "letters, digits, _ . - , and [ ] ranges"),
    "time": (SLURM_TIME, "minutes, HH:MM:SS or D-HH:MM:SS"),
    "time-min": (SLURM_TIME, "minutes, HH:MM:SS or D-HH:MM:SS"),
}
_SLURM_SHORT = {"p": "partition", "A": "account", "q": "qos", "C": "constraint",
                "L": "licenses", "M": "clusters", "w": "nodelist", "x": "exclude", "t": "time"}

# Name parts that make an env variable a secret's (PASSWORD, DB_PASSWORD, WANDB_API_KEY,
# HF_TOKEN, AWS_SECRET_ACCESS_KEY, ...). Parts are split at "_" and digits; the long words
# count anywhere in a part (DBPASSWORD), the short ones only as a whole part (so
# TOKENIZERS_PARALLELISM and KEYBOARD are settings).
_SECRET_WORDS = ("PASSWORD", "PASSWD", "PASSPHRASE", "SECRET", "CREDENTIAL", "APIKEY",
                 "PRIVATE", "ACCESSKEY")
_SECRET_PARTS = frozenset({"PASS", "PWD", "PW", "TOKEN", "TOKENS", "KEY", "KEYS", "AUTH",
                           "CREDS", "COOKIE", "SESSION", "SIGNATURE", "BEARER", "OAUTH",
                           "JWT", "PAT", "SALT", "CERT", "PEM"})
# ...unless a part says the value is where one is, not the secret itself (SSH_KEY_FILE).
_LOCATION_PARTS = frozenset({"FILE", "PATH", "DIR", "CONF", "CONFIG", "HOME", "FILES"})


def env_name_looks_secret(name: str) -> bool:
    """Whether an environment variable's name says it holds a secret (``DB_PASSWORD``,
    ``WANDB_API_KEY``, ``HF_TOKEN``) rather than a setting or a location (``SSH_KEY_FILE``,
    ``TOKENIZERS_PARALLELISM``)."""
    parts = [p for p in re.split(r"[_0-9]+", name.upper()) if p]
    if any(p in _LOCATION_PARTS for p in parts) or name.upper() == "PWD":
        return False
    return any(p in _SECRET_PARTS or any(w in p for w in _SECRET_WORDS) for p in parts)


def check_run_id(value: str, *, field: str = "run id") -> str:
    """``value`` if it is a plain run id (``[A-Za-z0-9][A-Za-z0-9._-]{0,127}``, no ``..``),
    else a ``ProfileError`` naming ``field`` and the fix. Run ids name a folder in the local
    runs folder and under each cluster's workdir: never a path."""
    if (not isinstance(value, str) or not re.match(RUN_ID_PATTERN, value)
            or ".." in value or value.endswith("\n")):
        from remote.display_text import visible

        raise ProfileError(
            f"{field} {visible(repr(value))} is not a plain run id: use letters, digits and "
            "_ . - only (up to 128, starting with a letter or digit, no '..', no '/'), e.g. "
            "`synthsmith runs` lists the ids of your runs")
    return value


def check_sbatch_option(line: str) -> str:
    """One ``slurm.extra`` item: ``--name=value`` (or ``--name``), one line, no control
    characters; the values of options naming Slurm things (``--constraint``,
    ``--reservation``, ``--partition``, ...) in Slurm's own characters."""
    if _CONTROL.search(line):
        raise ValueError(f"{line!r} holds a control character or line break; write one "
                         "option per item, on one line")
    m = re.match(r"^--([A-Za-z][A-Za-z0-9-]*)(?:=(.*))?$", line) or re.match(
        r"^-([A-Za-z])(?:=?(.+))?$", line)
    if not m:
        raise ValueError(f"{line!r} is not an sbatch option; write it as --name=value "
                         "(e.g. --constraint=h200)")
    name, value = m.group(1), m.group(2)
    name = _SLURM_SHORT.get(name, name) if len(name) == 1 else name
    if name in _SLURM_OPTION_VALUES and value is not None:
        pattern, allowed = _SLURM_OPTION_VALUES[name]
        if not re.match(pattern, value):
            raise ValueError(f"--{name}={value!r}: Slurm allows {allowed} here; check the "
                             "value")
    return line


class ProfileError(ValueError):
    """A profile that cannot be used, with what to change."""


def _field_problem(kind: str, value: str) -> str | None:
    """What is wrong with a one-line field of this kind (None: nothing)."""
    if _CONTROL.search(value.replace("\t", " ") if kind == "activate" else value):
        return "holds a control character or line break; write it on one line, as plain text"
    if kind in ("host", "workdir", "python", "identity_file") and value.startswith("-"):
        fix = {"host": "give the host name or ~/.ssh/config alias itself",
               "workdir": "write it as ./-name, or as an absolute or ~/ path",
               "python": "give the interpreter's path",
               "identity_file": "write it as ./-name or as an absolute path"}[kind]
        return f"starts with '-', which a command would read as an option; {fix}"
    if kind == "host" and _HOST_BAD.search(value):
        return ("holds spaces, quotes or shell characters; give a host name, address or "
                "~/.ssh/config alias")
    if not value.strip() and kind != "activate":
        return "is empty; give a value or leave the field out"
    return None


class SlurmSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    partition: str | None = Field(
        None, max_length=128, description="Partition (sbatch --partition); empty takes the "
        "cluster's default. Letters, digits, _ . - (several: comma-separated).")
    account: str | None = Field(None, max_length=128,
                                description="Account to charge (sbatch --account).")
    qos: str | None = Field(None, max_length=128,
                            description="Quality of service (sbatch --qos).")
    default_time: str | None = Field(
        None, max_length=32, description="Time limit for stages that leave theirs at the "
        "default (minutes, HH:MM:SS or D-HH:MM:SS).")
    extra: list[Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=list, description="Further sbatch options, e.g. --constraint=h200.")

    @field_validator("partition", "account", "qos", "default_time", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return None if value == "" else value  # "empty takes the cluster's default"

    @field_validator("partition", "account", "qos", "default_time")
    @classmethod
    def _slurm_characters(cls, value: str | None, info: Any) -> str | None:
        if value is None:
            return value
        pattern, allowed = _SLURM_OPTION_VALUES[
            "time" if info.field_name == "default_time" else info.field_name]
        if not re.match(pattern, value):
            raise ValueError(f"{value!r} is not a Slurm {info.field_name.replace('_', ' ')}: "
                             f"Slurm allows {allowed} here; check the value")
        return value

    @field_validator("extra")
    @classmethod
    def _sbatch_options(cls, value: list[str]) -> list[str]:
        for i, line in enumerate(value):
            try:
                check_sbatch_option(line)
            except ValueError as e:
                raise ValueError(f"extra[{i}] {e}") from None
        return value


class ClusterProfile(BaseModel):
    """One cluster (or "This computer")."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=PLACEMENT_PATTERN, max_length=64,
                      description="What stage placements refer to, e.g. \"h200\".")
    host: str | None = Field(None, max_length=255,
                             description="Host name or ~/.ssh/config alias; none for local.")
    port: int | None = Field(None, ge=1, le=65535)
    user: str | None = Field(None, pattern=r"^[A-Za-z0-9._][A-Za-z0-9._-]*$", max_length=64)
    identity_file: str | None = Field(None, max_length=4096,
                                      description="Private key file; else the agent and "
                                      "~/.ssh/config's IdentityFile.")
    use_agent: bool = True
    jump: list[Annotated[str, Field(max_length=255)]] = Field(
        default_factory=list, description="Jump hosts, outermost first (ProxyJump).")
    workdir: str = Field("~/synthsmith", max_length=4096,
                         description="Where the engine bundles and runs live on the cluster.")
    python: str = Field("python3", max_length=4096,
                        description="The Python that runs the engine there.")
    activate: str | None = Field(None, max_length=4096,
                                 description="Shell line run first, e.g. `source "
                                 "~/venv/bin/activate` or `module load python/3.11`.")
    scheduler: Literal["direct", "slurm"] = "direct"
    slurm: SlurmSettings = Field(default_factory=SlurmSettings)
    gpu_type: str | None = Field(None, max_length=32,
                                 description="A label for people: H20, H200, A100, ...")
    env: dict[Annotated[str, Field(pattern=_ENV_NAME)], str] = Field(
        default_factory=dict, description="Plain settings for every command (e.g. "
        "SLURM_CONF); never secrets.")

    @field_validator("host", "identity_file", "workdir", "python", "activate", "gpu_type")
    @classmethod
    def _one_line_fields(cls, value: str | None, info: Any) -> str | None:
        if value is not None:
            problem = _field_problem(info.field_name, value)
            if problem:
                raise ValueError(f"{_shown(value)} {problem}")
        return value

    @field_validator("jump")
    @classmethod
    def _jump_hosts(cls, value: list[str]) -> list[str]:
        for i, host in enumerate(value):
            problem = _field_problem("host", host)
            if problem:
                raise ValueError(f"jump host {i + 1} {_shown(host)} {problem}")
        return value

    @field_validator("env")
    @classmethod
    def _no_secrets(cls, value: dict[str, str]) -> dict[str, str]:
        for key, text in value.items():
            if env_name_looks_secret(key) and text:
                raise ValueError(
                    f"env {key} looks like a secret by its name (the value is not shown): "
                    "profiles are stored "
                    "in plain text and env values show on the cluster's command lines, so "
                    f"keep {key} in the cluster's own environment (e.g. ~/.bashrc there) "
                    "instead; a variable that names a file holding it can end in _FILE")
            # A path (/..., ~/..., ./...) is a setting even when long and mixed-case.
            is_path = text.startswith(("/", "~/", "./", "../"))
            if _CONTROL.search(text) or (looks_like_secret(text) and not is_path):
                raise ValueError(
                    f"env {key} looks like a secret (or holds a newline or control "
                    "character): profiles are stored in plain text, so keep tokens in the "
                    "cluster's own environment (e.g. ~/.bashrc there) instead")
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


def _shown(value: str) -> str:
    from remote.display_text import visible

    return visible(repr(value))


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
