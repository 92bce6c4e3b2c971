"""Stage ``rl``: GRPO on the RL set with sandboxed test rewards (SYNTHSMITH.md §8).

Run it alone (after ``curate`` and ``sft``)::

    python -m engine run --config assets/presets/smoke-cpu.yaml --run-dir /tmp/run1 --stages rl

What: the policy (``rl.model``: ``sft`` = ``<run>/checkpoints/sft/final``, a folder or Hugging
Face id, or ``tiny-random``) answers each RL task ``group_size`` times per step; each answer's
code is judged on sampled tests in the sandbox (``engine/train/reward.py``); advantages are
group-relative; the final policy is saved to ``<run>/checkpoints/rl/final`` (HF format) with an
``artifact`` event.

How: TRL's ``GRPOTrainer`` (1.16), configured from ``rl``:
- group_size -> ``num_generations``; a step = ``prompts_per_step`` prompts x group_size
  responses (``steps_per_generation`` micro-batches); ``mini_batch_size`` prompts (verl's
  convention) per optimizer update -> ``gradient_accumulation_steps``; ``micro_batch_size`` ->
  ``per_device_train_batch_size``. So one RL step = prompts_per_step / mini_batch_size
  optimizer updates, and ``max_steps`` / ``save_every_steps`` are converted to updates.
- clip_low / clip_high -> ``epsilon`` / ``epsilon_high`` (clip-higher); ``loss_type="dapo"``:
  per-token losses summed and divided by the number of response tokens of the whole
  accumulated mini-batch (verl's "token-mean"); ``scale_rewards="group"``: (r - mean) / std.
- kl_coef -> ``beta`` (0 loads no reference model). TRL's KL estimator is k3
  (exp(ref - logp) - (ref - logp) - 1), which is verl's ``low_var_kl`` without its [-10, 10]
  clamp; ``kl_type`` low_var_kl and k3 map to it, k1 / k2 are refused with kl_coef > 0.
- entropy_coef -> TRL's ``entropy_coef`` (loss - coef x mean token entropy).
- temperature, top_p, max_response_tokens -> generation; prompts longer than
  max_prompt_tokens are dropped from the set up front (counted in the summary).
- curriculum easy_to_hard: rows sorted by pass_rate (high first) and ``shuffle_dataset=False``
  so TRL's RepeatSampler walks them in order; none: TRL shuffles with the seed.
- drop_zero_variance_groups: TRL has no switch for it. Zero-variance groups already get zero
  advantage; dropping them here also removes their tokens from the loss (the KL and entropy
  terms and the token-mean denominator) by zeroing their completion mask after scoring.
- rollout: transformers -> HF ``generate`` (CPU smoke runs); vllm_colocated / vllm_server ->
  ``use_vllm=True`` with ``vllm_mode`` "colocate" / "server" (vllm_tp, memory fraction passed
  on). The vLLM paths are not tested here (no vLLM in the test environment).
- Checkpoints: TRL/HF ``checkpoint-<update>`` folders under ``<run>/checkpoints/rl`` every
  save_every_steps RL steps, and on SIGTERM (the stop flag ends training after the current
  update and saves); a rerun resumes from the newest one.

Metrics (one ``metric`` event per RL step, rank 0, from a TrainerCallback's ``on_log``; the
mapping from TRL's log keys is ``TRL_METRICS``, the only place it lives): ``rl/reward/mean``,
``rl/reward/std``, ``rl/pass_rate`` (share of rollouts passing all their sampled tests),
``rl/groups/all_fail`` / ``all_pass`` (share of groups where no rollout / every rollout passed
all its tests), ``rl/response_length/mean|max``, ``rl/truncation_rate``, ``rl/kl``,
``rl/entropy``, ``rl/clip_frac/low|high|region``, ``rl/grad_norm``, ``rl/lr``,
``rl/time/generate_s`` (HF generate / vLLM), ``rl/time/reward_s`` (sandbox judging),
``rl/time/train_s`` (the rest of the step: log-probs, backward, optimizer),
``rl/rollout_tokens_per_s``, ``rl/sandbox_timeouts``. ``sample`` events (kind ``rollout``):
a few rollouts per step with task id, reward, verdicts and code.

Rollout records (engine/rollouts.py): every scored rollout of a step, up to the first 64
prompt groups per step and rank, goes to ``<run>/rollouts/rl/<step>.<rank>.jsonl`` (written
whole per step; a step that runs again after a resume replaces its file) with its group,
sample, task id, reward, the advantage TRL computed for it, the group's mean / std, passed /
total tests, verdict statuses, truncation and the extracted code. The Data panel's rollout
view reads them, locally or over the cluster's link.

Left out: DAPO's dynamic sampling (refilling a batch after dropping groups), multi-turn /
tool rollouts, group statistics across ranks (each rank's reward function sees its own slice;
on one process it sees whole groups), and a sequence-level KL.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.__main__ import run_stage_alone
from engine.context import StageError
from engine.train.portable import make_portable

if TYPE_CHECKING:
    from engine.context import StageContext
    from engine.schema import RlConfig

STAGE = "rl"
SAMPLES_PER_STEP = 2  # rollouts per step in `sample` events

# TRL 1.16 GRPOTrainer log key -> our metric name. The one place this mapping lives.
TRL_METRICS: dict[str, str] = {
    "reward": "rl/reward/mean",
    "reward_std": "rl/reward/std",
    "completions/mean_length": "rl/response_length/mean",
    "completions/max_length": "rl/response_length/max",
    "completions/clipped_ratio": "rl/truncation_rate",
    "kl": "rl/kl",
    "entropy": "rl/entropy",
    "clip_ratio/low_mean": "rl/clip_frac/low",
    "clip_ratio/high_mean": "rl/clip_frac/high",
    "clip_ratio/region_mean": "rl/clip_frac/region",
    "grad_norm": "rl/grad_norm",
    "learning_rate": "rl/lr",
    "frac_reward_zero_std": "rl/groups/zero_variance",
}
VLLM_MODES = {"vllm_colocated": "colocate", "vllm_server": "server"}
TRL_KL_TYPES = {"low_var_kl", "k3"}


@dataclass
class StepStats:
    """What the reward function and the trainer measure between two logs (one RL step)."""

    generate_s: float = 0.0
    gen_and_score_s: float = 0.0
    reward_s: float = 0.0
    rollout_tokens: int = 0
    rollouts: int = 0
    all_passed: int = 0
    groups: int = 0
    groups_all_fail: int = 0
    groups_all_pass: int = 0
    timeouts: int = 0
    samples: list[dict[str, Any]] = field(default_factory=list)
    zero_variance: list[bool] = field(default_factory=list)  # the last scored batch's rows
    # The last scored batch, for the rollout records: (step from 1, Rollouts, RolloutRewards,
    # response token counts). Taken (and cleared) once TRL's advantages are known.
    scored: tuple[int, list, list, list[int]] | None = None

    def metrics(self) -> dict[str, float]:
        out = {"rl/time/generate_s": self.generate_s, "rl/time/reward_s": self.reward_s,
               "rl/sandbox_timeouts": float(self.timeouts)}
        if self.generate_s > 0:
            out["rl/rollout_tokens_per_s"] = self.rollout_tokens / self.generate_s
        if self.rollouts:
            out["rl/pass_rate"] = self.all_passed / self.rollouts
        if self.groups:
            out["rl/groups/all_fail"] = self.groups_all_fail / self.groups
            out["rl/groups/all_pass"] = self.groups_all_pass / self.groups
        return out


# ---------------------------------------------------------------------------------------------
# Pieces the stage puts together (public for tests)


@dataclass(frozen=True)
class Batching:
    """The RL config's batch sizes in TRL's units (responses per device, micro-steps)."""

    per_device: int
    grad_accum: int
    steps_per_generation: int
    updates_per_step: int


def batching(rl: RlConfig, world_size: int) -> Batching:
    per_pass = rl.micro_batch_size * world_size
    mini = rl.mini_batch_size * rl.group_size
    step = rl.prompts_per_step * rl.group_size
    if mini % per_pass or step % per_pass or rl.prompts_per_step % rl.mini_batch_size:
        raise StageError(
            f"rl batch sizes do not fit {world_size} process(es): prompts_per_step "
            f"{rl.prompts_per_step} x group_size {rl.group_size}, mini_batch_size "
            f"{rl.mini_batch_size} prompts, micro_batch_size {rl.micro_batch_size}: make "
            "micro_batch_size x processes divide mini_batch_size x group_size")
    return Batching(rl.micro_batch_size, mini // per_pass, step // per_pass,
                    rl.prompts_per_step // rl.mini_batch_size)


def resolve_model_path(ctx: StageContext, rl: RlConfig) -> str:
    """``sft`` -> this run's final SFT checkpoint (StageError if missing); else as given."""
    if rl.model == "sft":
        path = ctx.run.checkpoint_dir("sft") / "final"
        if not (path / "config.json").is_file():
            raise StageError(f"rl.model is 'sft' but there is no SFT checkpoint at {path}: run "
                             "the sft stage first (--stages sft), or set rl.model to a model "
                             "folder, a Hugging Face id or tiny-random")
        return str(path)
    return rl.model


