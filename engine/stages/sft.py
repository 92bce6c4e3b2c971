"""Stage ``sft``: full fine-tune of ``sft.base_model`` on the curated {query, response} rows
(SYNTHSMITH.md §7), with transformers models and, for ZeRO, DeepSpeed.

Run it alone (after ``curate``, or with ``sft.data`` set to a file)::

    python -m engine run --config assets/presets/smoke-cpu.yaml --run-dir /tmp/run1 --stages sft
    torchrun --nproc_per_node 8 -m engine run --config C --run-dir D --stages sft   # one node
    # multi-node: the launcher sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT

What it does:

- Data (``engine.train.sft_data``): chat template of the tokenizer, loss on response tokens
  only, examples over ``max_seq_len`` dropped. With ``packing`` the examples go first-fit
  decreasing into rows of ``max_seq_len`` tokens, kept apart in attention by a block-diagonal
  causal mask (``engine.train.packing``: 4D bool mask for sdpa, a BlockMask for flex, varlen
  position ids for flash_attention_2). ``global_batch_size`` counts rows.
- The loss of a step is the mean over all response tokens of the global batch (summed per
  micro-batch, divided by the step's token count, known up front from the plan), so long and
  short examples weigh per token whatever the micro-batch split.
- ``zero_stage`` 0: plain torch AdamW (bf16 by autocast over fp32 weights), DDP when
  ``world_size > 1`` (gloo on CPU, nccl on CUDA). 1-3: DeepSpeed with the config from
  ``deepspeed_config`` (a pure function of the schema) and DeepSpeed's torch AdamW (its fused
  Adam JIT-build fails on some images, see ../shared/notes/gpu-recipes.md).
- Schedule: ``transformers.get_scheduler`` (cosine/linear/constant after linear warmup of
  ``warmup_ratio`` of all steps); grad clipping at ``grad_clip`` (0 = off).
- Checkpoints (``engine.train.checkpoints``): every ``save_every_steps`` and when a stop is
  requested (SIGTERM), into ``<run>/checkpoints/sft/step-<N>/``; a rerun resumes from the
  newest one at the same step with the same data order (the order is a pure function of seed
  and step) and the same losses. The final model goes to ``<run>/checkpoints/sft/final/`` in
  Hugging Face format (+ tokenizer; ZeRO-3 weights consolidated to 16 bit) with an
  ``artifact`` event: what ``rl.model: sft`` loads.
- Events (rank 0): per optimizer step ``sft/loss``, ``sft/lr``, ``sft/grad_norm``,
  ``sft/tokens_per_s``, ``sft/mfu`` (CUDA devices of known peak only), ``sft/padding_frac``,
  ``sft/memory_gb``, ``sft/epoch``, ``sft/eta_s``, and progress in steps. Every rank logs.

Leaves out: evaluation during training, sequence parallelism for rows over one GPU's memory,
``offload_params`` without ZeRO-3 (ignored there), and attention kernels other than the three.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.__main__ import run_stage_alone
from engine.context import StageError
from engine.train.portable import make_portable

if TYPE_CHECKING:
    from engine.context import StageContext
    from engine.schema import SftConfig

STAGE = "sft"
# Dense bf16 peak FLOP/s by a substring of torch.cuda.get_device_name(); first match wins.
PEAK_BF16_FLOPS = (("H200", 989e12), ("H100", 989e12), ("H800", 989e12), ("H20", 148e12),
                   ("A100", 312e12), ("A800", 312e12), ("L40S", 362e12), ("4090", 165e12))
HF_ATTENTION = {"sdpa": "sdpa", "flex": "flex_attention", "flash_attention_2": "flash_attention_2"}
SCHEDULERS = {"cosine": "cosine", "linear": "linear", "constant": "constant_with_warmup"}


def deepspeed_config(cfg: SftConfig, world_size: int) -> dict[str, Any]:
    """The DeepSpeed config for ``cfg`` (an ``SftConfig``) on ``world_size`` ranks."""
    per_pass = cfg.micro_batch_size * world_size
    if cfg.global_batch_size % per_pass:
        raise ValueError(f"global_batch_size {cfg.global_batch_size} is not a multiple of "
                         f"micro_batch_size x world_size = {per_pass}")
    zero: dict[str, Any] = {"stage": cfg.zero_stage, "overlap_comm": True,
                            "contiguous_gradients": True}
    if cfg.offload_optimizer and cfg.zero_stage >= 1:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    if cfg.zero_stage == 3:
        # The final HF checkpoint needs the full weights gathered on rank 0.
        zero["stage3_gather_16bit_weights_on_model_save"] = True
        if cfg.offload_params:
            zero["offload_param"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_batch_size": cfg.global_batch_size,
        "train_micro_batch_size_per_gpu": cfg.micro_batch_size,
        "gradient_accumulation_steps": cfg.global_batch_size // per_pass,
        "gradient_clipping": cfg.grad_clip,
        "bf16": {"enabled": bool(cfg.bf16)},
        "zero_optimization": zero,
        # torch's AdamW: DeepSpeed's fused Adam JIT-builds and fails on some CUDA images.
        "optimizer": {"type": "AdamW", "params": {
            "lr": cfg.lr, "weight_decay": cfg.weight_decay, "torch_adam": True}},
        "steps_per_print": 10**9,  # our own metrics; keep DeepSpeed's log quiet
        "wall_clock_breakdown": False,
    }


def peak_flops(device: Any) -> float | None:
    """Dense bf16 peak FLOP/s of a known CUDA device, else None (no MFU reported)."""
    import torch

    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((f for key, f in PEAK_BF16_FLOPS if key in name), None)


def memory_gb(device: Any) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    try:  # current RSS; ru_maxrss would only ever grow
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e9
    except OSError:
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6


# --- setup ---------------------------------------------------------------------------------


def _setup_distributed(ctx: StageContext, use_deepspeed: bool) -> tuple[Any, bool]:
    """(device, whether we started the process group)."""
    import torch
    import torch.distributed as dist

    local_rank = int(os.environ.get("LOCAL_RANK", ctx.rank))
    if torch.cuda.is_available():
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    started = False
    if ctx.world_size > 1 and not dist.is_initialized():
        missing = [k for k in ("MASTER_ADDR", "MASTER_PORT") if k not in os.environ]
        if missing:
            raise StageError(f"sft runs on {ctx.world_size} ranks but {', '.join(missing)} "
                             "is not set: start it with torchrun (or the deepspeed launcher), "
                             "which sets RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT")
        backend = "nccl" if device.type == "cuda" else "gloo"
        if use_deepspeed:
            import deepspeed

            deepspeed.init_distributed(dist_backend=backend)
        else:
            dist.init_process_group(backend=backend, rank=ctx.rank, world_size=ctx.world_size)
        started = True
    elif use_deepspeed and not dist.is_initialized():
        # One process: DeepSpeed still wants a process group; give it a private port.
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(port))
        os.environ.setdefault("RANK", "0")
        os.environ.setdefault("LOCAL_RANK", "0")
        os.environ.setdefault("WORLD_SIZE", "1")
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if device.type == "cuda" else "gloo")
        started = True
    return device, started


def _check_attention(attention: str, device: Any) -> None:
    from engine.train.packing import flex_supported

    if attention == "flash_attention_2" and importlib.util.find_spec("flash_attn") is None:
        raise StageError("sft.attention is flash_attention_2 but the flash-attn package is not "
                         "installed here: pip install flash-attn (CUDA only), or set "
                         "sft.attention to flex or sdpa")
    if attention == "flash_attention_2" and device.type != "cuda":
        raise StageError("sft.attention is flash_attention_2, which needs a CUDA GPU: set "
                         "sft.attention to sdpa on CPU")
    if attention == "flex" and not flex_supported(device):
        raise StageError(f"sft.attention is flex but FlexAttention does not run on {device} with "
                         "this torch build: set sft.attention to sdpa")


def _load_model(cfg: SftConfig, seed: int, ds_config: dict | None) -> tuple[Any, Any, Any]:
    """(model, tokenizer, HfDeepSpeedConfig keep-alive or None), fp32 weights."""
    import torch
    import transformers

    from engine.llm.transformers_local import TINY_RANDOM, build_tiny_random

    keep = None
    if cfg.base_model == TINY_RANDOM:
        model, tok = build_tiny_random(seed)
        model.set_attn_implementation(HF_ATTENTION[cfg.attention])
    else:
        if ds_config is not None and cfg.zero_stage == 3:
            # Alive while from_pretrained runs: transformers then loads straight into ZeRO-3
            # shards (deepspeed.zero.Init) instead of a full copy per rank.
            from transformers.integrations import HfDeepSpeedConfig

            keep = HfDeepSpeedConfig(ds_config)
        try:
            tok = transformers.AutoTokenizer.from_pretrained(cfg.base_model)
            model = transformers.AutoModelForCausalLM.from_pretrained(
                cfg.base_model, dtype=torch.float32,
                attn_implementation=HF_ATTENTION[cfg.attention])
        except OSError as e:
            raise StageError(f"cannot load sft.base_model {cfg.base_model!r}: {e}") from None
    if tok.chat_template is None:
        raise StageError(f"the tokenizer of {cfg.base_model!r} has no chat template: pick an "
                         "instruct/chat model or a tokenizer that defines one")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.config.use_cache = False  # no KV cache in training
    if cfg.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    return model, tok, keep


def _param_groups(model: Any, weight_decay: float) -> list[dict[str, Any]]:
    """No decay on biases and norm weights (1-D tensors), as HF Trainer does."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [{"params": [p for p in params if p.ndim >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]


