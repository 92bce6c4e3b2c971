"""The dataset card of a run's exports (``exports/README.md``), so the folder can go to a hub
as it is.

    text = render(config, curate_summary, seeds_in_store=120, files=["rl.parquet", ...])

The card is YAML front matter that the Hugging Face hub reads (``license`` from
``curate.dataset_license``, ``task_categories``, ``size_categories``, and ``configs`` whose
``data_files`` name the export files: config ``sft`` split ``train``; config ``rl`` splits
``train`` = rl.parquet and ``test`` = rl_val.parquet, the names ``extra_info.split`` uses),
then Markdown: counts, sources (seed files, the model of each synthesis stage), the
verification rule and its thresholds, decontamination and de-duplication with what they
removed, and the RL reward with how to use it in verl. Every value comes from the run's
config and curate's summary: nothing is measured here, and nothing varies between two
runs that export the same data (no dates, no absolute paths: a card does not leak where the
run lived).

Text that is not ours (file names, model ids, the run name) goes into the Markdown only as
inline code spans, which Markdown shows literally; the front matter is written by a YAML
dumper. Tables hold numbers only (a ``|`` in a name would split a table cell).

Leaves out: per-task statistics (difficulty, lengths, styles), the benchmark's own name or
version (only the file name is known), and a citation block.
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

import yaml

import engine
from engine.schema import RL_DATA_SOURCES

REWARD_MODULE = "engine/train/verl_reward.py"
SYNTH_STAGES = ("features", "evolve", "tasks", "solutions", "tests")
SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                   (1_000_000, "100K<n<1M"), (10_000_000, "1M<n<10M"))


def code(text: Any) -> str:
    """``text`` as a Markdown inline code span: shown literally, on one line."""
    s = " ".join(str(text).split()) or " "
    run = longest = 0
    for ch in s:
        run = run + 1 if ch == "`" else 0
        longest = max(longest, run)
    fence = "`" * (longest + 1)
    pad = " " if s.startswith("`") or s.endswith("`") else ""
    return f"{fence}{pad}{s}{pad}{fence}"


def size_category(n: int) -> str:
    for limit, name in SIZE_CATEGORIES:
        if n < limit:
            return name
    return "n>10M"


def front_matter(config: Any, summary: dict, files: list[str]) -> dict[str, Any]:
    """The hub's metadata: licence, categories, and which file is which split."""
    cur = config.curate
    rl_train = summary["exported_rl"] - summary["exported_rl_val"]
    configs = []
    sft_file = next((f for f in ("sft.parquet", "sft.jsonl") if f in files), None)
    if sft_file:
        configs.append({"config_name": "sft", "default": True,
                        "data_files": [{"split": "train", "path": sft_file}]})
    rl_files = [{"split": "train", "path": "rl.parquet"}]
    if "rl_val.parquet" in files and summary["exported_rl_val"] > 0:
        rl_files.append({"split": "test", "path": "rl_val.parquet"})
    configs.append({"config_name": "rl", "data_files": rl_files})
    biggest = max(summary["exported_sft"], rl_train, 0)
    return {
        "license": cur.dataset_license,
        "pretty_name": f"SynthSmith {config.run.name}",
        "language": ["en"],
        "task_categories": ["text-generation"],
        "tags": ["code", "competitive-programming", "synthetic", "reinforcement-learning",
                 "synthsmith"],
        "size_categories": [size_category(biggest)],
        "configs": configs,
    }


def render(config: Any, summary: dict, *, seeds_in_store: int, files: list[str]) -> str:
    """The whole card: front matter, then the Markdown chapters."""
    meta = yaml.safe_dump(front_matter(config, summary, files), sort_keys=False,
                          allow_unicode=True, width=100)
    parts = [f"---\n{meta}---\n", _title(config), _counts(summary, seeds_in_store, files),
             _sources(config, seeds_in_store), _verification(config),
             _decontamination(config, summary), _reward(config), _licence(config)]
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Chapters


def _title(config: Any) -> str:
    return (f"# SynthSmith dataset {code(config.run.name)}\n\n"
            "Competitive-programming tasks synthesized by SynthSmith (the X-Coder recipe: "
            "features from seed problems, evolved, combined into new statements), each with "
            "candidate solutions and tests whose outputs the candidates voted on, and a golden "
            f"solution checked on held-out tests. Made by SynthSmith engine "
            f"{code(engine.__version__)} from run seed {config.run.seed}.\n")