def resolve_data_path(ctx: StageContext, rl: RlConfig) -> Path:
    if rl.data == "curate":
        for name in ("rl.parquet", "rl.jsonl"):
            path = ctx.run.exports_dir / name
            if path.is_file():
                return path
        raise StageError(f"rl.data is 'curate' but {ctx.run.exports_dir / 'rl.parquet'} does "
                         "not exist: run the curate stage first, or set rl.data to a file")
    path = Path(rl.data).expanduser()
    if not path.is_file():
        raise StageError(f"rl.data file {rl.data} does not exist (resolved to "
                         f"{path.resolve()}): fix rl.data")
    return path


def load_policy(model: str, seed: int) -> tuple[Any, Any]:
    """(model, tokenizer) of a folder / HF id, or the in-memory tiny-random model."""
    import transformers

    from engine.llm.transformers_local import TINY_RANDOM, build_tiny_random

    if model == TINY_RANDOM:
        policy, tok = build_tiny_random(seed)
        policy.train()
    else:
        try:
            tok = transformers.AutoTokenizer.from_pretrained(model)
            policy = transformers.AutoModelForCausalLM.from_pretrained(model)
        except OSError as exc:
            raise StageError(f"cannot load rl.model {model!r} ({exc}): give a local folder, a "
                             "Hugging Face id this host can download, or tiny-random") from None
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return policy, tok


