"""What the four LLM synthesis stages (features, evolve, tasks, solutions) share.

- ``open_client(ctx, section, stage)``: the stage's LLM client, with the run's response cache
  (a file of its own per shard, so shards on several nodes never share a writable SQLite file)
  and, for a vLLM endpoint, a tensor-parallel size from the GPUs the stage's placement gives it.
- ``ask_json(client, requests, retries=..., check=...)``: one batch of requests whose answers
  must be JSON. Each answer goes through ``engine.synth.json_repair``; one that is not valid
  JSON even after repair, or that ``check`` refuses (the stage's shape check: an answer is
  recorded "ok" only when it passes), is asked again as a *new sample* (the next
  ``sample_index``, so it is a different draw and is cached on its own) up to ``retries``
  times; one cut off at ``max_tokens`` with twice the budget, up to the endpoint's limit for
  that prompt (``ChatResult.max_tokens_limit``), and at that limit it is rejected at once.
  A call that fails after the client's transport retries (timeouts, 5xx, 429s) is not
  asked again here: the item is left for a rerun, which repeats only that call.
- ``SynthTally``: counts shared by the stages, and the ``synth/...`` metrics made from them;
  ``item_totals``: what the store holds for a stage over all attempts, for its summary.
- ``run_pipeline_items(client, items, first, then, commit, ...)``: the LLM work of a stage
  as a stream of items, each asking one or more rounds of requests (a JSON retry, a second
  step) and ending in a value that ``commit`` writes. See its docstring.

Not a stage: nothing here is listed in ``engine.runner.IMPLEMENTED``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from engine.synth.json_repair import parse_json_reply, reason_code

if TYPE_CHECKING:
    from engine.context import StageContext


def open_client(ctx: StageContext, section: Any, stage: str) -> Any:
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
    budget: int | None = None  # max_tokens raised after a cut-off answer; retries keep it

    @property
    def ok(self) -> bool:
        return self.error is None


def recorded_items(store: Any, out: Any, stage: str) -> set[str]:
    """Items of ``stage`` with a record in the store or, for a shard, in its own file."""
    return store.done_items(stage) | (out.done_items(stage) if out is not store else set())


def item_totals(store: Any, out: Any, stage: str,
                items: set[str] | None = None) -> tuple[Counter, Counter]:
    """(records by status, rejections by reason code) of ``stage`` over all its attempts,
    from the store and, for a shard, its own file; only ``items`` when given. Summaries
    use these: the counts of a resumed run's last attempt alone would mislead."""
    records = store.item_statuses(stage)
    if out is not store:
        records.update(out.item_statuses(stage))
    statuses, rejects = Counter(), Counter()
    for item, (status, code) in records.items():
        if items is None or item in items:
            statuses[status] += 1
            if status == "rejected":
                rejects[code] += 1
    return statuses, rejects


def is_transient(error_kind: str | None) -> bool:
    """A failure a later rerun may not see (timeouts, dropped connections, 429, 5xx, a broken
    reply) rather than one about the request itself (400: e.g. a prompt over the context)."""
    if error_kind == "bad_request":  # an in-process backend refused this request itself
        return False
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


def json_round(answer: JSONAnswer, request: Any, result: Any, *, retries: int,
               tally: SynthTally, check: Check | None = None, expect: type = dict) -> Any:
    """Fold one answer to ``request`` into ``answer``. -> the retry request (the next
    sample of the original request; after a cut-off answer with a larger ``max_tokens``)
    while the answer is unusable and retries are left, else None (``answer`` is final: ok,
    rejected, or ``llm_failed``)."""
    answer.samples += 1
    if not result.ok:
        tally.llm_failed += 1
        answer.llm_failed = is_transient(result.error)
        answer.error = f"llm_{result.error}: {result.error_detail or 'no detail'}"
        return None  # the client retried transport errors already
    answer.raw, answer.truncated = result.text, result.truncated
    parsed = parse_json_reply(result.text, expect=expect)
    tally.json_answers += 1
    problem = parsed.error
    if problem is None and check is not None:
        problem = check(parsed.value)
    if problem is None:
        tally.json_repaired += bool(parsed.repairs)
        answer.value, answer.error, answer.repairs = parsed.value, None, parsed.repairs
        return None
    tally.json_failed += 1
    at_limit = False
    if parsed.error is not None and result.truncated:
        # Cut off: ask again with twice the budget, up to what the endpoint's context leaves
        # after the prompt (the same budget would be cut again); at that limit, reject.
        sent = result.max_tokens_sent or answer.budget or request.max_tokens
        limit = result.max_tokens_limit
        at_limit = limit is not None and sent >= limit
        if at_limit:
            problem = (f"truncated: the answer filled the {limit} tokens the endpoint's "
                       f"context leaves after this prompt ({parsed.error})")
        else:
            where = f", below the endpoint's limit of {limit} for this prompt" if limit else ""
            problem = f"truncated: the answer hit max_tokens={sent}{where} ({parsed.error})"
        if not at_limit:
            answer.budget = min(2 * sent, limit) if limit else 2 * sent
    elif reason_code(problem) == "truncated":
        # The model stopped on its own: an unclosed string or bracket is a broken answer
        # (a missing quote, say), not a cut-off one.
        problem = "invalid: " + problem.partition(": ")[2]
    answer.error = problem
    if answer.samples > retries or at_limit:
        return None
    return replace(request, sample_index=request.sample_index + answer.samples,
                   max_tokens=answer.budget or request.max_tokens)


