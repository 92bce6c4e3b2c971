"""Check a cluster before anything is launched there: ``python -m engine doctor``, run remotely.

    facts = remote_doctor(runner, profile, bundle_dir)       # the engine's JSON facts
    problems = stage_problems(facts, config, ["sft", "rl"], cluster="h200")
    # {"rl": ["rl needs vllm on h200 (endpoint 'solver' uses backend vllm)"], ...}

The engine reports what each stage needs on its host (engine/doctor.py: packages, the
sandbox); this adds what the config asks for on top (an LLM endpoint's backend: vLLM,
transformers, aiohttp) and the facts that stop a run before it starts (less than
``MIN_FREE_GB`` free in the work dir). The command runs in the uploaded engine bundle with the
profile's activation line, so it tests exactly the Python a stage will get. Errors say what
to fix: a missing interpreter, an engine that does not import (missing pydantic, say).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from engine.contracts.config import ENDPOINT_NEEDS, INSTALL_HINT, stage_needs
from remote.errors import RemoteSetupError
from remote.profiles import ClusterProfile
from remote.quoting import command_line
from remote.runner import CommandRunner, run_framed

MIN_FREE_GB = 2.0
DOCTOR_MAX_BYTES = 4 * 1024 * 1024  # the facts are a few KB; a cap against a chatty host


def remote_doctor(runner: CommandRunner, profile: ClusterProfile, bundle_dir: str,
                  timeout: float = 120.0) -> dict[str, Any]:
    """The engine's doctor facts from the cluster (raises RemoteSetupError with the fix)."""
    work = profile.workdir
    command = command_line([profile.python, "-m", "engine", "doctor", "--work-dir", work],
                           cwd=bundle_dir, prefix=profile.activate)
    # Framed: a login banner or motd on stdout is not part of the facts.
    result = run_framed(runner, command, timeout=timeout, max_bytes=DOCTOR_MAX_BYTES,
                        what="`python -m engine doctor`")
    where = profile.name
    if result.returncode == 127 or "command not found" in result.stderr \
            or "No such file or directory" in result.stderr and profile.python in result.stderr:
        raise RemoteSetupError(
            f"{where}: the Python `{profile.python}` was not found ({result.stderr.strip()[-200:]}); "
            "set the profile's python (e.g. --python /opt/conda/bin/python3) or its activate "
            "line (e.g. --activate 'source ~/venv/bin/activate')")
    if result.returncode != 0:
        tail = result.stderr.strip()[-600:]
        hint = ""
        if "ModuleNotFoundError" in tail:
            mod = tail.rsplit("No module named", 1)[-1].strip(" '\"\n")
            hint = (f"; install it there: {profile.python} -m pip install {mod} (the engine "
                    "needs pydantic and PyYAML at least)")
        raise RemoteSetupError(f"{where}: `python -m engine doctor` failed (exit "
                               f"{result.returncode}): {tail}{hint}")
    facts = _parse_facts(result.stdout)
    if facts is None:
        raise RemoteSetupError(f"{where}: engine doctor printed no JSON facts: "
                               f"{result.stdout.strip()[:300]!r}")
    return facts


def _parse_facts(text: str) -> dict[str, Any] | None:
    """The doctor's JSON object (``indent=2``, many lines): the last object that starts a
    line, parses to the end of the text and has the facts' shape. Anything printed before
    it (the activate line's own output) is skipped."""
    decoder = json.JSONDecoder()
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    for pos in reversed(starts):
        if not text.startswith("{", pos):
            continue
        try:
            value, end = decoder.raw_decode(text, pos)
        except ValueError:
            continue
        if text[end:].strip() or not _facts_shape(value):
            continue
        return value
    return None


def _facts_shape(value: Any) -> bool:
    if not isinstance(value, dict):
        return False
    py, work = value.get("python"), value.get("work_dir")
    stages = value.get("stages", {})
    return (isinstance(py, dict) and {"version", "executable"} <= py.keys()
            and isinstance(work, dict) and {"free_gb", "path"} <= work.keys()
            and isinstance(stages, dict)
            and all(isinstance(v, dict) and isinstance(v.get("missing"), list)
                    for v in stages.values())
            and isinstance(value.get("packages", {}), dict))


