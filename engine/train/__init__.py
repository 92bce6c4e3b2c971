"""Training helpers for the SFT and RL stages (torch, transformers, DeepSpeed, TRL).

Modules import torch lazily or are only imported by the training stages, so ``import engine``
never needs the training stack. SFT: ``sft_data`` (rows, tokenizing, the seeded plan),
``packing`` (rows of several documents with per-document attention), ``checkpoints``
(resumable ``step-<N>`` folders). RL: ``rl_data``, ``reward``.
"""
