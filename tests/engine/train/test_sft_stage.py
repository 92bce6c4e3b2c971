"""The sft stage on a tiny random Qwen2 (no download): the DeepSpeed config, the loss falling
on the bundled seed tasks, exact resume after a stop, the missing-export error, the smoke
preset through the CLI, and (slow) two ranks under torchrun with gloo.

Run: .venv/bin/python -m pytest tests/engine/train/test_sft_stage.py -q [-m slow]
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.context import (
    StageContext,  # noqa: E402
    StageError,  # noqa: E402
)
from engine.events import EventWriter  # noqa: E402
from engine.paths import ASSETS_DIR  # noqa: E402
from engine.rundir import RunDir  # noqa: E402
from engine.schema import load_config  # noqa: E402
from engine.stages import sft  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
SMOKE = ASSETS_DIR / "presets" / "smoke-cpu.yaml"


def seed_rows(limit: int | None = None) -> list[dict[str, str]]:
    """{query, response} rows from the bundled seeds: problem + its solution in a block."""
    rows = []
    with open(ASSETS_DIR / "seeds" / "seeds.jsonl", encoding="utf-8") as f:
        for line in f:
            s = json.loads(line)
            rows.append({"query": s["problem"],
                         "response": f"```python\n{s['solution'].rstrip()}\n```"})
    return rows[:limit]


def _short_rows(n: int = 8) -> list[dict[str, str]]:
    """Small rows of different lengths (padding without packing), fast on a CPU."""
    return [{"query": f"Read two integers and print their sum, case {i}." + " Fast." * i,
             "response": f"<think>\nadd them\n</think>\n\n```python\nprint({i} + sum(map(int, "
                         "input().split())))\n```"} for i in range(n)]


def write_export(run: RunDir, rows: list[dict[str, str]]) -> None:
    run.create()
    with open(run.exports_dir / "sft.jsonl", "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


class Recorder:
    """Wraps an EventWriter: keeps metrics in memory; sets the stop flag (as SIGTERM would)
    when step ``signal_at`` reports, so the stage stops after the step that follows."""

    def __init__(self, inner: EventWriter, stop: object = None, signal_at: int | None = None):
        self.inner, self.stop, self.signal_at = inner, stop, signal_at
        self.metrics: dict[int, dict[str, float]] = {}
        self.artifacts: list[tuple[str, str]] = []

    def metric(self, step, values):
        self.metrics[step] = dict(values)
        self.inner.metric(step, values)
        if self.signal_at is not None and step == self.signal_at:
            self.stop.set()

    def artifact(self, name, path, kind):
        self.artifacts.append((name, str(path)))
        self.inner.artifact(name, path, kind)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def run_stage(run: RunDir, overrides: list[str], signal_at: int | None = None):
    cfg = load_config(SMOKE, overrides)
    run.create()
    writer = EventWriter.for_run(run.events_dir, "sft", 0)
    ctx = StageContext(config=cfg, run=run, stage="sft", events=writer,
                       log=logging.getLogger("test.sft"))
    rec = Recorder(writer, ctx.stop_event, signal_at)
    ctx.events = rec
    try:
        return sft.run(ctx), rec
    finally:
        writer.close()


def test_deepspeed_config_follows_the_schema():
    cfg = load_config(SMOKE, ["sft.zero_stage=3", "sft.offload_optimizer=true",
                              "sft.offload_params=true", "sft.bf16=true", "sft.grad_clip=0.5",
                              "sft.global_batch_size=32", "sft.micro_batch_size=2"]).sft
    ds = sft.deepspeed_config(cfg, world_size=4)
    assert ds["train_batch_size"] == 32 and ds["train_micro_batch_size_per_gpu"] == 2
    assert ds["gradient_accumulation_steps"] == 4  # 32 / (2 x 4)
    assert ds["gradient_clipping"] == 0.5 and ds["bf16"] == {"enabled": True}
    zero = ds["zero_optimization"]
    assert zero["stage"] == 3 and zero["offload_optimizer"]["device"] == "cpu"
    assert zero["offload_param"]["device"] == "cpu"
    assert zero["stage3_gather_16bit_weights_on_model_save"] is True
    assert ds["optimizer"]["params"]["torch_adam"] is True
    two = sft.deepspeed_config(load_config(SMOKE, ["sft.zero_stage=2", "sft.bf16=false",
                                                   "sft.offload_params=true"]).sft, 1)
    assert two["zero_optimization"] == {"stage": 2, "overlap_comm": True,
                                        "contiguous_gradients": True}
    assert two["bf16"] == {"enabled": False} and two["gradient_accumulation_steps"] == 2
    with pytest.raises(ValueError):
        sft.deepspeed_config(cfg, world_size=3)


def test_loss_falls_on_the_seed_tasks_and_the_final_model_loads(tmp_path):
    run = RunDir(tmp_path / "run")
    write_export(run, seed_rows())
    summary, rec = run_stage(run, ["sft.max_seq_len=2048", "sft.epochs=2", "sft.lr=1e-2",
                                   "sft.warmup_ratio=0.1"])
    losses = [rec.metrics[s]["sft/loss"] for s in sorted(rec.metrics)]
    assert summary["steps"] == summary["total_steps"] == len(losses) >= 10
    assert losses[-1] < 0.8 * losses[0], losses  # ~6.1 -> ~4.2 in 10 steps
    m = rec.metrics[max(rec.metrics)]
    assert {"sft/loss", "sft/lr", "sft/grad_norm", "sft/tokens_per_s", "sft/padding_frac",
            "sft/memory_gb", "sft/epoch", "sft/eta_s"} <= set(m)
    assert "sft/mfu" not in m  # no known peak on a CPU
    assert m["sft/epoch"] == pytest.approx(2.0) and 0 <= m["sft/padding_frac"] < 0.5
    assert summary["dropped_over_max_seq_len"] == 0 and summary["rows"] < 38  # packed
    final = run.checkpoint_dir("sft") / "final"
    assert rec.artifacts == [("sft/final", str(final))]
    import transformers

    model = transformers.AutoModelForCausalLM.from_pretrained(final)
    tok = transformers.AutoTokenizer.from_pretrained(final)
    assert tok.chat_template and model.config.vocab_size == len(tok)


def test_stop_and_resume_repeats_the_uninterrupted_losses_exactly(tmp_path):
    # 12 unpacked rows, 4 per step: 3 steps per epoch, 2 epochs; the stop falls mid-epoch-2.
    rows = _short_rows(12)
    opts = ["sft.packing=false", "sft.epochs=2", "sft.lr=3e-3",
            "sft.warmup_ratio=0.2", "sft.save_every_steps=2"]
    straight = RunDir(tmp_path / "straight")
    write_export(straight, rows)
    full, rec_full = run_stage(straight, opts)
    assert full["steps"] == 6
    split = RunDir(tmp_path / "split")
    write_export(split, rows)
    first, rec_a = run_stage(split, opts, signal_at=3)  # seen after step 4
    assert first["interrupted"] is True and first["steps"] == 4
    assert not (split.checkpoint_dir("sft") / "final").exists()
    state = json.loads((split.checkpoint_dir("sft") / "step-4" / "trainer_state.json")
                       .read_text())
    assert (state["step"], state["epoch"], state["position"]) == (4, 1, 4)
    second, rec_b = run_stage(split, opts)
    assert second["resumed_from"] == 4 and second["steps"] == 6
    for step in range(1, 7):
        got = (rec_a.metrics if step <= 4 else rec_b.metrics)[step]
        want = rec_full.metrics[step]
        assert abs(got["sft/loss"] - want["sft/loss"]) < 1e-6, step
        assert got["sft/lr"] == pytest.approx(want["sft/lr"], abs=1e-12)
    assert sorted(rec_b.metrics) == [5, 6]
    kept = sorted(p.name for p in split.checkpoint_dir("sft").iterdir())
    assert kept == ["final", "step-2", "step-4"]


def test_missing_export_says_to_run_curate_first(tmp_path):
    run = RunDir(tmp_path / "run")
    with pytest.raises(StageError, match="run the curate stage first"):
        run_stage(run, [])
    with pytest.raises(StageError, match="is not a file"):
        run_stage(run, [f"sft.data={tmp_path / 'nope.jsonl'}"])


def test_the_smoke_preset_runs_sft_through_the_cli(tmp_path):
    run = RunDir(tmp_path / "run")
    write_export(run, _short_rows())
    t0 = time.time()
    proc = subprocess.run(
        [sys.executable, "-m", "engine", "run", "--config", str(SMOKE), "--run-dir",
         str(run.root), "--stages", "sft"], cwd=REPO, capture_output=True, text=True,
        timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert time.time() - t0 < 30
    state = run.read_state().stage("sft")
    assert state.status == "completed" and state.summary["steps"] == 1
    assert (run.checkpoint_dir("sft") / "final" / "config.json").is_file()


@pytest.mark.slow
def test_two_ranks_under_torchrun_with_gloo(tmp_path):
    run = RunDir(tmp_path / "run")
    write_export(run, seed_rows())
    with socket.socket() as sock:  # a free port: --master_port 0 hangs the gloo rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
           "--master_addr", "127.0.0.1", "--master_port", str(port), "-m", "engine", "run", "--config", str(SMOKE), "--run-dir",
           str(run.root), "--stages", "sft", "sft.max_seq_len=2048", "sft.epochs=3",
           "sft.lr=3e-3", "sft.resources.gpus_per_node=2"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    for rank in (0, 1):
        assert "step 15/15" in run.log_file("sft", rank).read_text()
    metrics = [json.loads(line) for line in run.event_file("sft", 0).read_text().splitlines()]
    losses = [e["data"]["sft/loss"] for e in metrics if e["kind"] == "metric"]
    assert len(losses) == 15 and losses[-1] < 0.8 * losses[0]  # ~6.1 -> ~4.6
    rank1 = run.event_file("sft", 1).read_text()
    assert '"kind":"metric"' not in rank1
    assert os.listdir(run.checkpoint_dir("sft")) == ["final"]
    assert run.read_state().stage("sft").summary["world_size"] == 2


@pytest.fixture
def restore_dist_env():
    """The one-process DeepSpeed path sets MASTER_PORT & co. for its process group, which
    stays up until the process ends. In pytest's process, engines that later tests start
    (the GUI's launches on This computer) would inherit them and try to listen on that port."""
    keys = ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE")
    before = {k: os.environ.get(k) for k in keys}
    yield
    for key, value in before.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.mark.slow
def test_zero_stage_2_trains_and_resumes_exactly_with_deepspeed(tmp_path, restore_dist_env):
    pytest.importorskip("deepspeed")
    opts = ["sft.packing=false", "sft.epochs=2", "sft.lr=3e-3", "sft.zero_stage=2",
            "sft.save_every_steps=2"]
    straight = RunDir(tmp_path / "straight")
    write_export(straight, _short_rows(12))
    _, rec = run_stage(straight, opts)
    losses = [rec.metrics[s]["sft/loss"] for s in sorted(rec.metrics)]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert (straight.checkpoint_dir("sft") / "step-4" / "deepspeed").is_dir()
    assert (straight.checkpoint_dir("sft") / "final" / "config.json").is_file()
    split = RunDir(tmp_path / "split")
    write_export(split, _short_rows(12))
    _, rec_a = run_stage(split, opts, signal_at=3)
    summary, rec_b = run_stage(split, opts)
    assert summary["resumed_from"] == 4
    resumed = [m["sft/loss"] for m in (*rec_a.metrics.values(), *rec_b.metrics.values())]
    assert max(abs(a - b) for a, b in zip(losses, resumed, strict=True)) < 1e-6
