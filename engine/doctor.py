"""Facts about the host the engine runs on: ``python -m engine doctor [--work-dir DIR]``.

Prints one JSON object: Python, CPUs, memory, free disk of the work dir, torch / CUDA / GPUs
(``nvidia-smi`` when present), versions of the training and rollout libraries, sandbox tools
(bubblewrap, g++), Slurm (``sinfo``) and its partitions, and per stage what is missing here.

It needs only the standard library: package versions come from installed metadata (importing
vllm or deepspeed just to ask would take seconds). torch is imported only when installed, to
ask about CUDA. Leaves out: benchmarking the GPUs or the network.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

PACKAGES = ("pydantic", "PyYAML", "pyarrow", "aiohttp", "datasketch", "torch", "transformers",
            "accelerate", "deepspeed", "trl", "datasets", "vllm", "flash-attn", "tokenizers",
            "tensorboardX", "wandb")

# What each stage needs on the host that runs it (distribution names), whatever its LLM
# endpoint; an endpoint's own backend adds ENDPOINT_NEEDS (the desktop checks those against
# the config: remote/doctor.py).
_BASE = ("pydantic", "PyYAML")
STAGE_NEEDS: dict[str, tuple[str, ...]] = {
    "seeds": (*_BASE, "pyarrow"),
    "features": _BASE, "evolve": _BASE, "tasks": _BASE, "solutions": _BASE,
    "tests": _BASE, "verify": _BASE,
    "curate": (*_BASE, "pyarrow", "datasketch"),
    "sft": (*_BASE, "torch", "transformers", "accelerate", "deepspeed"),
    "rl": (*_BASE, "torch", "transformers", "accelerate", "trl", "datasets", "vllm"),
    "eval": (*_BASE, "vllm"),
}
ENDPOINT_NEEDS: dict[str, tuple[str, ...]] = {
    "openai": ("aiohttp",), "vllm": ("vllm",), "transformers": ("torch", "transformers"),
}
# Tools a stage runs (the sandbox): checked with shutil.which.
STAGE_TOOLS: dict[str, tuple[str, ...]] = {"tests": ("bwrap",), "verify": ("bwrap",)}


# What follows "pip install" for a missing distribution, where its name alone is not enough.
INSTALL_HINT: dict[str, str] = {
    "torch": "torch; on a machine without CUDA pick its CPU build",
    "vllm": "vllm; CUDA GPU machines only",
    "flash-attn": "flash-attn --no-build-isolation",
}


def stage_needs(config: Any) -> dict[str, dict[str, Any]]:
    """What each enabled stage of ``config`` (a ``PipelineConfig``) needs on the host that runs
    it: ``{stage: {"packages": [...], "tools": [...], "gpus": n}}``. Unlike ``STAGE_NEEDS``
    (every option at once) it follows the config: DeepSpeed only for ``sft.zero_stage > 0``,
    vLLM only for a vLLM rollout / eval engine / endpoint, g++ only when candidates are C++,
    wandb only when ``run.metrics.wandb.enabled``,
    an endpoint's backend for the stages that use it."""
    from engine.schema import STAGE_ORDER

    out: dict[str, dict[str, Any]] = {}
    for stage in STAGE_ORDER:
        section = getattr(config, stage)
        if not section.enabled:
            continue
        packages = list(_BASE)
        tools: list[str] = []
        llm = getattr(section, "llm", None)
        if llm and llm in config.llms:
            packages += ENDPOINT_NEEDS.get(config.llms[llm].backend, ())
        if stage == "seeds":
            packages.append("pyarrow")
        elif stage in ("tests", "verify"):
            tools.append("bwrap")
            if "cpp" in config.solutions.languages:
                tools.append("g++")
        elif stage == "curate":
            packages += ["pyarrow", "datasketch"]
        elif stage == "sft":
            packages += ["torch", "transformers", "accelerate"]
            if section.zero_stage > 0:
                packages.append("deepspeed")
        elif stage == "rl":
            packages += ["torch", "transformers", "accelerate", "trl", "datasets"]
            if section.rollout.startswith("vllm"):
                packages.append("vllm")
            tools.append("bwrap")  # rewards run the rollouts' code in the sandbox
        elif stage == "eval":
            packages += ["vllm"] if section.engine == "vllm" else ["torch", "transformers"]
            tools.append("bwrap")
        if config.run.metrics.wandb.enabled:  # every stage logs to W&B once it is on
            packages.append("wandb")
        out[stage] = {"packages": list(dict.fromkeys(packages)), "tools": tools,
                      "gpus": section.resources.gpus_per_node}
    return out


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _run(argv: list[str], timeout: float = 10) -> str | None:
    if shutil.which(argv[0]) is None:
        return None
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout if out.returncode == 0 else None


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 2)
    except OSError:
        return None
    return None