def _counts(summary: dict, seeds_in_store: int, files: list[str]) -> str:
    rl_val = summary["exported_rl_val"]
    rl_train = summary["exported_rl"] - rl_val
    sft_names = ", ".join(code(f) for f in files if f.startswith("sft."))
    seeds = summary.get("seed_problems") or {}
    # Not summary["checked"]: a rerun checks only the tasks still accepted. Removals stay
    # recorded in the store, so this sum is the same on every run over the same store.
    accepted = summary["kept"] + summary["contaminated"] + summary["near_duplicates"]
    lines = [
        "## Counts\n",
        "| what | count |", "|---|---:|",
        f"| accepted tasks with a golden solution | {accepted} |",
        f"| tasks kept after curation | {summary['kept']} |",
        f"| removed as contaminated | {summary['contaminated']} |",
        f"| removed as near duplicates | {summary['near_duplicates']} |",
        f"| accepted without a golden solution (left out) | "
        f"{summary['accepted_without_golden']} |",
        f"| kept tasks without a labelled test (SFT only) | {summary['rl_without_tests']} |",
        f"| seed problems in the store | {seeds_in_store} |",
        f"| seed problems exported (curate.include_seed_problems) | {seeds.get('kept', 0)} |",
        f"| SFT rows | {summary['exported_sft']} |",
        f"| RL training rows (`rl.parquet`, split `train`) | {rl_train} |",
        f"| RL validation rows (`rl_val.parquet`, split `test`) | {rl_val} |",
        "",
        f"Files: {sft_names or 'no SFT file'} (columns `query`, `response`, `messages`, "
        "`prompt`, `completion`); `rl.parquet` and `rl_val.parquet` (verl's columns "
        "`data_source`, `prompt`, `ability`, `reward_model`, `extra_info`; "
        "`reward_model.ground_truth` is JSON `{\"inputs\": [...], \"outputs\": [...]}`, "
        "stdin and expected stdout). The validation tasks are a seeded hash sample of the "
        "same synthetic distribution, never in the training file: a held-out check during RL, "
        "not a benchmark.\n",
    ]
    return "\n".join(lines)


def _sources(config: Any, seeds_in_store: int) -> str:
    lines = ["## Sources\n", f"Seed problems ({seeds_in_store} imported):"]
    for src in config.seeds.sources:
        limit = "" if src.limit is None else f", first {src.limit}"
        lines.append(f"- {code(PurePath(src.path).name)} (layout {code(src.layout)}{limit})")
    if not config.seeds.sources:
        lines.append("- none configured")
    if config.seeds.as_tasks:
        lines.append("\nThe seed problems were also imported as tasks (`seeds.as_tasks`): those "
                     "statements are not synthetic.")
    lines.append("\nModels, per synthesis stage (backend and model id):")
    for stage in SYNTH_STAGES:
        section = getattr(config, stage)
        endpoint = config.llms.get(section.llm)
        model = "not configured" if endpoint is None else \
            f"{code(endpoint.backend)} {code(endpoint.model)}"
        off = "" if section.enabled else " (stage disabled in this config)"
        lines.append(f"- {stage}: {code(section.llm)} = {model}{off}")
    return "\n".join(lines) + "\n"


def _verification(config: Any) -> str:
    sol, tests, ver = config.solutions, config.tests, config.verify
    tol = "text" if ver.float_tolerance is None else f"numbers within {ver.float_tolerance}"
    return "\n".join([
        "## Verification\n",
        f"- Candidates: {sol.candidates_per_task} solutions per task "
        f"({', '.join(code(x) for x in sol.languages)}).",
        f"- Test inputs: {tests.direct_inputs} written by the model plus {tests.generators} "
        f"generator programs x {tests.seeds_per_generator} seeds run in the sandbox, at most "
        f"{tests.max_tests_per_task} distinct inputs per task.",
        f"- Every candidate runs on every input in a sandbox (bubblewrap, no network): "
        f"{ver.time_limit_s:g} s CPU, {ver.memory_mb} MB, outputs compared "
        f"{code(ver.compare)} ({tol}).",
        f"- An input's label is the weighted majority output once {ver.min_candidates_voting} "
        f"candidates ran cleanly on it; an output holding {ver.exposure_share:g} of the vote "
        f"is trusted; a runner-up at {ver.split_ratio:g} of the winner's weight flags the "
        "input as split.",
        f"- A task is accepted with mean agreement >= {ver.min_agreement:g} and >= "
        f"{ver.min_labelled_tests} labelled tests; the golden solution is picked on the "
        f"labelled tests outside a held-out {ver.holdout_fraction:.0%} of them and must pass "
        f"{ver.holdout_min_pass:.0%} of the held-out ones"
        + (" (a coin-flip golden choice rejects the task)." if ver.reject_ambiguous_golden
           else "."),
        "- The exported tests are the labelled ones (stdin, majority stdout).\n",
    ])


