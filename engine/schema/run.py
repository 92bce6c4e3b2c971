"""The run section (name, seed, metric sinks) and the resources a stage asks its scheduler for.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    Field,
    field_validator,
)

from engine.schema.common import Name, Seed, StrictModel
from engine.schema.constants import TIME_LIMIT_PATTERN
from engine.schema.endpoints import looks_like_secret
from engine.schema.problems import rule_error

# --- Run and resources


class WandbSettings(StrictModel):
    """Weights & Biases: off unless enabled; the API key is never part of the config."""

    enabled: bool = Field(
        False, title="W&B",
        description="Also send each stage's metrics to Weights & Biases, from rank 0 (needs "
        "the wandb package where the stage runs; engine/metrics_export.py). The API key is "
        "read from the WANDB_API_KEY environment variable of the job, never from this config.",
    )
    project: Name = Field(
        "synthsmith", title="W&B project",
        description="Project the runs are logged to; each stage is one W&B run, grouped by "
        "run id.",
    )
    entity: Name | None = Field(
        None, title="W&B entity",
        description="Team or user that owns the project; empty: the API key's default.",
    )
    mode: Literal["offline", "online"] = Field(
        "offline", title="W&B mode",
        description="offline writes <run-dir>/wandb/ with no network (upload it later with "
        "`wandb sync <run-dir>/wandb/offline-run-*`); online sends as it goes (needs network "
        "and WANDB_API_KEY on the compute nodes).",
    )

    @field_validator("project", "entity", mode="before")
    @classmethod
    def _not_a_key(cls, value: Any) -> Any:
        if isinstance(value, str) and looks_like_secret(value):
            raise rule_error([(
                "",
                "looks like an API key, not a W&B name (the value is not shown)",
                "remove the key from the config (and rotate it if the file was shared); "
                "export WANDB_API_KEY on the machine that runs the stage instead",
            )])
        return value


class MetricsSection(StrictModel):
    """Where each stage's metrics go besides the run's event files."""

    tensorboard: bool = Field(
        True, title="TensorBoard",
        description="Write TensorBoard files into <run-dir>/tensorboard/<stage>.<rank>/ as "
        "metrics arrive (needs tensorboardX where the stage runs; without it one warning and "
        "the run goes on). `python -m engine export-metrics RUN --tensorboard DIR` writes "
        "them from the event files at any time.",
    )
    wandb: WandbSettings = Field(
        default_factory=WandbSettings, title="Weights & Biases",
        description="Weights & Biases logging: off unless enabled.",
    )


class RunSection(StrictModel):
    """What the run is called and the seed every random choice derives from."""

    name: Name = Field(
        "synthsmith", title="Run name",
        description="Short name of the run, used in run ids, job names and exports.",
    )
    seed: Seed = Field(
        42, title="Seed",
        description="Base random seed; each stage and item derives its own seed from it, "
        "so reruns sample the same configs, tests and splits.",
    )
    metrics: MetricsSection = Field(
        default_factory=MetricsSection, title="Metrics export",
        description="Where stages also send their metrics: TensorBoard files (on by default) "
        "and Weights & Biases (off by default). A failing export never stops a stage.",
    )


class Resources(StrictModel):
    """What a stage asks the scheduler for (ignored where it runs on "This computer")."""

    nodes: int = Field(1, ge=1, le=1024, title="Nodes", description="Machines for the stage.")
    gpus_per_node: int = Field(
        0, ge=0, le=16, title="GPUs per node", description="GPUs on each node; 0 for CPU work.",
    )
    cpus_per_task: int = Field(
        4, ge=1, le=1024, title="CPUs per node",
        description="CPU cores on each node (the sandbox and data loaders use them).",
    )
    mem_gb: int = Field(
        0, ge=0, le=4096, title="Memory",
        description="Memory per node in GB; 0 takes the scheduler's default.",
    )
    time_limit: str = Field(
        "24:00:00", pattern=TIME_LIMIT_PATTERN, max_length=16, title="Time limit",
        description="Wall-clock limit per job as minutes, HH:MM:SS or D-HH:MM:SS; a stage "
        "stopped at the limit saves its work and resumes when requeued.",
    )

    @property
    def world_size(self) -> int:
        """Training processes: one per GPU, or one per node without GPUs."""
        return self.nodes * max(self.gpus_per_node, 1)


def resources_field(**defaults: Any) -> Any:
    return Field(
        default_factory=lambda: Resources(**defaults), title="Resources",
        description="Nodes, GPUs, CPUs, memory and time the stage asks its cluster for.",
    )


