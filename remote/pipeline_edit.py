"""The pipeline config as the desktop edits it: read, validated, previewed and launched, no Qt.

    loaded = load_pipeline(path)                 # the file (the smoke preset when None)
    data = editable_data(text)                   # plain data over the schema defaults, for forms
    result = validate(data, profile_names)       # the schema's problems + unknown placements
    text = config_text(data, result.config)      # what Save writes
    plan = plan_launch(session, folder, name, text)

The Pipeline panel (gui/panels/pipeline.py) shows this: it keeps the editable data, calls
``validate`` on each edit (CPU only, well under a millisecond) and runs the slow functions
(files, profiles, the launcher) in its worker. ``load_pipeline`` is the one place the app reads
a config at startup; a file that does not load is not an error here: ``problems`` lists why,
and the window opens on them.

Left out: undo history (the panel keeps only the current data).
"""

from __future__ import annotations

import copy
import difflib
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from engine.contracts.config import (
    STAGE_ORDER,
    ConfigError,
    ConfigProblem,
    PipelineConfig,
    config_from_dict,
    dump_config,
    load_config,
    migrate,
    nested_model,
    read_yaml,
)
from engine.contracts.rundir import ASSETS_DIR
from remote.launch import Launcher
from remote.profiles import ClusterProfile, ProfileStore
from remote.run_registry import RunRecord, RunRegistry
from remote.session import AppSession

PRESETS_DIR = ASSETS_DIR / "presets"
SMOKE_PRESET = PRESETS_DIR / "smoke-cpu.yaml"  # what the app opens first

# ---------------------------------------------------------------------------------------------
# Slow work (files, profiles, the launcher): the panel runs these in its worker


def read_text(path: str | os.PathLike[str]) -> str:
    return Path(path).read_text(encoding="utf-8")


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write atomically (tmp + rename): a crash never leaves half a config behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def list_presets(directory: str | os.PathLike[str]) -> list[Path]:
    return sorted(Path(directory).glob("*.yaml"))


def list_profiles(store: ProfileStore) -> list[ClusterProfile]:
    return store.list()


def diff_against_last_launch(registry: RunRegistry, text: str) -> str:
    """A unified diff from the newest launched run's config to ``text``, or what stands in."""
    records = registry.list()
    if not records:
        return "No run has been launched from this computer yet: nothing to compare with."
    last = records[-1]
    lines = list(difflib.unified_diff(
        last.config_text.splitlines(keepends=True), text.splitlines(keepends=True),
        fromfile=f"run {last.run_id} (launched)", tofile="this config"))
    if not lines:
        return f"No changes since run {last.run_id} was launched."
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def preview_config(session: AppSession, config: PipelineConfig) -> str:
    """``Launcher.preview`` of the config shown: the commands and scripts, nothing sent."""
    return session.call(Launcher.preview, config)


@dataclass(frozen=True)
class LaunchPlan:
    config: PipelineConfig  # the object the launch goes on with
    config_path: Path  # the copy written for the record (what was launched, as YAML)
    clusters: list[str]  # in the order the run reaches them


def plan_launch(session: AppSession, folder: Path, config: PipelineConfig) -> LaunchPlan:
    """Keep a copy of the config to be launched (the run's record names it) and plan it."""
    name = f"{config.run.name}-{time.strftime('%Y%m%d-%H%M%S')}.yaml"
    path = write_text(folder / name, dump_config(config))
    segments = session.call(Launcher.plan, config)
    return LaunchPlan(config, path, list(dict.fromkeys(s.cluster for s in segments)))


def launch_config(session: AppSession, plan: LaunchPlan) -> RunRecord:
    return session.call(Launcher.launch, plan.config, source=str(plan.config_path))


# ---------------------------------------------------------------------------------------------
# The config as editable plain data (CPU only: fine on the GUI thread)


@dataclass(frozen=True)
class Validation:
    config: PipelineConfig | None  # None while there is any problem
    problems: list[ConfigProblem]


