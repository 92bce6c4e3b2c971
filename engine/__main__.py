"""The engine's command line. This surface is relied on by the desktop app and by users.

    python -m engine validate CONFIG [KEY=VALUE ...] [--json]
    python -m engine run --config CONFIG --run-dir DIR [--stages a,b] [--shard I/N]
                         [--retry-rejected REASON] [KEY=VALUE ...]
    python -m engine status --run-dir DIR
    python -m engine merge --run-dir DIR --stage verify [--shards N]   # fold shard files into the store
    python -m engine doctor [--work-dir DIR]
    python -m engine check-llm --config CONFIG NAME [--json]   # test one llms: endpoint from here
    python -m engine verify-folder PATH [--json OUT] [--jobs N] [--time-limit S] [--memory-mb MB]
    python -m engine query STORE [--request JSON]   # one data-browser request (JSON on stdin)
    python -m engine export-metrics RUN_DIR [--csv PATH] [--tensorboard DIR]  # metrics out

Exit codes: 0 ok; 1 a stage failed (its reason is in state.json and the stage's log);
2 bad input (every problem listed, no traceback); 143 interrupted by SIGTERM/SIGINT after
saving (rerun the same command to resume). ``query`` exits 0 or 1 with its JSON answer
(engine/store_rpc.py).

Imports are lazy: ``query`` runs once per page of the desktop's data browser, so it starts
without pydantic or the config schema (a third of a second saved per page).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.schema import PipelineConfig

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    v = sub.add_parser("validate", help="check a config; list every problem")
    v.add_argument("config", help="pipeline config YAML")
    v.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. sft.lr=1e-5")
    v.add_argument("--json", action="store_true", help="print the summary as JSON")

    r = sub.add_parser("run", help="run the enabled stages in a run dir (resumes)")
    r.add_argument("--config", required=True, help="pipeline config YAML")
    r.add_argument("--run-dir", required=True, help="run directory (created if missing)")
    r.add_argument("--stages", help="comma-separated subset, e.g. seeds,features")
    r.add_argument("--update-config", action="store_true",
                   help="accept a config that differs from the one the run was launched with")
    r.add_argument("--shard", metavar="I/N",
                   help="run shard I of N (I from 0) of shardable stages, e.g. --stages verify "
                   "--shard 0/4; shards record their own state (engine/runner.py)")
    r.add_argument("--retry-rejected", action="append", default=[], metavar="REASON",
                   help="ask again the items rejected with this reason code (the part before "
                   "':', e.g. llm_http_400 or truncated; repeatable), e.g. after fixing the "
                   "config with --update-config; completed stages from the first one with "
                   "such items run again")
    r.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="e.g. sft.lr=1e-5")

    m = sub.add_parser("merge", help="fold the shard files of a sharded stage (all shards "
                       "completed) into the run's store, then mark the stage completed; the "
                       "last shard does this itself, so use it e.g. as a Slurm dependency job")
    m.add_argument("--run-dir", required=True)
    m.add_argument("--stage", required=True, help="a shardable stage, e.g. verify or tests")
    m.add_argument("--shards", type=int, metavar="N",
                   help="the N of --shard I/N (default: read from state.json)")

    s = sub.add_parser("status", help="state.json plus event counts, as JSON")
    s.add_argument("--run-dir", required=True)

    d = sub.add_parser("doctor", help="facts about this host, as JSON")
    d.add_argument("--work-dir", default=".", help="where runs will live (for free disk)")
    d.add_argument("--config", help="a pipeline config: each enabled stage's needs as it is "
                   "configured (stages.*.missing), not every option's")

    c = sub.add_parser("check-llm", help="test one LLM endpoint of a config from this host: "
                       "reachability, model, context length, a 1-token completion, the key's "
                       "presence (engine/llm/endpoint_check.py); exit 1 on a problem")
    c.add_argument("--config", required=True, help="pipeline config YAML")
    c.add_argument("name", help="an endpoint's key in the config's llms:")
    c.add_argument("--json", action="store_true", help="print the report as JSON")

    from engine.verify.folder import add_arguments as verify_folder_arguments

    f = sub.add_parser("verify-folder", help="vote labels and pick golden solutions for a "
                       "folder of tasks (engine/verify/folder.py)")
    verify_folder_arguments(f)

    from engine.store_rpc import add_arguments as query_arguments

    q = sub.add_parser("query", help="answer one data-browser request (JSON on stdin) about a "
                       "store and its run's rollouts, read-only (engine/store_rpc.py)")
    query_arguments(q)

    from engine.metrics_export import add_arguments as export_metrics_arguments

    x = sub.add_parser("export-metrics", help="write a run's metrics (its event files) as a "
                       "tidy CSV and/or TensorBoard files; rerunning replaces them "
                       "(engine/metrics_export.py)")
    export_metrics_arguments(x)
    return p


def _summary(cfg: PipelineConfig, source: str) -> dict:
    by_place: dict[str, list[str]] = {}
    for name in cfg.enabled_stages():
        by_place.setdefault(cfg.stage(name).placement, []).append(name)
    return {"config": source, "schema_version": cfg.schema_version,
            "enabled_stages": cfg.enabled_stages(), "placements": by_place}


def cmd_validate(args: argparse.Namespace) -> int:
    from engine.schema import load_config

    cfg = load_config(args.config, args.overrides)
    info = _summary(cfg, args.config)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"OK: {args.config} (schema v{cfg.schema_version})")
    print("  stages: " + " -> ".join(info["enabled_stages"]))
    for place, names in info["placements"].items():
        parts = []
        for n in names:
            res = cfg.stage(n).resources
            gpus = f" {res.nodes}x{res.gpus_per_node} GPU" if res.gpus_per_node else ""
            parts.append(n + gpus)
        print(f"  on {place}: {', '.join(parts)}")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from engine.rundir import RunDir
    from engine.runner import PipelineRefused, parse_shard, run_pipeline
    from engine.schema import dump_config, load_config

    cfg = load_config(args.config, args.overrides)
    stages = [s.strip() for s in args.stages.split(",") if s.strip()] if args.stages else None
    try:
        shard_index, shard_count = parse_shard(args.shard) if args.shard else (0, 1)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return run_pipeline(cfg, dump_config(cfg), RunDir(args.run_dir), stages,
                            allow_config_change=args.update_config,
                            shard_index=shard_index, shard_count=shard_count,
                            retry_rejected=args.retry_rejected)
    except PipelineRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE


def cmd_merge(args: argparse.Namespace) -> int:
    from engine.rundir import RunDir, RunDirError
    from engine.runner import PipelineRefused, merge_stage

    run = RunDir(args.run_dir)
    if not run.root.is_dir():
        raise RunDirError(f"no run dir at {run.root}; check the path")
    try:
        summary = merge_stage(run, args.stage, args.shards)
    except PipelineRefused as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({"stage": args.stage, "merged": summary["merged"]}, indent=2))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from engine.events import count_events
    from engine.rundir import RunDir, RunDirError

    run = RunDir(args.run_dir)
    if not run.root.is_dir():
        raise RunDirError(f"no run dir at {run.root}; check the path (runs are created by "
                          "`python -m engine run`)")
    state = run.read_state()
    out = {"run_dir": str(run.root.resolve()), "state": state.model_dump(mode="json"),
           "events": count_events(run.events_dir) if run.events_dir.is_dir() else {}}
    print(json.dumps(out, indent=2))
    return 0


def cmd_doctor(args: argparse.Namespace) -> int:
    from engine.doctor import collect

    config = None
    if args.config:
        from engine.schema import load_config

        config = load_config(args.config)
    print(json.dumps(collect(args.work_dir, config), indent=2))
    return 0


def cmd_check_llm(args: argparse.Namespace) -> int:
    from engine.llm import LLMError
    from engine.llm.endpoint_check import check_endpoint
    from engine.schema import load_config

    cfg = load_config(args.config)
    if args.name not in cfg.llms:
        print(f"error: {args.config} has no endpoint {args.name!r} under llms: (it has "
              f"{', '.join(sorted(cfg.llms)) or 'none'})", file=sys.stderr)
        return EXIT_USAGE
    try:
        report = check_endpoint(cfg.llms[args.name], args.name)
    except LLMError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=True))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else 1


def cmd_verify_folder(args: argparse.Namespace) -> int:
    from engine.verify.folder import run_from_args

    return run_from_args(args)


def cmd_query(args: argparse.Namespace) -> int:
    from engine.store_rpc import run_from_args

    return run_from_args(args)


def cmd_export_metrics(args: argparse.Namespace) -> int:
    from engine.metrics_export import main as export_main

    return export_main(args)


COMMANDS = {"validate": cmd_validate, "run": cmd_run, "merge": cmd_merge, "status": cmd_status,
            "doctor": cmd_doctor, "check-llm": cmd_check_llm, "verify-folder": cmd_verify_folder,
            "query": cmd_query, "export-metrics": cmd_export_metrics}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["query"]:  # before _parser(): it imports the config schema (pydantic)
        from engine.store_rpc import main as query_main

        return query_main(argv[1:])
    from engine.rundir import RunDirError
    from engine.schema import ConfigError

    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return COMMANDS[args.command](args)
    except ConfigError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    except RunDirError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE


def run_stage_alone(stage: str, argv: Sequence[str] | None = None) -> int:
    """``python -m engine.stages.<stage> ARGS`` = ``python -m engine run ARGS --stages <stage>``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--stages" not in args and not any(a.startswith("--stages=") for a in args):
        args += ["--stages", stage]
    return main(["run", *args])


if __name__ == "__main__":
    sys.exit(main())
