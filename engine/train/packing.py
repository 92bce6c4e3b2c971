"""Sequence packing for SFT: several tokenized examples per row, attending only within each.

Restarting ``position_ids`` per document is NOT enough to keep documents apart: transformers'
sdpa, eager and flex paths still attend across them (measured in ../shared/notes/gpu-recipes.md
and proved by tests/engine/train/test_packing.py). Every row therefore carries ``doc_ids``
(one id per token; padding gets -1), and the attention sees one of:

- ``sdpa``: an explicit 4D block-diagonal causal boolean mask ``[B, 1, L, L]`` (True = attend),
  which transformers passes through as it is. Memory is L^2 bools per row (1 GiB at 32k): use
  ``flex`` or flash-attention for long rows.
- ``flex``: a FlexAttention ``BlockMask`` built from the same rule; it skips the empty blocks.
- ``flash_attention_2``: no mask; the micro-batch is flattened into one row and flash-attn's
  varlen kernel finds the documents from the restarting ``position_ids`` (transformers turns
  them into ``cu_seqlens``). Needs the ``flash-attn`` package.

Padding tokens form their own causal block (id -1), so no query row is fully masked (which
would give NaN in sdpa); their labels are -100, so they never reach the loss.

Functions here are pure (plain lists in, tensors out) so the tests can check them directly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

IGNORE = -100  # the label that transformers' loss skips
PAD_DOC = -1


def pack_first_fit(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of examples grouped into rows of at most ``capacity`` tokens.

    First-fit decreasing: longest first, each into the first row with room. Deterministic
    (ties broken by index) so every rank and every resumed run builds the same rows.
    Every length must be <= capacity (the caller drops longer examples).
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rows: list[list[int]] = []
    room: list[int] = []
    for i in order:
        n = lengths[i]
        if n > capacity:
            raise ValueError(f"example {i} has {n} tokens, more than the row capacity {capacity}")
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(i)
                room[r] -= n
                break
        else:
            rows.append([i])
            room.append(capacity - n)
    return rows


@dataclass
class Batch:
    """One micro-batch as tensors; ``tokens`` counts real (non-padding) tokens."""

    input_ids: Any  # [B, L] long
    labels: Any  # [B, L] long, IGNORE outside responses and on padding
    position_ids: Any  # [B, L] long, restarting at 0 per document
    doc_ids: Any  # [B, L] long, PAD_DOC on padding
    tokens: int
    padded_tokens: int  # B * L
    loss_tokens: int  # labels != IGNORE after the shift (what the loss averages over)


def collate(docs: Sequence[Sequence[tuple[Sequence[int], Sequence[int]]]], pad_id: int) -> Batch:
    """Rows of documents ``(input_ids, labels)`` -> a padded ``Batch`` (pad to the longest row).

    ``docs[r]`` is the list of documents packed in row ``r`` (one document per row without
    packing). Labels are not shifted here: the model's loss shifts them, and because each
    document starts with prompt tokens (label IGNORE), no token learns to predict the next
    document's first token.
    """
    import torch

    width = max(sum(len(ids) for ids, _ in row) for row in docs)
    n = len(docs)
    input_ids = torch.full((n, width), pad_id, dtype=torch.long)
    labels = torch.full((n, width), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((n, width), dtype=torch.long)
    doc_ids = torch.full((n, width), PAD_DOC, dtype=torch.long)
    tokens = 0
    for r, row in enumerate(docs):
        at = 0
        for d, (ids, lab) in enumerate(row):
            k = len(ids)
            input_ids[r, at:at + k] = torch.as_tensor(ids, dtype=torch.long)
            labels[r, at:at + k] = torch.as_tensor(lab, dtype=torch.long)
            position_ids[r, at:at + k] = torch.arange(k)
            doc_ids[r, at:at + k] = d
            at += k
        tokens += at
        # Padding: positions continue from 0 as one more "document" that nothing attends to.
        position_ids[r, at:] = torch.arange(width - at)
    loss_tokens = int((labels[:, 1:] != IGNORE).sum())
    return Batch(input_ids, labels, position_ids, doc_ids, tokens, n * width, loss_tokens)


def block_causal_mask(doc_ids: Any) -> Any:
    """``[B, L]`` document ids -> ``[B, 1, L, L]`` bool: query q sees key k iff same doc, k <= q."""
    import torch

    length = doc_ids.shape[1]
    same = doc_ids[:, :, None] == doc_ids[:, None, :]
    causal = torch.ones(length, length, dtype=torch.bool, device=doc_ids.device).tril()
    return (same & causal)[:, None, :, :]


def flex_block_mask(doc_ids: Any) -> Any:
    """The same rule as ``block_causal_mask`` as a FlexAttention ``BlockMask``."""
    from torch.nn.attention.flex_attention import create_block_mask

    batch, length = doc_ids.shape

    def mask_mod(b: Any, h: Any, q: Any, kv: Any) -> Any:
        return (doc_ids[b, q] == doc_ids[b, kv]) & (q >= kv)

    return create_block_mask(mask_mod, batch, None, length, length, device=doc_ids.device)


def model_inputs(batch: Batch, attention: str, device: Any) -> dict[str, Any]:
    """The keyword arguments for ``model(...)`` (without labels) for one attention kernel."""
    ids = batch.input_ids.to(device)
    pos = batch.position_ids.to(device)
    if attention == "flash_attention_2":
        # One long row: flash-attn varlen splits it at every position_ids restart.
        return {"input_ids": ids.reshape(1, -1), "position_ids": pos.reshape(1, -1)}
    docs = batch.doc_ids.to(device)
    mask = flex_block_mask(docs) if attention == "flex" else block_causal_mask(docs)
    return {"input_ids": ids, "position_ids": pos, "attention_mask": mask}


def model_labels(batch: Batch, attention: str, device: Any) -> Any:
    """Labels shaped like ``model_inputs``' ``input_ids``."""
    labels = batch.labels.to(device)
    return labels.reshape(1, -1) if attention == "flash_attention_2" else labels


def flex_supported(device: Any, *, training: bool = True) -> bool:
    """Whether FlexAttention runs a tiny masked call on ``device`` with this torch build;
    ``training``: forward AND backward (torch 2.13 has a CPU forward but no CPU backward, and
    a forward-only probe let ``attention: flex`` through on CPU to fail mid-step)."""
    try:
        import torch
        from torch.nn.attention.flex_attention import flex_attention

        q = torch.zeros(1, 1, 128, 16, device=device, requires_grad=training)
        docs = torch.zeros(1, 128, dtype=torch.long, device=device)
        out = flex_attention(q, q, q, block_mask=flex_block_mask(docs))
        if training:
            out.sum().backward()
        return True
    except Exception:  # any failure (no kernel, no compiler) means: not here
        return False