def _data(ctx: StageContext, cfg: SftConfig, tok: Any) -> Any:
    from engine.train.sft_data import (
        SftDataError,
        build_rows,
        read_rows,
        resolve_data_path,
        tokenize_example,
    )

    try:
        path = resolve_data_path(cfg.data, ctx.run.exports_dir)
        pairs = read_rows(path)
    except SftDataError as e:
        raise StageError(str(e)) from None
    examples = [tokenize_example(tok, r["query"], r["response"]) for r in pairs]
    rows = build_rows(examples, cfg.max_seq_len, cfg.packing)
    if not rows.rows:
        longest = max(len(e[0]) for e in examples)
        raise StageError(f"all {len(examples)} examples of {path} are longer than "
                         f"sft.max_seq_len {cfg.max_seq_len} (the longest has {longest} tokens): "
                         "raise sft.max_seq_len")
    ctx.log.info("sft data %s: %d examples, %d dropped (over %d tokens), %d rows, %d tokens",
                 path, len(examples), rows.dropped, cfg.max_seq_len, len(rows.rows), rows.tokens)
    return path, rows


# --- the stage ------------------------------------------------------------------------------


def run(ctx: StageContext) -> dict:
    import torch
    import torch.distributed as dist
    import transformers

    from engine.train import checkpoints as ckpt
    from engine.train.packing import IGNORE, collate, model_inputs, model_labels
    from engine.train.sft_data import Plan

    cfg = ctx.config.sft
    seed = cfg.seed if cfg.seed is not None else ctx.config.run.seed
    rank, world = ctx.rank, ctx.world_size
    lead = rank == 0
    use_ds = cfg.zero_stage > 0
    if cfg.global_batch_size % (cfg.micro_batch_size * world):
        raise StageError(f"sft.global_batch_size {cfg.global_batch_size} is not a multiple of "
                         f"micro_batch_size {cfg.micro_batch_size} x {world} ranks")
    device, started_pg = _setup_distributed(ctx, use_ds)
    _check_attention(cfg.attention, device)
    torch.manual_seed(seed)
    ds_cfg = deepspeed_config(cfg, world) if use_ds else None
    model, tok, _ds_keep = _load_model(cfg, seed, ds_cfg)
    n_params = sum(p.numel() for p in model.parameters())
    data_path, rows = _data(ctx, cfg, tok)
    plan = Plan(len(rows.rows), cfg.global_batch_size, cfg.micro_batch_size, world, cfg.epochs,
                seed)
    row_docs = [[rows.examples[i] for i in r] for r in rows.rows]
    row_loss_tokens = [sum(sum(x != IGNORE for x in lab) for _, lab in docs) for docs in row_docs]
    total = plan.total_steps
    warmup = int(cfg.warmup_ratio * total)  # floor: a 1-step smoke run gets no 0-lr step

    def make_scheduler(optimizer: Any) -> Any:
        return transformers.get_scheduler(SCHEDULERS[cfg.lr_scheduler], optimizer,
                                          num_warmup_steps=warmup, num_training_steps=total)

    if use_ds:
        import deepspeed

        engine, optimizer, _, scheduler = deepspeed.initialize(
            model=model, model_parameters=_param_groups(model, cfg.weight_decay),
            config=ds_cfg, lr_scheduler=make_scheduler)
        net = engine
    else:
        model.to(device)
        optimizer = torch.optim.AdamW(_param_groups(model, cfg.weight_decay), lr=cfg.lr)
        scheduler = make_scheduler(optimizer)
        net = model
        if world > 1:
            net = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=[device.index] if device.type == "cuda" else None)
    autocast = (torch.autocast(device.type, dtype=torch.bfloat16) if cfg.bf16 and not use_ds
                else nullcontext())

    # Resume from the newest complete checkpoint, if any.
    root = ctx.run.checkpoint_dir(STAGE)
    if lead:
        ckpt.clean_partial(root)
    if world > 1:
        dist.barrier()
    start, resumed = 0, None
    last = ckpt.latest(root)
    if last is not None:
        state = ckpt.read_state(last)
        if state.get("total_steps") != total:
            raise StageError(f"checkpoint {last} was made for {state.get('total_steps')} steps "
                             f"but this config makes {total}: the data or batch settings "
                             f"changed; move {root} aside to start over")
        if use_ds:
            engine.load_checkpoint(str(last / "deepspeed"), tag="ds")
        else:
            model.load_state_dict(torch.load(last / "model.pt", map_location=device))
            optimizer.load_state_dict(torch.load(last / "optimizer.pt", map_location=device))
            scheduler.load_state_dict(torch.load(last / "scheduler.pt"))
        rng = last / f"rng-{rank}.pt"
        if rng.is_file():  # a resume on fewer ranks has no file for the new ones
            ckpt.set_rng_state(torch.load(rng, weights_only=False))
        start = resumed = state["step"]
        ctx.log.info("rank %d resumed from %s (step %d of %d)", rank, last, start, total)

    def save(step: int) -> Path:
        """Checkpoint after ``step`` optimizer steps (collective: every rank calls it)."""
        tmp = ckpt.begin(root, step)
        if use_ds:
            engine.save_checkpoint(str(tmp / "deepspeed"), tag="ds")
        elif lead:
            torch.save(model.state_dict(), tmp / "model.pt")
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
            torch.save(scheduler.state_dict(), tmp / "scheduler.pt")
        torch.save(ckpt.rng_state(), tmp / f"rng-{rank}.pt")
        if world > 1:
            dist.barrier()
        path = ckpt.step_dir(root, step)
        if lead:
            epoch, pos = divmod(step, plan.steps_per_epoch)
            path = ckpt.commit(root, step, {
                "step": step, "epoch": epoch, "position": pos * plan.global_batch,
                "steps_per_epoch": plan.steps_per_epoch, "total_steps": total, "seed": seed,
                "world_size": world, "zero_stage": cfg.zero_stage, "data": str(data_path)})
        if world > 1:
            dist.barrier()
        ctx.log.info("rank %d saved checkpoint %s", rank, path)
        return path

    if lead:
        ctx.events.log(f"sft: {n_params:,} parameters, {len(rows.rows)} rows "
                       f"({rows.dropped} examples over max_seq_len dropped), {total} steps, "
                       f"{plan.accumulation} micro-batches per rank per step, world {world}")
    peak = peak_flops(device)
    net.train()
    losses: list[float] = []
    pad_sum = tok_sum = 0.0
    t_start = time.time()
    if lead:  # where training starts, model loaded: readers get a rate from the first step
        ctx.events.progress(start, total, unit="steps")
    interrupted = False
    # The training loop: one optimizer step per iteration, micro-batches accumulated inside.
    for step in range(start, total):
        t0 = time.time()
        step_rows = plan.step_rows(step)
        n_loss = sum(row_loss_tokens[r] for r in step_rows)  # the whole global batch's
        micro = plan.micro_batches(step, rank)
        lr = optimizer.param_groups[0]["lr"]  # before DeepSpeed's step moves the scheduler
        loss_sum = real = padded = 0.0
        for i, mb in enumerate(micro):
            batch = collate([row_docs[r] for r in mb], tok.pad_token_id)
            last_micro = i == len(micro) - 1
            # DDP: all-reduce gradients only on the last micro-batch of the step.
            sync = nullcontext() if last_micro or world == 1 or use_ds else net.no_sync()
            with sync, autocast:
                out = net(**model_inputs(batch, cfg.attention, device),
                          labels=model_labels(batch, cfg.attention, device),
                          num_items_in_batch=max(n_loss, 1))
            # out.loss = this micro-batch's token-loss sum / the global batch's token count.
            # DDP averages gradients over ranks and DeepSpeed also over accumulation steps:
            # undo both so the gradient is that of the global per-token mean.
            scale = world * (plan.accumulation if use_ds else 1)
            if use_ds:
                engine.backward(out.loss * scale)
                engine.step()  # steps the optimizer and scheduler on the last micro-batch
            else:
                (out.loss * scale).backward()
            loss_sum += float(out.loss.detach()) * max(n_loss, 1)
            real += batch.tokens
            padded += batch.padded_tokens
        if use_ds:
            grad_norm = float(engine.get_global_grad_norm() or 0.0)
        else:
            if cfg.grad_clip > 0:
                grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip))
            else:
                grad_norm = float(torch.nn.utils.get_total_norm(
                    [p.grad for p in model.parameters() if p.grad is not None]))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
        stop = 1.0 if ctx.stop_requested() else 0.0
        if world > 1:  # one small all-reduce: loss, tokens, padding, and "anyone stopping?"
            t = torch.tensor([loss_sum, real, padded, stop], dtype=torch.float64, device=device)
            dist.all_reduce(t)
            loss_sum, real, padded, stop = t.tolist()
        dt = max(time.time() - t0, 1e-9)
        loss = loss_sum / max(n_loss, 1)
        losses.append(loss)
        pad_sum += padded - real
        tok_sum += padded
        done = step + 1
        tps = real / dt
        if lead:
            metrics = {
                "sft/loss": loss, "sft/lr": lr, "sft/grad_norm": grad_norm,
                "sft/tokens_per_s": tps, "sft/padding_frac": 1.0 - real / max(padded, 1),
                "sft/memory_gb": memory_gb(device), "sft/epoch": done / plan.steps_per_epoch,
                "sft/eta_s": (time.time() - t_start) / (done - start) * (total - done),
            }
            if peak:
                metrics["sft/mfu"] = 6.0 * n_params * tps / (peak * world)
            ctx.events.metric(done, metrics)
            ctx.events.progress(done, total, unit="steps")
        ctx.log.info("step %d/%d loss %.5f lr %.3g grad_norm %.3g %.0f tok/s", done, total,
                     loss, lr, grad_norm, tps)
        if stop:
            save(done)
            interrupted = True
            break
        if cfg.save_every_steps and done % cfg.save_every_steps == 0 and done < total:
            save(done)

    summary: dict[str, Any] = {
        "steps": start + len(losses), "total_steps": total, "resumed_from": resumed,
        "examples": len(rows.examples) + rows.dropped, "dropped_over_max_seq_len": rows.dropped,
        "rows": len(rows.rows), "world_size": world,
        "padding_frac": pad_sum / tok_sum if tok_sum else None,
        "loss_first": losses[0] if losses else None, "loss_last": losses[-1] if losses else None,
        "interrupted": interrupted,
    }
    if not interrupted:
        summary["final"] = str(_save_final(ctx, cfg, engine if use_ds else None, model, tok,
                                           root / "final"))
    if started_pg and not use_ds:
        # DeepSpeed caches its groups in module globals: a destroyed group would break the
        # next DeepSpeed stage in this process, so that one stays up until the process ends.
        dist.destroy_process_group()
    return summary


def _save_final(ctx: StageContext, cfg: SftConfig, engine: Any, model: Any, tok: Any, final: Path) -> Path:
    """Hugging Face folder (model + tokenizer) on rank 0, replaced whole."""
    import torch.distributed as dist

    state = None
    if engine is not None and cfg.zero_stage == 3:
        state = engine._zero3_consolidated_16bit_state_dict()  # collective; full on rank 0
    if ctx.rank == 0:
        tmp = final.with_name("final.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.config.use_cache = True  # for whoever generates with it next
        if state is not None:
            model.save_pretrained(tmp, state_dict=state)
        else:
            model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        make_portable(tmp)  # readable by the transformers 4.x that vLLM versions pin too
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        ctx.events.artifact("sft/final", final, kind="checkpoint")
        ctx.log.info("saved the final model to %s", final)
    if ctx.world_size > 1:
        dist.barrier()
    return final


def main(argv: Sequence[str] | None = None) -> int:
    """Run this stage alone through the engine CLI (``run ... --stages sft``)."""
    return run_stage_alone(STAGE, argv)


if __name__ == "__main__":
    sys.exit(main())