def _gpus_from_nvidia_smi() -> list[dict[str, Any]] | None:
    out = _run(["nvidia-smi", "--query-gpu=index,name,memory.total,driver_version",
                "--format=csv,noheader,nounits"])
    if out is None:
        return None
    gpus = []
    for line in out.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) == 4:
            gpus.append({"index": int(parts[0]), "name": parts[1],
                         "memory_mib": int(float(parts[2])), "driver": parts[3]})
    return gpus


def _torch_facts() -> dict[str, Any] | None:
    if _version("torch") is None:
        return None
    try:
        import torch  # lazy: only on hosts that have it
    except Exception as e:  # a broken install is a fact worth reporting, not a crash
        return {"import_error": f"{type(e).__name__}: {e}"}
    facts: dict[str, Any] = {"version": torch.__version__, "cuda": torch.version.cuda,
                             "cuda_available": bool(torch.cuda.is_available())}
    if facts["cuda_available"]:
        facts["devices"] = [torch.cuda.get_device_name(i)
                            for i in range(torch.cuda.device_count())]
    return facts


def _slurm_facts() -> dict[str, Any]:
    # Delimited fields only: partition|availability|time limit|nodes|gres.
    out = _run(["sinfo", "-h", "-o", "%P|%a|%l|%D|%G"])
    if out is None:
        return {"present": shutil.which("sinfo") is not None, "partitions": []}
    parts = []
    for line in out.strip().splitlines():
        f = line.split("|")
        if len(f) == 5:
            parts.append({"name": f[0].rstrip("*"), "default": f[0].endswith("*"),
                          "available": f[1], "time_limit": f[2], "nodes": f[3], "gres": f[4]})
    return {"present": True, "partitions": parts}


def collect(work_dir: str | os.PathLike[str] = ".", config: Any = None) -> dict[str, Any]:
    """The facts; ``config`` (a PipelineConfig): ``stages`` lists its enabled stages with
    what each needs as configured (``stage_needs``), else every stage with every option's."""
    work = Path(work_dir)
    probe = work if work.exists() else Path.cwd()
    disk = shutil.disk_usage(probe)
    versions = {name: _version(name) for name in PACKAGES}
    if config is None:
        needs = {stage: {"packages": list(pkgs), "tools": list(STAGE_TOOLS.get(stage, ()))}
                 for stage, pkgs in STAGE_NEEDS.items()}
    else:
        needs = stage_needs(config)
    stages = {}
    for stage, need in needs.items():
        # A dict.get default would look every package up again, present or not.
        missing = [n for n in need["packages"]
                   if (versions[n] if n in versions else _version(n)) is None]
        missing += [t for t in need["tools"] if shutil.which(t) is None]
        stages[stage] = {"ok": not missing, "missing": missing}
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": {"version": platform.python_version(), "executable": sys.executable},
        "cpus": len(os.sched_getaffinity(0)),
        "memory_gb": _memory_gb(),
        "work_dir": {"path": str(work.resolve()), "exists": work.exists(),
                     "free_gb": round(disk.free / 1024**3, 2),
                     "total_gb": round(disk.total / 1024**3, 2)},
        "gpus": _gpus_from_nvidia_smi(),
        "torch": _torch_facts(),
        "packages": versions,
        "tools": {"bwrap": shutil.which("bwrap") is not None,
                  "g++": shutil.which("g++") is not None,
                  "nvidia-smi": shutil.which("nvidia-smi") is not None},
        "slurm": _slurm_facts(),
        "stages": stages,
    }