def grpo_args(rl: RlConfig, out_dir: Path, seed: int, world_size: int, use_cpu: bool) -> Any:
    """TRL ``GRPOConfig`` of an ``RlConfig`` (see the module docstring for the mapping)."""
    from trl import GRPOConfig

    if rl.kl_coef > 0 and rl.kl_type not in TRL_KL_TYPES:
        raise StageError(f"rl.kl_type {rl.kl_type} is not available: TRL's GRPO uses the k3 "
                         "estimator; set rl.kl_type to low_var_kl or k3, or rl.kl_coef to 0")
    b = batching(rl, world_size)
    vllm = rl.rollout in VLLM_MODES
    max_updates = rl.max_steps * b.updates_per_step if rl.max_steps else -1
    save_updates = rl.save_every_steps * b.updates_per_step
    return GRPOConfig(
        output_dir=str(out_dir), seed=seed, data_seed=seed, report_to=[],
        use_cpu=use_cpu, bf16=not use_cpu, fp16=False,
        learning_rate=rl.lr, lr_scheduler_type=rl.lr_scheduler, warmup_steps=0,
        num_train_epochs=rl.epochs, max_steps=max_updates,
        per_device_train_batch_size=b.per_device, gradient_accumulation_steps=b.grad_accum,
        steps_per_generation=b.steps_per_generation, num_generations=rl.group_size,
        num_iterations=1, shuffle_dataset=rl.curriculum != "easy_to_hard",
        epsilon=rl.clip_low, epsilon_high=rl.clip_high, loss_type="dapo",
        scale_rewards="group", beta=rl.kl_coef, entropy_coef=rl.entropy_coef,
        temperature=rl.temperature, top_p=rl.top_p, top_k=0,
        max_completion_length=rl.max_response_tokens,
        use_vllm=vllm, vllm_mode=VLLM_MODES.get(rl.rollout, "colocate"),
        vllm_tensor_parallel_size=rl.vllm_tp,
        vllm_gpu_memory_utilization=rl.vllm_gpu_memory_utilization,
        logging_steps=b.updates_per_step, logging_first_step=False,
        save_strategy="steps" if save_updates else "no", save_steps=save_updates or 500,
        save_only_model=False, remove_unused_columns=False, dataloader_num_workers=0,
        disable_tqdm=True, log_completions=False,
    )


