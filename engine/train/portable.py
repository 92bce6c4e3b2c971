"""Make a saved Hugging Face model folder readable by older transformers: ``make_portable``.

The sft and rl stages save with the installed transformers (5.x here). Many vLLM versions pin
transformers 4.x, which reads two things differently:

- RoPE: 5.x writes ``rope_parameters: {rope_theta, rope_type, ...}`` only; 4.x reads the
  top-level ``rope_theta`` (and ``rope_scaling``) and silently falls back to its default base
  (10000) when it is missing, so a model trained with base 1e6 would be served with the wrong
  positions. The top-level fields are written too, from ``rope_parameters``.
- The tokenizer class: 5.x writes ``tokenizer_class: TokenizersBackend``, a name 4.x does not
  know; ``PreTrainedTokenizerFast`` (the same ``tokenizer.json``) is known to both. A chat
  template kept only in ``chat_template.jinja`` is also copied into ``tokenizer_config.json``,
  where 4.x versions before the separate file look for it.

Run on a folder after ``save_pretrained`` and before it is published (renamed into place).
Idempotent; a folder already in the old form is left as it is. Leaves out: weights (their
names and dtypes are the same in both generations) and ``generation_config.json``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# tokenizer_class values of transformers 5 that 4.x cannot resolve, and what both read.
PORTABLE_TOKENIZER = "PreTrainedTokenizerFast"
NEW_ONLY_TOKENIZERS = frozenset({"TokenizersBackend"})


def portable_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config.json`` as a dict, with the RoPE fields 4.x reads added from ``rope_parameters``."""
    params = config.get("rope_parameters")
    if not isinstance(params, dict):
        return config
    out = dict(config)
    if "rope_theta" in params and "rope_theta" not in out:
        out["rope_theta"] = params["rope_theta"]
    if "rope_scaling" not in out:
        kind = params.get("rope_type", "default")
        scaling = {k: v for k, v in params.items() if k != "rope_theta"}
        # 4.x: None for plain RoPE; otherwise its dict names the kind under both spellings.
        out["rope_scaling"] = None if kind == "default" else {**scaling, "type": kind,
                                                              "rope_type": kind}
    return out


def portable_tokenizer_config(config: dict[str, Any], chat_template: str | None) -> dict[str, Any]:
    out = dict(config)
    if out.get("tokenizer_class") in NEW_ONLY_TOKENIZERS:
        out["tokenizer_class"] = PORTABLE_TOKENIZER
    if chat_template and "chat_template" not in out:
        out["chat_template"] = chat_template
    return out


def make_portable(folder: str | Path) -> None:
    """Rewrite ``config.json`` and ``tokenizer_config.json`` in ``folder`` (module docstring)."""
    folder = Path(folder)
    config = folder / "config.json"
    if config.is_file():
        _write_json(config, portable_config(json.loads(config.read_text())))
    tok = folder / "tokenizer_config.json"
    if tok.is_file():
        template = folder / "chat_template.jinja"
        text = template.read_text() if template.is_file() else None
        _write_json(tok, portable_tokenizer_config(json.loads(tok.read_text()), text))


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    tmp.replace(path)
