"""Packing correctness on a tiny random Qwen2: each document's logits inside a packed row equal
its logits alone (the block-diagonal mask works), and restarting position_ids alone does not
(so the first check can fail). Plus the pure helpers: first-fit packing, collate, the plan.

Run: .venv/bin/python -m pytest tests/engine/train/test_packing.py -q
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from engine.llm.transformers_local import build_tiny_random  # noqa: E402
from engine.train.packing import (  # noqa: E402
    IGNORE,
    PAD_DOC,
    block_causal_mask,
    collate,
    model_inputs,
    pack_first_fit,
)
from engine.train.sft_data import Plan, tokenize_example  # noqa: E402

LENGTHS = (37, 11, 52)


def _docs(vocab: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(3, vocab, (n,), generator=g).tolist() for n in LENGTHS]


@pytest.fixture(scope="module")
def tiny():
    model, tok = build_tiny_random(0)
    return model.float().eval(), tok


def _alone(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def _packed_row(docs: list[list[int]], pad: int = 0):
    # Two rows so the batch dimension and a padded tail are exercised too.
    rows = [[(d, d) for d in docs], [(docs[1], docs[1])]]
    return collate(rows, pad_id=pad)


def _max_doc_diff(model, docs, logits_row: torch.Tensor) -> float:
    worst, at = 0.0, 0
    for d in docs:
        alone = _alone(model, d)
        worst = max(worst, float((logits_row[at:at + len(d)] - alone).abs().max()))
        at += len(d)
    return worst


def test_block_diagonal_mask_gives_each_document_its_own_logits(tiny):
    model, _ = tiny
    model.set_attn_implementation("sdpa")  # (eager would add a bool mask: not our path)
    docs = _docs(model.config.vocab_size)
    batch = _packed_row(docs)
    with torch.no_grad():
        logits = model(**model_inputs(batch, "sdpa", "cpu")).logits
    assert _max_doc_diff(model, docs, logits[0]) < 1e-5
    # The second row: one short document then padding; the document is unaffected too.
    assert float((logits[1, :LENGTHS[1]] - _alone(model, docs[1])).abs().max()) < 1e-5
    assert not torch.isnan(logits).any()  # padding rows are never fully masked


def test_restarting_position_ids_alone_leaks_attention_across_documents(tiny):
    model, _ = tiny
    docs = _docs(model.config.vocab_size)
    batch = _packed_row(docs)
    with torch.no_grad():
        logits = model(input_ids=batch.input_ids, position_ids=batch.position_ids).logits
    # Document 1 is fine (nothing before it); the later ones see their predecessors.
    assert _max_doc_diff(model, docs, logits[0]) > 1e-2


@pytest.mark.slow
def test_flex_block_mask_matches_documents_alone(tiny):
    from engine.train.packing import flex_supported

    model, _ = tiny
    if not flex_supported(torch.device("cpu"), training=False):
        pytest.skip("FlexAttention does not run on this device with this torch")
    model.set_attn_implementation("flex_attention")
    try:
        docs = _docs(model.config.vocab_size)
        batch = _packed_row(docs)
        with torch.no_grad():
            logits = model(**model_inputs(batch, "flex", "cpu")).logits
        model.set_attn_implementation("sdpa")
        assert _max_doc_diff(model, docs, logits[0]) < 1e-4
    finally:
        model.set_attn_implementation("sdpa")


def test_sft_refuses_flex_up_front_where_flex_cannot_train():
    # torch 2.13 on CPU runs FlexAttention forward but has no backward: a forward-only probe
    # let `sft.attention: flex` through, and the stage crashed mid-step (NotImplementedError).
    from engine.context import StageError
    from engine.stages.sft import _check_attention
    from engine.train.packing import flex_supported

    cpu = torch.device("cpu")
    if flex_supported(cpu):
        _check_attention("flex", cpu)  # trains here: accepted
        return
    with pytest.raises(StageError, match="flex.*set sft.attention to sdpa"):
        _check_attention("flex", cpu)
    try:  # and the probe is right: a backward really fails here
        from torch.nn.attention.flex_attention import flex_attention

        from engine.train.packing import flex_block_mask

        q = torch.zeros(1, 1, 128, 16, requires_grad=True)
        flex_attention(q, q, q, block_mask=flex_block_mask(torch.zeros(1, 128, dtype=torch.long))
                       ).sum().backward()
    except Exception:
        return
    pytest.fail("flex_supported said no, yet a FlexAttention backward ran on CPU")


def test_collate_marks_documents_positions_and_padding():
    b = collate([[([5, 6, 7], [IGNORE, 6, 7]), ([8, 9], [IGNORE, 9])], [([4], [IGNORE])]], pad_id=0)
    assert b.input_ids.tolist() == [[5, 6, 7, 8, 9], [4, 0, 0, 0, 0]]
    assert b.position_ids.tolist() == [[0, 1, 2, 0, 1], [0, 0, 1, 2, 3]]
    assert b.doc_ids.tolist() == [[0, 0, 0, 1, 1], [0, PAD_DOC, PAD_DOC, PAD_DOC, PAD_DOC]]
    assert b.labels[1].tolist() == [IGNORE] * 5
    assert (b.tokens, b.padded_tokens, b.loss_tokens) == (6, 10, 3)
    m = block_causal_mask(b.doc_ids)[0, 0]
    assert m[3].tolist() == [False, False, False, True, False]  # doc 2 sees only itself
    assert m[2].tolist() == [True, True, True, False, False]


def test_first_fit_decreasing_fills_rows_and_keeps_every_example():
    lengths = [5, 9, 3, 7, 1, 10, 2]
    rows = pack_first_fit(lengths, 10)
    assert sorted(i for r in rows for i in r) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in r) <= 10 for r in rows)
    assert len(rows) == 4  # 37 tokens need at least 4 rows of 10
    with pytest.raises(ValueError):
        pack_first_fit([11], 10)


def test_plan_splits_each_step_over_ranks_and_fills_the_last_step():
    plan = Plan(n_rows=10, global_batch=4, micro_batch=1, world_size=2, epochs=2, seed=3)
    assert (plan.steps_per_epoch, plan.total_steps, plan.accumulation) == (3, 6, 2)
    step = plan.step_rows(1)
    mine = [r for mb in plan.micro_batches(1, 0) for r in mb]
    theirs = [r for mb in plan.micro_batches(1, 1) for r in mb]
    assert sorted(mine + theirs) == sorted(step)
    first_epoch = [r for s in range(3) for r in plan.step_rows(s)]
    assert set(first_epoch) == set(range(10))  # the last step wraps around to the start
    assert plan.epoch_order(0) != plan.epoch_order(1)
    assert plan.step_rows(4) == Plan(10, 4, 1, 2, 2, 3).step_rows(4)  # pure in (seed, step)


def test_labels_cover_only_the_assistant_turn(tiny):
    _, tok = tiny
    ids, labels = tokenize_example(tok, "Add two numbers.", "print(1 + 2)")
    start = next(i for i, x in enumerate(labels) if x != IGNORE)
    assert tok.decode(ids[start:]).startswith("print(1 + 2)")
    assert "Add two numbers." in tok.decode(ids[:start])
    assert labels[start:] == ids[start:]