def ask_json(client: Any, requests: Sequence[Any], *, retries: int, tally: SynthTally,
             check: Check | None = None, checks: Sequence[Check | None] | None = None,
             expect: type = dict) -> list[JSONAnswer]:
    """One final answer per request, in order, asking again in rounds (see ``json_round``).
    ``checks``: one check per request (what is usable depends on what was asked), instead
    of the one ``check`` for all."""
    from engine.llm import run_batch

    if checks is not None and len(checks) != len(requests):
        raise ValueError(f"{len(checks)} checks for {len(requests)} requests")
    answers = [JSONAnswer() for _ in requests]
    asking = list(enumerate(requests))
    while asking:
        results = run_batch(client, [req for _, req in asking])
        again = []
        for (i, _), result in zip(asking, results, strict=True):
            retry = json_round(answers[i], requests[i], result, retries=retries, tally=tally,
                               check=checks[i] if checks is not None else check,
                               expect=expect)
            if retry is not None:
                again.append((i, retry))
        asking = again
    return answers


# ---------------------------------------------------------------------------------------------
# Items through the LLM, streamed


T = TypeVar("T")


@dataclass(frozen=True)
class Done(Generic[T]):
    """What ``then`` returns when an item needs no more requests: ``value`` goes to commit."""

    value: T


@dataclass
class PipelineOutcome:
    committed: int = 0  # items whose value was committed (in item order)
    interrupted: bool = False  # the stop flag ended it before every item was done