def stage_problems(facts: dict[str, Any], config: Any, stages: Sequence[str],
                   cluster: str, *, gpus_here: bool = False) -> dict[str, list[str]]:
    """What would stop each of ``stages`` on this cluster, in words with the fix ({} when
    nothing). With a ``config``, what the stage needs *as configured* (engine.doctor.
    stage_needs: DeepSpeed only for ZeRO, vLLM only for a vLLM rollout or endpoint, ...);
    without one, the engine's own every-option view. ``gpus_here``: the stages run on this
    host (the direct scheduler), so a stage that asks for GPUs needs them in the facts."""
    packages = facts.get("packages", {})
    tools = facts.get("tools", {})
    out: dict[str, list[str]] = {}
    if config is None:
        for stage in stages:
            missing = facts.get("stages", {}).get(stage, {}).get("missing", [])
            if missing:
                out[stage] = [f"{stage} needs {m} on {cluster}" for m in missing]
    else:
        needs = stage_needs(config)
        for stage in stages:
            need = needs.get(stage)
            if need is None:  # not enabled
                continue
            problems = [f"{stage} needs {dist} on {cluster}{_why(config, stage, dist)}: "
                        f"install it in the Python stages run with there (pip install "
                        f"{INSTALL_HINT.get(dist, dist)})"
                        for dist in need["packages"] if packages.get(dist) is None]
            problems += [f"{stage} needs {tool} on {cluster}: {TOOL_HINT.get(tool, tool)}"
                         for tool in need["tools"] if not tools.get(tool, True)]
            if gpus_here and need["gpus"] and not facts.get("gpus"):
                problems.append(f"{stage} asks for {need['gpus']} GPU(s) per node but {cluster} "
                                f"has none (nvidia-smi found no GPU): place {stage} on a GPU "
                                f"cluster, or set {stage}.resources.gpus_per_node: 0 where the "
                                "stage can run on CPUs")
            if problems:
                out[stage] = problems
    free = facts.get("work_dir", {}).get("free_gb")
    if free is not None and free < MIN_FREE_GB:
        out.setdefault("*", []).append(
            f"{cluster}: only {free:.1f} GB free in {facts['work_dir']['path']}; free some "
            f"space or point the profile's workdir at a bigger file system")
    return out


TOOL_HINT = {"bwrap": "the code sandbox needs bubblewrap (apt-get install bubblewrap)",
             "g++": "C++ candidates need a compiler (apt-get install g++), or drop cpp from "
                    "solutions.languages"}


def _why(config: Any, stage: str, dist: str) -> str:
    llm = getattr(getattr(config, stage), "llm", None)
    if llm and llm in config.llms and dist in ENDPOINT_NEEDS.get(config.llms[llm].backend, ()):
        return f" (endpoint {llm!r} uses backend {config.llms[llm].backend})"
    return ""


def summary_lines(facts: dict[str, Any]) -> list[str]:
    """The facts a person reads first, one per line."""
    gpus = facts.get("gpus") or []
    torch = facts.get("torch") or {}
    slurm = facts.get("slurm") or {}
    pkgs = facts.get("packages", {})
    lines = [
        f"host {facts.get('host')} ({facts.get('platform')})",
        f"python {facts['python']['version']} at {facts['python']['executable']}",
        f"cpus {facts.get('cpus')}, memory {facts.get('memory_gb')} GB, "
        f"free disk {facts['work_dir']['free_gb']} GB in {facts['work_dir']['path']}",
        "gpus " + (", ".join(g["name"] for g in gpus) if gpus else "none"),
        f"torch {torch.get('version') or 'missing'}, CUDA {torch.get('cuda') or 'none'}",
        "packages " + ", ".join(f"{k} {v}" for k, v in pkgs.items() if v),
        "missing " + (", ".join(k for k, v in pkgs.items() if not v) or "nothing"),
        "slurm " + (", ".join(p["name"] + ("*" if p["default"] else "")
                              for p in slurm.get("partitions", [])) or
                    ("present" if slurm.get("present") else "no")),
    ]
    return lines
