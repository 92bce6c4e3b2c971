"""The LLM endpoints a config names under ``llms``: an OpenAI-compatible server, vLLM offline,
or transformers in process; never an API key, only the name of the variable that holds it.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    Field,
    field_validator,
)

from engine.schema.common import StrictModel, Text
from engine.schema.constants import ENV_VAR_PATTERN, URL_PATTERN
from engine.schema.problems import rule_error

# --- LLM endpoints

_SECRET_PREFIXES = (
    "sk-", "sk_", "hf_", "ghp_", "gho_", "ghs_", "github_pat_", "xoxb-", "xoxp-",
    "AIza", "gsk_", "pplx-", "nvapi-", "r8_", "eyJ", "Bearer ",
)
_AWS_KEY = re.compile(r"^(?:AKIA|ASIA)[0-9A-Z]{16}$")


def looks_like_secret(value: str) -> bool:
    if value.startswith(_SECRET_PREFIXES) or _AWS_KEY.match(value):
        return True
    # Long mixed-case-and-digit tokens are keys, not variable names.
    return len(value) >= 24 and bool(re.search(r"[a-z]", value)) and bool(
        re.search(r"[0-9]", value)) and not re.search(r"\s", value)


class OpenAIEndpoint(StrictModel):
    """An OpenAI-compatible HTTP server: vLLM or SGLang on a cluster, or any hosted API."""

    backend: Literal["openai"] = Field(
        "openai", title="Backend",
        description="OpenAI-compatible chat-completions API over HTTP.",
    )
    base_url: str = Field(
        ..., pattern=URL_PATTERN, max_length=2048, title="Base URL",
        description="URL of the API up to and including /v1, e.g. http://gpu-node-3:8000/v1.",
    )
    model: Text = Field(
        ..., title="Model",
        description="Model name the server expects in each request (for vLLM: the served "
        "model name, by default its path or Hugging Face id).",
    )
    api_key_env: str | None = Field(
        None, pattern=ENV_VAR_PATTERN, max_length=128, title="API key variable",
        description="Name of the environment variable that holds the API key on the machine "
        "running the stage (never the key itself); empty for local servers without a key.",
    )
    max_concurrency: int = Field(
        64, ge=1, le=4096, title="Max concurrent requests",
        description="Most requests in flight to this endpoint at once, over all stages.",
    )
    timeout_s: float = Field(
        600.0, ge=1.0, le=86_400.0, title="Request timeout",
        description="Seconds to wait for one reply, from when it is sent, before it counts as "
        "failed; long reasoning replies take minutes. Time waiting for a free slot (see "
        "parallel_slots) does not count.",
    )
    parallel_slots: int | None = Field(
        None, ge=1, le=4096, title="Server parallel slots",
        description="Requests the server works on at once (llama.cpp's --parallel, vLLM's "
        "--max-num-seqs). At most min(this, max_concurrency) requests are sent at once, so "
        "none waits in the server's queue while its timeout runs. Empty: the number the server "
        "reports (llama.cpp's /props total_slots), else max_concurrency.",
    )
    context_length: int | None = Field(
        None, ge=256, le=16_777_216, title="Context length",
        description="Tokens of prompt plus reply the server accepts. Empty: learned from the "
        "server (vLLM's max_model_len in /v1/models, llama.cpp's n_ctx in /props, or the "
        "message of a context-length 400). Each request's max_tokens is cut to what the "
        "context leaves after its prompt.",
    )
    reply_limit_param: Literal["auto", "max_tokens", "max_completion_tokens"] = Field(
        "auto", title="Reply limit parameter",
        description="Request field that carries the reply budget: max_tokens (vLLM, SGLang, "
        "llama.cpp), max_completion_tokens (OpenAI reasoning models), or auto: max_tokens, "
        "switching to max_completion_tokens when the server's 400 asks for it.",
    )
    max_retries: int = Field(
        5, ge=0, le=100, title="Max retries",
        description="Retries, with exponential backoff, after a timeout, a connection error "
        "or an HTTP 429/5xx.",
    )

    @field_validator("api_key_env", mode="before")
    @classmethod
    def _name_not_secret(cls, value: Any) -> Any:
        if isinstance(value, str) and looks_like_secret(value):
            raise rule_error([(
                "",
                "looks like an API key itself, not the name of an environment variable "
                "(the value is not shown)",
                "remove the key from the config (and rotate it if the file was shared), "
                "export it on the machine that runs the stage, e.g. "
                "`export OPENAI_API_KEY=...`, and set api_key_env: OPENAI_API_KEY",
            )])
        return value


class VLLMOfflineEndpoint(StrictModel):
    """vLLM loaded inside the stage's own process on the GPU nodes it runs on."""

    backend: Literal["vllm"] = Field(
        "vllm", title="Backend", description="vLLM offline engine in the stage's process.",
    )
    model: Text = Field(
        ..., title="Model", description="Local path or Hugging Face id of the model to load.",
    )
    tensor_parallel_size: int = Field(
        1, ge=1, le=64, title="Tensor parallel size",
        description="GPUs one model copy is split over.",
    )
    gpu_memory_utilization: float = Field(
        0.85, ge=0.1, le=0.99, title="GPU memory fraction",
        description="Share of each GPU's memory vLLM may take for weights and KV cache.",
    )
    max_model_len: int | None = Field(
        None, ge=256, le=1_048_576, title="Max model length",
        description="Longest prompt plus reply in tokens; empty uses the model's own limit.",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", title="Weights dtype",
        description="Number format of the weights; auto follows the model's config.",
    )
    max_num_seqs: int = Field(
        256, ge=1, le=65_536, title="Max sequences per batch",
        description="Most sequences vLLM decodes together in one batch.",
    )


class TransformersEndpoint(StrictModel):
    """Hugging Face transformers in-process: slow, for CPU smoke runs and tests."""

    backend: Literal["transformers"] = Field(
        "transformers", title="Backend",
        description="transformers generate() in the stage's process.",
    )
    model: Text = Field(
        ..., title="Model",
        description="Local path or Hugging Face id, or tiny-random for a tiny randomly "
        "initialised model built in memory (no download; smoke runs only).",
    )
    device: Literal["cpu", "cuda", "auto"] = Field(
        "auto", title="Device", description="Where the model runs; auto picks CUDA if present.",
    )
    dtype: Literal["auto", "bfloat16", "float16", "float32"] = Field(
        "auto", title="Weights dtype",
        description="Number format of the weights; auto is float32 on CPU, bfloat16 on GPU.",
    )
    max_new_tokens: int = Field(
        512, ge=1, le=1_048_576, title="Max new tokens",
        description="Upper cap on generated tokens per call; a stage's larger max_tokens is "
        "cut to this.",
    )
    batch_size: int = Field(
        4, ge=1, le=1024, title="Batch size", description="Prompts generated together.",
    )


LLMEndpoint = Annotated[
    OpenAIEndpoint | VLLMOfflineEndpoint | TransformersEndpoint, Field(discriminator="backend")
]


def default_llms() -> dict[str, Any]:
    # Two local vLLM servers on the default port and the next one: an instruct model for
    # features, evolution and statements, a long-CoT reasoning model for solutions and tests.
    # The model names are examples of the kind; set what your servers serve.
    return {
        "generator": OpenAIEndpoint(
            base_url="http://127.0.0.1:8000/v1", model="Qwen/Qwen3-235B-A22B-Instruct-2507"
        ),
        "solver": OpenAIEndpoint(
            base_url="http://127.0.0.1:8001/v1", model="deepseek-ai/DeepSeek-R1-0528"
        ),
    }


