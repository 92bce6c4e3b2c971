"""What the four LLM synthesis stages (features, evolve, tasks, solutions) share.

- ``open_client(ctx, section, stage)``: the stage's LLM client, with the run's response cache
  (a file of its own per shard, so shards on several nodes never share a writable SQLite file)
  and, for a vLLM endpoint, a tensor-parallel size from the GPUs the stage's placement gives it.
- ``ask_json(client, requests, retries=..., check=...)``: one batch of requests whose answers
  must be JSON. Each answer goes through ``engine.synth.json_repair``; one that is not valid
  JSON even after repair, or that ``check`` refuses, is asked again as a *new sample* (the next
  ``sample_index``, so it is a different draw and is cached on its own) up to ``retries``
  times. A call that fails after the client's transport retries (timeouts, 5xx, 429s) is not
  asked again here: the item is left for a rerun, which repeats only that call.
- ``SynthTally``: counts shared by the stages, and the ``synth/...`` metrics made from them.

Not a stage: nothing here is listed in ``engine.stages.IMPLEMENTED``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.synth.json_repair import parse_json_reply, reason_code


def open_client(ctx: Any, section: Any, stage: str) -> Any:
    """The LLM client for ``section.llm`` with the run's cache (one file per shard)."""
    from engine.llm import make_client

    i, n = ctx.shard_index, ctx.shard_count
    cache_name = "llm_responses.sqlite" if n == 1 else f"llm_responses.{stage}.{i}of{n}.sqlite"
    gpus = section.resources.gpus_per_node
    return make_client(ctx.config.llms[section.llm], name=section.llm,
                       cache_dir=ctx.run.cache_dir, cache_name=cache_name, events=ctx.events,
                       tensor_parallel=gpus or None)


@dataclass
class SynthTally:
    """What a synthesis stage counted; ``metrics()`` turns it into ``synth/...`` values."""

    json_answers: int = 0  # answers parsed as JSON (every sample, retries included)
    json_failed: int = 0  # of those: not JSON even after repair, or refused by the check
    json_repaired: int = 0  # of those: JSON only after a safe repair
    llm_failed: int = 0  # calls that failed after the client's own retries
    rejects: Counter = field(default_factory=Counter)  # final item rejections by reason code

    def reject(self, reason: str) -> None:
        self.rejects[reason_code(reason)] += 1

    def metrics(self, prefix: str = "synth") -> dict[str, float]:
        out = {
            f"{prefix}/json_fail_rate": self.json_failed / self.json_answers
            if self.json_answers else 0.0,
            f"{prefix}/json_repaired": float(self.json_repaired),
            f"{prefix}/llm_failed": float(self.llm_failed),
        }
        out.update({f"{prefix}/rejects/{k}": float(v) for k, v in sorted(self.rejects.items())})
        return out


@dataclass
class JSONAnswer:
    """The outcome of asking for one JSON answer."""

    value: Any = None  # the parsed (and checked) value; None unless ok
    error: str | None = None  # "<code>: <detail>" when not ok
    raw: str | None = None  # the last answer's text
    repairs: tuple[str, ...] = ()
    samples: int = 0  # answers asked for (1 + JSON retries used)
    llm_failed: bool = False  # the last call failed in transport: leave the item for a rerun
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def is_transient(error_kind: str | None) -> bool:
    """A failure a later rerun may not see (timeouts, dropped connections, 429, 5xx, a broken
    reply) rather than one about the request itself (400: e.g. a prompt over the context)."""
    if error_kind is None or not error_kind.startswith("http_"):
        return True
    code = error_kind.removeprefix("http_")
    return not code.isdigit() or int(code) >= 500 or int(code) in (408, 409, 425, 429)


def deferred_error(stage: str, deferred: int, total: int, what: str, errors: Counter) -> str:
    """The StageError text for items whose LLM calls failed in transport after retries."""
    kinds = ", ".join(f"{k} x{v}" for k, v in errors.most_common(5)) or "unknown"
    return (f"{deferred} of {total} {what} got no answer from the LLM after its retries "
            f"({kinds}); everything else is saved. Check the endpoint, then rerun the "
            f"{stage} stage: it asks again only for those (answers already received come "
            "from the cache)")


Check = Callable[[Any], str | None]  # value -> None if usable, else "<code>: <why>"


def ask_json(client: Any, requests: Sequence[Any], *, retries: int, tally: SynthTally,
             check: Check | None = None, expect: type = dict) -> list[JSONAnswer]:
    """One answer per request, in order (see the module docstring)."""
    from engine.llm import run_batch

    answers = [JSONAnswer() for _ in requests]
    pending = list(range(len(requests)))
    for attempt in range(retries + 1):
        if not pending:
            break
        batch = [replace(requests[i], sample_index=requests[i].sample_index + attempt)
                 for i in pending]
        again = []
        for i, result in zip(pending, run_batch(client, batch), strict=True):
            a = answers[i]
            a.samples += 1
            if not result.ok:
                tally.llm_failed += 1
                a.llm_failed = is_transient(result.error)
                a.error = f"llm_{result.error}: {result.error_detail or 'no detail'}"
                continue
            a.raw, a.truncated = result.text, result.truncated
            parsed = parse_json_reply(result.text, expect=expect)
            tally.json_answers += 1
            problem = parsed.error
            if problem is None and check is not None:
                problem = check(parsed.value)
            if problem is None:
                tally.json_repaired += bool(parsed.repairs)
                a.value, a.error, a.repairs = parsed.value, None, parsed.repairs
                continue
            tally.json_failed += 1
            if parsed.error is not None and result.truncated:
                problem = f"truncated: the answer hit max_tokens ({parsed.error})"
            elif reason_code(problem) == "truncated":
                # The model stopped on its own: an unclosed string or bracket is a broken
                # answer (a missing quote, say), not a cut-off one.
                problem = "invalid: " + problem.partition(": ")[2]
            a.error = problem
            again.append(i)
        pending = again
    return answers
