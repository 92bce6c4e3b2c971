"""engine/train/portable.py: a checkpoint the sft/rl stages save reads the same in the
transformers 4.x that vLLM versions pin (issue 18, item 3).

    .venv/bin/python -m pytest tests/engine/train/test_portable_checkpoints.py -q

A tiny Qwen2 with a RoPE base of 1e6 (not the default 10000) is saved with the installed
transformers, made portable, and read back twice: with the field names 4.x reads (top-level
``rope_theta`` and ``rope_scaling``, a tokenizer class it knows) and with transformers itself.
"""

from __future__ import annotations

import json

import pytest

from engine.train.portable import make_portable, portable_config

transformers = pytest.importorskip("transformers")
pytest.importorskip("torch")

# How transformers 4.x resolves a tokenizer_class: a class it has (4.x has no
# TokenizersBackend); and how its Qwen2Config reads the RoPE base: config.json's rope_theta,
# 10000.0 when absent.
OLD_TOKENIZER_CLASSES = {"PreTrainedTokenizerFast", "Qwen2TokenizerFast", "LlamaTokenizerFast"}


def old_rope_theta(config: dict) -> float:
    return config.get("rope_theta", 10000.0)


@pytest.fixture
def saved(tmp_path):
    from engine.llm.transformers_local import build_tiny_random

    model, tok = build_tiny_random()
    model.config.rope_parameters = {"rope_theta": 1_000_000.0, "rope_type": "default"}
    folder = tmp_path / "final"
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def test_a_saved_checkpoint_reads_the_same_with_the_old_field_names(saved):
    before = json.loads((saved / "config.json").read_text())
    assert old_rope_theta(before) != 1_000_000.0 or "rope_parameters" not in before, (
        "transformers now writes rope_theta itself; this step may be unneeded")
    make_portable(saved)
    config = json.loads((saved / "config.json").read_text())
    assert old_rope_theta(config) == 1_000_000.0
    assert config["rope_scaling"] is None  # plain RoPE, as 4.x writes it
    tok = json.loads((saved / "tokenizer_config.json").read_text())
    assert tok["tokenizer_class"] in OLD_TOKENIZER_CLASSES
    assert "<|im_start|>" in tok["chat_template"]
    # and the installed transformers still reads it as before
    again = transformers.AutoConfig.from_pretrained(saved)
    params = getattr(again, "rope_parameters", None) or {"rope_theta": again.rope_theta}
    assert params["rope_theta"] == 1_000_000.0
    tokenizer = transformers.AutoTokenizer.from_pretrained(saved)
    assert tokenizer.decode(tokenizer.encode("print(1)")) == "print(1)"
    make_portable(saved)  # idempotent
    assert json.loads((saved / "config.json").read_text()) == config


def test_scaled_rope_keeps_its_kind_under_both_spellings():
    out = portable_config({"rope_parameters": {"rope_theta": 5e5, "rope_type": "yarn",
                                               "factor": 4.0}})
    assert out["rope_theta"] == 5e5
    assert out["rope_scaling"] == {"rope_type": "yarn", "type": "yarn", "factor": 4.0}
    old = {"rope_theta": 1e4, "rope_scaling": None}
    assert portable_config(old) == old  # already in the old form: unchanged