def editable_data(text: str, source: str = "<text>") -> dict:
    """The config in ``text`` as plain data for the forms: its values over the schema defaults
    (so every field has something to show), keys the schema does not know kept for it to
    report. ConfigError when the text is no YAML mapping or is from a newer schema version."""
    raw = read_yaml(text, source)
    if not isinstance(raw, dict):
        raise ConfigError([ConfigProblem(
            "<config>", "the top level is not a mapping of sections",
            "write the config as `section: {key: value}` mappings (start from a preset)")],
            source)
    return _over(PipelineConfig().model_dump(mode="json"), migrate(raw), PipelineConfig)


def _over(default: dict, raw: dict, model: type) -> dict:
    # Sections and nested models merge key by key; a list or mapping replaces its default
    # whole, as the schema reads a file.
    out = copy.deepcopy(default)
    for key, value in raw.items():
        info = model.model_fields.get(key)
        sub = nested_model(info.annotation) if info is not None else None
        if sub is not None and isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _over(out[key], value, sub)
        else:
            out[key] = copy.deepcopy(value)
    return out


def validate(data: dict, profile_names: list[str] | None) -> Validation:
    """Every problem of ``data``: the schema's, and placements naming no known profile."""
    try:
        config: PipelineConfig | None = config_from_dict(data)
        problems: list[ConfigProblem] = []
    except ConfigError as exc:
        config, problems = None, list(exc.problems)
    if profile_names is not None:
        problems += placement_problems(data, profile_names)
    return Validation(config if not problems else None, problems)


def placement_problems(data: dict, profile_names: list[str]) -> list[ConfigProblem]:
    out = []
    for stage in STAGE_ORDER:
        section = data.get(stage)
        if not isinstance(section, dict) or section.get("enabled") is not True:
            continue  # a disabled stage is not launched, so it may name any cluster
        where = section.get("placement")
        if isinstance(where, str) and where not in profile_names:
            out.append(ConfigProblem(
                f"{stage}.placement",
                f"names '{where}', which is no cluster profile on this computer (known: "
                f"{', '.join(profile_names)})",
                "pick a profile from the list, or add this one in the Clusters panel"))
    return out


def drop_unknown_keys(data: dict, model: type = PipelineConfig, prefix: str = "") -> list[str]:
    """Remove (in place) keys the schema does not know; their dotted paths."""
    removed = []
    for key in list(data):
        info = model.model_fields.get(key)
        if info is None:
            del data[key]
            removed.append(f"{prefix}{key}")
            continue
        sub = nested_model(info.annotation)
        if sub is not None and isinstance(data[key], dict):
            removed += drop_unknown_keys(data[key], sub, f"{prefix}{key}.")
    return removed


def entry_of(key: str) -> str:
    """The graph entry a problem key belongs to: its stage, "llms", or "run" for the rest."""
    head = key.split(".")[0]
    return head if head in STAGE_ORDER or head == "llms" else "run"


def placement_label(profile: ClusterProfile) -> str:
    """e.g. "This computer (local · CPU)", "h200 (slurm · H200)", "box (direct)"."""
    where = "local" if profile.is_local else profile.scheduler
    gpu = profile.gpu_type or ("CPU" if profile.is_local else "")
    return f"{profile.name} ({where} · {gpu})" if gpu else f"{profile.name} ({where})"


def config_text(data: dict, config: PipelineConfig | None) -> str:
    """YAML of the config: the resolved dump when valid, else the data as it stands."""
    if config is not None:
        return dump_config(config)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=None,
                          width=100)


# ---------------------------------------------------------------------------------------------
# Reading a config at startup


@dataclass(frozen=True)
class LoadedPipeline:
    """Result of reading a config file: either ``config`` or a non-empty ``problems``."""

    source: Path
    config: PipelineConfig | None = None
    problems: tuple[ConfigProblem, ...] = ()


def load_pipeline(path: Path | str | None = None, overrides: Sequence[str] = ()) -> LoadedPipeline:
    """Read and validate a pipeline config; the smoke preset when ``path`` is None.

    A missing or unreadable file comes back as problems too (``load_config`` reports it so).
    """
    source = Path(path) if path is not None else SMOKE_PRESET
    try:
        return LoadedPipeline(source, config=load_config(source, overrides))
    except ConfigError as exc:
        return LoadedPipeline(source, problems=tuple(exc.problems))