def make_reward_fn(judge: Any, stats: StepStats, group_size: int, updates_per_step: int,
                   max_response_tokens: int) -> Any:
    """The TRL reward function: judges a batch of completions with ``judge`` (one call, all
    sandbox runs in parallel) and records the step's diagnostics in ``stats``."""
    from engine.train.reward import Rollout, parse_ground_truth

    def sandbox_reward(prompts: list, completions: list, completion_ids: list,
                       ground_truth: list[str], task_id: list[int], trainer_state: Any = None,
                       **_: Any) -> list[float]:
        step = (trainer_state.global_step // updates_per_step) if trainer_state else 0
        rollouts = []
        for i, (completion, ids, truth, tid) in enumerate(
                zip(completions, completion_ids, ground_truth, task_id, strict=True)):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            inputs, outputs = parse_ground_truth(truth)
            rollouts.append(Rollout(task_id=int(tid), text=text, inputs=inputs, outputs=outputs,
                                    step=step, sample=i % group_size,
                                    truncated=len(ids) >= max_response_tokens))
        scores = judge.score(rollouts)
        stats.reward_s += judge.last_seconds
        stats.rollout_tokens += sum(len(ids) for ids in completion_ids)
        stats.rollouts += len(scores)
        stats.all_passed += sum(s.all_passed for s in scores)
        stats.timeouts += sum(s.timeouts for s in scores)
        stats.zero_variance = []
        # RepeatSampler puts a prompt's group_size rollouts next to each other.
        for g in range(0, len(scores), group_size):
            group = scores[g:g + group_size]
            stats.groups += 1
            stats.groups_all_fail += all(s.passed == 0 for s in group)
            stats.groups_all_pass += all(s.all_passed for s in group)
            same = len({s.reward for s in group}) == 1
            stats.zero_variance += [same] * len(group)
        for r, s in list(zip(rollouts, scores, strict=True))[:SAMPLES_PER_STEP]:
            stats.samples.append({"task_id": r.task_id, "sample": r.sample, "step": step,
                                  **s.to_dict(), "code": (s.code or r.text)[:1500]})
        stats.scored = (step + 1, rollouts, scores, [len(ids) for ids in completion_ids])
        return [s.reward for s in scores]

    return sandbox_reward


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The newest complete ``checkpoint-<n>`` folder (HF Trainer layout), if any."""
    found = []
    for p in out_dir.glob("checkpoint-*"):
        suffix = p.name.split("-", 1)[1]
        if suffix.isdigit() and (p / "trainer_state.json").is_file():
            found.append((int(suffix), p))
    return max(found)[1] if found else None


# ---------------------------------------------------------------------------------------------
# TRL glue (built lazily: importing this module must not import torch / trl)


# RlTrainer overrides private methods of TRL's GRPOTrainer and reads keys of their output
# (completion_mask, advantages, num_items_in_batch). Those were read against these TRL
# releases; pyproject pins the same. Another release fails the stage before any model loads.
TRL_TESTED = ("1.16",)
TRL_OVERRIDDEN = {"_generate": ("self", "prompts"),
                  "_generate_and_score_completions": ("self", "inputs")}


def check_trl(trl: Any = None) -> str:
    """The installed TRL's version, or a StageError when RlTrainer was not checked against it
    (or a method it overrides changed its parameters)."""
    import inspect

    if trl is None:
        import trl
    version = str(trl.__version__)
    fix = ("pip install 'trl==1.16.*' where rl runs (or check RlTrainer in "
           "engine/stages/rl.py against this TRL and add it to TRL_TESTED)")
    if ".".join(version.split(".")[:2]) not in TRL_TESTED:
        raise StageError(f"rl overrides internals of TRL's GRPOTrainer that were checked "
                         f"against TRL {', '.join(v + '.x' for v in TRL_TESTED)}; this node "
                         f"has TRL {version}: {fix}")
    for name, params in TRL_OVERRIDDEN.items():
        method = getattr(trl.GRPOTrainer, name, None)
        found = tuple(inspect.signature(method).parameters) if method is not None else None
        if found != params:
            now = "missing" if found is None else "(" + ", ".join(found) + ")"
            raise StageError(f"TRL {version}'s GRPOTrainer.{name} is {now}, not "
                             f"({', '.join(params)}) as RlTrainer expects: {fix}")
    return version


def _trainer_classes() -> tuple[type, type]:
    import torch
    from transformers import TrainerCallback
    from trl import GRPOTrainer

    class RlTrainer(GRPOTrainer):
        """GRPOTrainer + timing of generation, optional zero-variance group dropping, and
        the rollout records (with the advantages TRL computed)."""

        def __init__(self, *args: Any, stats: StepStats, drop_zero_variance: bool,
                     rollout_writer: Any = None, group_size: int = 1, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.rl_stats = stats
            self.drop_zero_variance = drop_zero_variance
            self.rollout_writer = rollout_writer
            self.group_size = group_size

        def _generate(self, prompts: list) -> Any:
            t0 = time.perf_counter()
            out = super()._generate(prompts)
            self.rl_stats.generate_s += time.perf_counter() - t0
            return out

        def _generate_and_score_completions(self, inputs: list) -> dict:
            t0 = time.perf_counter()
            out = super()._generate_and_score_completions(inputs)
            zero = self.rl_stats.zero_variance
            mask = out["completion_mask"]
            if self.drop_zero_variance and len(zero) == mask.shape[0]:
                keep = torch.tensor([not z for z in zero], dtype=mask.dtype, device=mask.device)
                out["completion_mask"] = mask * keep.unsqueeze(1)
                # dapo's denominator: response tokens left in the whole generation batch.
                out["num_items_in_batch"] = self.accelerator.gather(
                    out["completion_mask"].sum()).sum()
            self._record_rollouts(out.get("advantages"))
            self.rl_stats.gen_and_score_s += time.perf_counter() - t0
            return out

        def _record_rollouts(self, advantages: Any) -> None:
            from engine.rollouts import build_step_records

            scored, self.rl_stats.scored = self.rl_stats.scored, None
            if scored is None or self.rollout_writer is None:
                return
            step, rollouts, scores, lengths = scored
            adv = advantages.detach().float().cpu().tolist() if advantages is not None else None
            records = build_step_records(step, self.rollout_writer.rank, rollouts, scores,
                                         self.group_size, response_tokens=lengths,
                                         advantages=adv)
            self.rollout_writer.write_step(step, records)

    class EventsCallback(TrainerCallback):
        """One ``metric`` event per RL step (rank 0) and the stop flag -> save and stop."""

        def __init__(self, ctx: StageContext, stats: StepStats, updates_per_step: int) -> None:
            self.ctx, self.stats, self.updates = ctx, stats, updates_per_step
            self.t_last = time.perf_counter()
            self.last: dict[str, float] = {}
            self.steps_logged = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            # Where training starts (models loaded, a checkpoint restored): with the first
            # step's progress this gives readers a rate, and an ETA, after one step.
            if self.ctx.rank == 0 and state.max_steps > 0:
                self.ctx.events.progress(state.global_step // self.updates,
                                         state.max_steps // self.updates, "RL steps")
            return control

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
            # Stop at an RL step's end: its rollouts are generated, so its remaining updates
            # are cheap, and a checkpoint mid-step would resume with half a step's rollouts lost.
            if self.ctx.stop_requested() and state.global_step % self.updates == 0:
                control.should_save = True
                control.should_training_stop = True
            return control

        def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None,
                   **kw: Any) -> Any:
            logs = logs or {}
            if "reward" not in logs:  # the end-of-training summary, not a step
                return control
            now = time.perf_counter()
            s = self.stats
            values = {ours: float(logs[theirs]) for theirs, ours in TRL_METRICS.items()
                      if logs.get(theirs) is not None}
            values.update(s.metrics())
            values["rl/time/train_s"] = max(now - self.t_last - s.gen_and_score_s, 0.0)
            step = max(state.global_step // self.updates, 1)
            if self.ctx.rank == 0:
                self.ctx.events.metric(step, values)
                for sample in s.samples:
                    self.ctx.events.sample("rollout", sample, step=step)
                total = state.max_steps // self.updates if state.max_steps > 0 else None
                self.ctx.events.progress(step, total, "RL steps", step=step)
            self.last, self.steps_logged = values, self.steps_logged + 1
            self.stats.__init__()  # a fresh StepStats for the next step
            self.t_last = time.perf_counter()
            return control

    return RlTrainer, EventsCallback


# ---------------------------------------------------------------------------------------------
# The stage


def run(ctx: StageContext) -> dict:
    rl = ctx.config.rl
    seed = rl.seed if rl.seed is not None else ctx.config.run.seed
    model_name = resolve_model_path(ctx, rl)
    data_path = resolve_data_path(ctx, rl)
    try:
        import torch
        from datasets import Dataset
    except ImportError as exc:
        raise StageError(f"the rl stage needs torch, transformers, datasets and trl ({exc}): "
                         "install the training extras") from None

    from engine.rollouts import RolloutWriter, rollouts_dir
    from engine.train.reward import RewardJudge, RewardSpec
    from engine.train.rl_data import fit_prompts, load_rl_rows, order_rows
    from engine.verify.sandbox import SandboxUnavailable

    log = ctx.log
    trl_version = check_trl()  # before any model loads: a TRL we never read fails here
    log.info("rl: TRL %s", trl_version)
    policy, tok = load_policy(model_name, seed)
    rows = [r for r in load_rl_rows(data_path) if r["ground_truth"]]
    rows, too_long = fit_prompts(rows, tok, rl.max_prompt_tokens)
    if not rows:
        raise StageError(f"no RL task in {data_path} fits rl.max_prompt_tokens "
                         f"{rl.max_prompt_tokens} ({too_long} dropped as too long)")
    rows = order_rows(rows, rl.curriculum)
    log.info("rl: %d tasks from %s (%d prompts over %d tokens dropped), model %s", len(rows),
             data_path, too_long, rl.max_prompt_tokens, model_name)

    out_dir = ctx.run.checkpoint_dir(STAGE)
    out_dir.mkdir(parents=True, exist_ok=True)
    use_cpu = not torch.cuda.is_available()
    args = grpo_args(rl, out_dir, seed, ctx.world_size, use_cpu)
    b = batching(rl, ctx.world_size)
    compare = getattr(getattr(ctx.config, "verify", None), "compare", "strip")
    spec = RewardSpec.from_config(rl, compare=compare, seed=seed)
    try:
        judge = RewardJudge(spec, workers=max(1, ctx.config.rl.resources.cpus_per_task))
    except SandboxUnavailable as exc:
        raise StageError(f"the rl reward runs generated code only in the sandbox, which "
                         f"cannot start here: {exc}") from None

    RlTrainer, EventsCallback = _trainer_classes()
    stats = StepStats()
    callback = EventsCallback(ctx, stats, b.updates_per_step)
    t0 = time.perf_counter()
    try:
        trainer = RlTrainer(
            model=policy, processing_class=tok, args=args,
            reward_funcs=[make_reward_fn(judge, stats, rl.group_size, b.updates_per_step,
                                         rl.max_response_tokens)],
            train_dataset=Dataset.from_list(rows), callbacks=[callback],
            stats=stats, drop_zero_variance=rl.drop_zero_variance_groups,
            rollout_writer=RolloutWriter(rollouts_dir(ctx.run.root, STAGE), ctx.rank),
            group_size=rl.group_size)
        resume = latest_checkpoint(out_dir)
        if resume is not None:
            log.info("rl: resuming from %s", resume)
        result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        interrupted = ctx.stop_requested()
        if not interrupted:  # stopped: the callback's should_save wrote a checkpoint
            final = out_dir / "final"
            trainer.save_model(str(final))
            tok.save_pretrained(str(final))
            if ctx.rank == 0:
                make_portable(final)  # readable by the transformers 4.x vLLM versions pin
            if ctx.rank == 0:
                ctx.events.artifact("rl/final", final, kind="checkpoint")
    finally:
        judge.close()
    steps = trainer.state.global_step // b.updates_per_step
    summary = {"model": model_name, "data": str(data_path), "tasks": len(rows),
               "dropped_long_prompts": too_long, "steps": steps,
               "updates": trainer.state.global_step, "resumed_from": str(resume) if resume
               else None, "train_loss": float(result.training_loss),
               "seconds": round(time.perf_counter() - t0, 2), "interrupted": interrupted,
               "rollouts": str(rollouts_dir(ctx.run.root, STAGE)), "last_metrics": callback.last}
    if not interrupted:
        summary["final"] = str(out_dir / "final")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Run this stage alone through the engine CLI (``run ... --stages rl``)."""
    return run_stage_alone(STAGE, argv)


if __name__ == "__main__":
    sys.exit(main())