def pipeline_width(client: Any, requests_per_item: int) -> tuple[int, bool]:
    """(items in flight, overlap) that keep a backend busy.

    HTTP: items for 8x the endpoint's concurrency, and calls overlap so a slow answer never
    holds up the others (the session's slots bound what is sent at once). 8x, not 2x: an
    item whose other answers are in waits on its slowest one, and those waiting items must
    not use up the window (tests/bench/synth_pipeline.py: 0.60 of ideal at 2x, 0.95 at 8x on
    log-normal delays). In-process backends (vLLM, transformers) run one call at a time
    anyway; they get big waves instead.
    """
    per_item = max(requests_per_item, 1)
    endpoint = getattr(client, "endpoint", None)
    if getattr(client, "backend", None) == "openai":
        slots = getattr(endpoint, "max_concurrency", 64)
        return max(8 * slots // per_item, 16), True
    width = getattr(endpoint, "max_num_seqs", None) or 4 * getattr(endpoint, "batch_size", 16)
    return max(2 * width // per_item, 4), False


def run_pipeline_items(
    client: Any, items: Sequence[Any], *,
    first: Callable[[Any], list[Any]],
    then: Callable[[Any, list[Any]], list[Any] | Done],
    commit: Callable[[Any, Any], None],
    stop: Callable[[], bool],
    width: int, overlap: bool, tick_s: float = 1.0,
) -> PipelineOutcome:
    """Stream ``items`` through the LLM; commit each one's result in item order.

    ``first(item)`` gives an item's first requests; when all of them are answered,
    ``then(item, results)`` returns the next round's requests (a retry, a second step) or
    ``Done(value)``; ``commit(item, value)`` writes it. Commits happen in the order of
    ``items`` (an item done early waits for the ones before it), so the store's ids and
    rows are the same on every run whatever the order answers arrive in.

    At most ``width`` items are in flight. With ``overlap`` (HTTP) requests that become ready
    are sent at least every ``tick_s`` in a new call while earlier calls still run, so a slow
    answer holds up only its own item; without it (in-process backends) one call runs at a
    time with every request that is ready (a wave). When ``stop()`` turns true, no new item
    starts and calls in flight are cancelled: answers already received are in the response
    cache, so a rerun repeats none of them. Runs its own event loop, like ``run_batch``.
    """
    return asyncio.run(_pipeline(client, items, first, then, commit, stop, width, overlap,
                                 tick_s))


async def _pipeline(client, items, first, then, commit, stop, width, overlap, tick_s):
    out = PipelineOutcome()
    pending: list[tuple[int, int, Any]] = []  # (item, slot, request) ready to send
    waves: dict[int, list[Any]] = {}  # item -> results of its current round
    finished: dict[int, Any] = {}  # item -> value, waiting for the items before it
    calls: set[asyncio.Task] = set()
    state = {"next": 0, "active": 0, "commit": 0, "last_call": 0.0}

    def start_round(i: int, reqs: list[Any]) -> None:
        if not reqs:
            raise ValueError(f"item {i}: a round needs at least one request (or Done)")
        waves[i] = [None] * len(reqs)
        pending.extend((i, k, r) for k, r in enumerate(reqs))

    def deliver(i: int, k: int, result: Any) -> None:
        wave = waves[i]
        wave[k] = result
        if any(r is None for r in wave):
            return
        del waves[i]
        nxt = then(items[i], wave)
        if not isinstance(nxt, Done):
            start_round(i, nxt)
            return
        state["active"] -= 1
        finished[i] = nxt.value
        while state["commit"] in finished:
            j = state["commit"]
            commit(items[j], finished.pop(j))
            state["commit"] += 1
            out.committed += 1

    def send() -> None:
        batch = pending[:]
        pending.clear()

        def on_result(j: int, result: Any) -> None:
            i, k, _ = batch[j]
            deliver(i, k, result)

        calls.add(asyncio.ensure_future(client.generate([r for *_, r in batch],
                                                        on_result=on_result)))
        state["last_call"] = time.monotonic()

    try:
        while True:
            while (not stop() and state["next"] < len(items) and state["active"] < width):
                i = state["next"]
                state["next"] += 1
                state["active"] += 1
                start_round(i, first(items[i]))
            if stop():
                out.interrupted = state["commit"] < len(items)
                break
            due = overlap and time.monotonic() - state["last_call"] >= tick_s
            if pending and (not calls or due):
                send()
            if not calls:
                if pending:
                    continue
                break  # everything committed
            timeout = tick_s if overlap and pending else 0.25
            done, _ = await asyncio.wait(calls, timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
            for call in done:
                calls.discard(call)
                call.result()  # a fatal LLMError or a bug in then/commit: raise it here
    finally:
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)
        await client.aclose()
    return out


class Pacer:
    """Progress and metric events for a streamed stage: at most one pair per ``every_s``
    (and always for the last item), so 200k small items do not flood the event stream."""

    def __init__(self, events: Any, total: int, unit: str, every_s: float = 2.0) -> None:
        self.events, self.total, self.unit, self.every_s = events, total, unit, every_s
        self._last = 0.0
        events.progress(0, total, unit=unit)

    def tick(self, done: int, metrics: Callable[[], dict[str, float]], *,
             ok: int | None = None, rejected: int | None = None) -> bool:
        """Emit if due; True when it did (the caller may add a sample event then). ``done``
        counts items processed; ``ok`` / ``rejected``: how many of them were kept / refused."""
        now = time.monotonic()
        if done < self.total and now - self._last < self.every_s:
            return False
        self._last = now
        self.events.progress(done, self.total, unit=self.unit, ok=ok, rejected=rejected)
        self.events.metric(done, metrics())
        return True


def stream_stage_items(ctx: StageContext, section: Any, stage: str, items: Sequence[Any], *,
                       requests_per_item: int, first: Callable[[Any], list[Any]],
                       then: Callable[[Any, list[Any]], list[Any] | Done],
                       commit: Callable[[Any, Any], None]) -> tuple[PipelineOutcome, Counter]:
    """A stage's items through its LLM: the client (``open_client``), the window
    (``pipeline_width``), ``run_pipeline_items`` with the stage's stop flag, the client
    closed. -> (outcome, transport errors by kind, for ``deferred_error``)."""
    if not items:
        return PipelineOutcome(), Counter()
    client = open_client(ctx, section, stage)
    try:
        width, overlap = pipeline_width(client, requests_per_item)
        outcome = run_pipeline_items(client, items, first=first, then=then, commit=commit,
                                     stop=ctx.stop_requested, width=width, overlap=overlap)
    finally:
        errors = client.stats.errors.copy()
        client.close()
    return outcome, errors