def _decontamination(config: Any, summary: dict) -> str:
    cur = config.curate
    seeds = summary.get("seed_problems") or {}
    lines = ["## Decontamination and de-duplication\n"]
    if cur.decontaminate_file is None:
        lines.append("- **Not decontaminated**: no benchmark file was set "
                     "(`curate.decontaminate_file`). Check against your evaluation benchmark "
                     "before training a model you will evaluate.")
    else:
        bench = summary.get("benchmark") or {}
        lines.append(
            f"- Against {code(PurePath(cur.decontaminate_file).name)} "
            f"({bench.get('problems', '?')} benchmark problems): a statement sharing "
            f"{cur.decontam_min_matches} or more distinct word {cur.decontam_ngram_size}-grams "
            f"with one benchmark problem is removed; n-grams found in "
            f"{cur.decontam_boilerplate_problems} or more benchmark problems are stock "
            f"phrasing and do not count. Removed: {summary['contaminated']} tasks, "
            f"{seeds.get('contaminated', 0)} seed problems. Solutions are not checked.")
    lines.append(
        f"- Near duplicates: MinHash ({cur.num_perm} permutations) over word "
        f"{cur.ngram_size}-shingles of the statement; estimated Jaccard >= "
        f"{cur.dedup_threshold:g} to a kept task removes the later one. Removed: "
        f"{summary['near_duplicates']} tasks, {seeds.get('near_duplicates', 0)} seed problems.\n")
    return "\n".join(lines)


def _reward(config: Any) -> str:
    rl, cur, ver = config.rl, config.curate, config.verify
    rule = (f"{rl.reward_scale:g} x the share of sampled tests passed" if rl.reward == "fraction"
            else f"{rl.reward_scale:g} when every sampled test passes, else 0")
    kwargs = {"reward": rl.reward, "reward_tests_per_call": rl.reward_tests_per_call,
              "no_code_reward": rl.no_code_reward, "reward_scale": rl.reward_scale,
              "judge_time_limit_s": rl.judge_time_limit_s,
              "judge_memory_mb": rl.judge_memory_mb, "compare": ver.compare}
    overrides = "".join(f" \\\n    +custom_reward_function.reward_kwargs.{k}={v}"
                        for k, v in kwargs.items())
    builtin = [s for s in RL_DATA_SOURCES if s != "synthsmith"]
    lines = [
        "## RL reward\n",
        f"Every RL row has `data_source` {code(cur.rl_data_source)}. SynthSmith's reward (its "
        f"`rl` stage, and `compute_score` in {code(REWARD_MODULE)} of the SynthSmith engine): "
        f"an answer without exactly one parseable code block scores {rl.no_code_reward:g}; "
        f"otherwise up to {rl.reward_tests_per_call} of the row's tests run in the sandbox "
        f"({rl.judge_time_limit_s:g} s CPU, {rl.judge_memory_mb} MB, outputs compared "
        f"{code(ver.compare)}) and the reward is {rule}. Python, or C++ when that is the only "
        "language in the answer.\n",
        "With verl (the engine folder on the training nodes; `compute_score_batch` with "
        "`reward_model.reward_manager=batch` judges a whole batch at once):\n",
        "```bash",
        "python3 -m verl.trainer.main_ppo \\",
        "    data.train_files=exports/rl.parquet data.val_files=exports/rl_val.parquet \\",
        f"    custom_reward_function.path=<synthsmith>/{REWARD_MODULE} \\",
        f"    custom_reward_function.name=compute_score{overrides}",
        "```\n",
        "The `reward_kwargs` repeat this run's `rl.*` and `verify.compare` settings; without "
        "them the module uses the config schema's defaults, and `SYNTHSMITH_RL_<NAME>` "
        "environment variables (e.g. `SYNTHSMITH_RL_JUDGE_TIME_LIMIT_S`) set them too. The "
        "score comes back as a dict: `score`, `acc` (1 when every sampled test "
        "passed), `passed`, `total`, `has_code`, `timeouts`.\n",
    ]
    if cur.rl_data_source == "synthsmith":
        lines.append(f"verl's built-in scorer does not know `synthsmith`: export with "
                     f"`curate.rl_data_source` one of {', '.join(code(s) for s in builtin)} "
                     "to train without the custom reward.\n")
    else:
        lines.append(f"verl's built-in `default_compute_score` also accepts "
                     f"{code(cur.rl_data_source)}: its `prime_code` scorer reads the same ground "
                     "truth and gives the pass fraction (0..1) over the first 10 tests, with "
                     "no penalty for a missing code block, running the code in the trainer's "
                     "own processes (not in SynthSmith's sandbox).\n")
    return "\n".join(lines)


def _licence(config: Any) -> str:
    lic = config.curate.dataset_license
    if lic == "other":
        note = ("No licence was chosen (`license: other`): set `curate.dataset_license` before "
                "publishing. The terms of the models that generated the statements, solutions "
                "and tests, and of the seed problems, apply to this data.")
    else:
        note = (f"Released as {code(lic)} (`curate.dataset_license`). The terms of the models "
                "that generated the data, and of the seed problems, may also apply.")
    return f"## Licence\n\n{note}\n"
