"""The ``synthsmith`` subcommands that need no display: clusters, launches, runs.

    synthsmith cluster add h200 --host login.h200 --user me --jump bastion --scheduler slurm \\
        --partition gpu --gpu-type H200 --activate 'source ~/venv/bin/activate'
    synthsmith cluster list | test NAME | remove NAME
    synthsmith launch CONFIG.yaml [--cluster NAME] [--stages a,b] [--preview] [KEY=VALUE ...]
    synthsmith runs
    synthsmith status RUN [--json]
    synthsmith tail RUN [--follow] [--logs]
    synthsmith cancel RUN | resume RUN
    synthsmith fetch RUN [--what exports|checkpoints|store] [--to DIR]

The same code the app uses (remote/): nothing here imports Qt. ``--ssh-config`` and
``--known-hosts`` (before the subcommand) point at other files than ~/.ssh's. An unknown host
key is shown with its fingerprint and accepted only when the user types ``yes`` (or passes
``--accept-fingerprint SHA256:...`` that matches it); never silently. Exit codes: 0 ok, 1 the
operation failed (the message says why and what to do), 2 bad usage (e.g. a run id that is
not a plain name).

Everything that came from a cluster (log lines, file names, reasons, job ids, event payloads,
error text) goes through ``remote.display_text`` before it is printed: terminal escapes, C1
controls and bidi overrides show as ``\\x1b``, ``\\x9b``, ``\\u202e``. ``status --json`` and
``tail``'s event lines stay exact JSON (unsafe characters as ``\\uXXXX`` escapes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

EXIT_FAILED = 1
EXIT_USAGE = 2


def _v(text: Any) -> str:
    """Text from a cluster (or a record or profile that holds some), safe to print."""
    from remote.display_text import visible

    return visible(text if isinstance(text, str) else str(text))


def add_commands(sub: Any) -> None:
    """Register the subcommands on ``build_parser``'s subparsers."""
    c = sub.add_parser("cluster", help="manage cluster profiles")
    csub = c.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    add = csub.add_parser("add", help="add (or --replace) a profile")
    add.add_argument("name")
    add.add_argument("--host", required=True, help="host name or ~/.ssh/config alias")
    add.add_argument("--port", type=int)
    add.add_argument("--user")
    add.add_argument("--identity-file")
    add.add_argument("--no-agent", action="store_true", help="do not use the SSH agent")
    add.add_argument("--jump", action="append", default=[], help="jump host (repeatable, "
                     "outermost first)")
    add.add_argument("--workdir", default="~/synthsmith")
    add.add_argument("--python", default="python3")
    add.add_argument("--activate", help="shell line that activates Python there")
    add.add_argument("--scheduler", choices=("direct", "slurm"), default="direct")
    add.add_argument("--partition")
    add.add_argument("--account")
    add.add_argument("--qos")
    add.add_argument("--default-time")
    add.add_argument("--sbatch", action="append", default=[], help="extra sbatch option, "
                     "e.g. --sbatch=--constraint=h200")
    add.add_argument("--gpu-type")
    add.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    add.add_argument("--replace", action="store_true")
    csub.add_parser("list", help="list profiles")
    test = csub.add_parser("test", help="connect, upload the engine, run its doctor")
    test.add_argument("name")
    test.add_argument("--config", help="check the stages of this pipeline config too")
    test.add_argument("--accept-fingerprint", metavar="SHA256:...",
                      help="accept an unknown host key only if it has this fingerprint")
    rm = csub.add_parser("remove", help="remove a profile")
    rm.add_argument("name")

    launch = sub.add_parser("launch", help="launch a pipeline onto its clusters")
    launch.add_argument("config")
    launch.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    launch.add_argument("--cluster", help="run every stage on this profile")
    launch.add_argument("--stages", help="comma-separated stages (default: enabled ones)")
    launch.add_argument("--run-id")
    launch.add_argument("--preview", action="store_true",
                        help="print the exact commands / sbatch scripts, send nothing")
    launch.add_argument("--no-preflight", dest="preflight", action="store_false",
                        help="skip checking each stage's needs on its cluster before launch")
    sub.add_parser("runs", help="runs launched from this computer")
    for name, text in (("status", "a run's segments, jobs and stages"),
                       ("cancel", "cancel a run's jobs"),
                       ("resume", "relaunch a run's unfinished part")):
        p = sub.add_parser(name, help=text)
        p.add_argument("run")
        if name == "status":
            p.add_argument("--json", action="store_true")
    tail = sub.add_parser("tail", help="print a run's events (and logs)")
    tail.add_argument("run")
    tail.add_argument("--follow", action="store_true", help="keep following until the run ends")
    tail.add_argument("--logs", action="store_true", help="stage logs instead of events")
    fetch = sub.add_parser("fetch", help="copy a run's outputs here")
    fetch.add_argument("run")
    fetch.add_argument("--what", choices=("exports", "checkpoints", "store"), default="exports")
    fetch.add_argument("--to", default=".")


COMMANDS = ("cluster", "launch", "runs", "status", "tail", "cancel", "resume", "fetch")


def run(args: argparse.Namespace) -> int:
    from engine.schema import ConfigError
    from remote.display_text import visible
    from remote.errors import RemoteError
    from remote.launch import LaunchError
    from remote.profiles import ProfileError

    handler: Callable[[argparse.Namespace], int] = globals()[f"cmd_{args.command}"]
    try:
        _check_run_ids(args)
    except ProfileError as e:
        print(f"synthsmith {args.command}: {visible(str(e))}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return handler(args)
    except (RemoteError, LaunchError, ProfileError, ConfigError, FileNotFoundError) as e:
        # Error text may quote what a cluster said: shown, never obeyed by the terminal.
        print(f"synthsmith {args.command}: {visible(str(e), keep_newlines=True)}",
              file=sys.stderr)
        return EXIT_FAILED
    except ValueError as e:  # a value refused deeper down: a message, never a traceback
        print(f"synthsmith {args.command}: {visible(str(e), keep_newlines=True)}",
              file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        return 130


# ---------------------------------------------------------------------------------------------
# Plumbing


# Profile fields and the `cluster add` options that set them, for error messages.
_PROFILE_OPTIONS = {"host": "--host", "port": "--port", "user": "--user",
                    "identity_file": "--identity-file", "jump": "--jump", "workdir": "--workdir",
                    "python": "--python", "activate": "--activate", "gpu_type": "--gpu-type",
                    "env": "--env", "slurm.partition": "--partition",
                    "slurm.account": "--account", "slurm.qos": "--qos",
                    "slurm.default_time": "--default-time", "slurm.extra": "--sbatch"}


def _check_run_ids(args: argparse.Namespace) -> None:
    """Run ids name folders here and on clusters: a plain name, checked before anything runs
    (``RUN`` of status/tail/cancel/resume/fetch, ``launch --run-id``)."""
    from remote.profiles import check_run_id

    if args.command in ("status", "tail", "cancel", "resume", "fetch"):
        check_run_id(args.run, field="RUN")
    if args.command == "launch" and args.run_id is not None:
        check_run_id(args.run_id, field="--run-id")


def _ssh_options(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if getattr(args, "ssh_config", None):
        out["ssh_config"] = args.ssh_config
    if getattr(args, "known_hosts", None):
        out["known_hosts"] = args.known_hosts
    return out


@contextlib.contextmanager
def _launcher(args: argparse.Namespace) -> Iterator[Any]:
    """A Launcher whose connections are closed when the command is done."""
    from remote.launch import Launcher, RunRegistry
    from remote.profiles import ProfileStore, runner_for

    options = _ssh_options(args)
    launcher = Launcher(ProfileStore(), RunRegistry(),
                        runner_factory=lambda profile: runner_for(profile, **options))
    try:
        yield launcher
    finally:
        launcher.close()


def _connect(runner: Any, args: argparse.Namespace,
             ask: Callable[[str], str] | None = None) -> None:
    """Connect; an unknown host key is shown and accepted only by the user."""
    ask = ask or input  # looked up now, not at import: a test can type the answer
    from remote.errors import HostKeyUnknown
    from remote.hostkeys import accept_host_key

    if not hasattr(runner, "connect"):
        return  # this computer
    for _ in range(4):  # the target and up to three jump hosts may each be new
        try:
            runner.connect()
            return
        except HostKeyUnknown as e:
            print(f"The host key of {_v(e.host)}:{_v(e.port)} is not known.\n"
                  f"  {_v(e.key_type)} {_v(e.fingerprint)}\n"
                  "Compare it with the fingerprint the cluster's admins publish.",
                  file=sys.stderr)
            wanted = getattr(args, "accept_fingerprint", None)
            if wanted:
                if wanted != e.fingerprint:
                    raise
            elif ask("Accept it and connect? Type yes to accept: ").strip().lower() != "yes":
                raise
            accept_host_key(runner.known_hosts_file, e.host, e.port, e.key)
            print(f"accepted; saved in {_v(runner.known_hosts_file)}", file=sys.stderr)
    runner.connect()


# ---------------------------------------------------------------------------------------------
# cluster


def cmd_cluster(args: argparse.Namespace) -> int:
    from remote.profiles import ClusterProfile, ProfileError, ProfileStore

    store = ProfileStore()
    action = args.cluster_command
    if action == "list":
        for p in store.list():
            print(_v(p.describe()))
        return 0
    if action == "remove":
        store.remove(args.name)
        print(f"removed {_v(args.name)}")
        return 0
    if action == "add":
        env = {}
        for item in args.env:
            key, sep, value = item.partition("=")
            if not sep:
                raise ProfileError(f"--env {item!r}: write KEY=VALUE")
            if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", key):
                raise ProfileError(f"--env {key!r}: a variable name is letters, digits and _, "
                                   "not starting with a digit (e.g. SLURM_CONF=/etc/slurm.conf)")
            env[key] = value
        from pydantic import ValidationError

        try:
            profile = ClusterProfile(
                name=args.name, host=args.host, port=args.port, user=args.user,
                identity_file=args.identity_file, use_agent=not args.no_agent, jump=args.jump,
                workdir=args.workdir, python=args.python, activate=args.activate,
                scheduler=args.scheduler, gpu_type=args.gpu_type, env=env,
                slurm={"partition": args.partition, "account": args.account, "qos": args.qos,
                       "default_time": args.default_time, "extra": args.sbatch})
        except ValidationError as e:
            err = e.errors()[0]
            loc = [str(x) for x in err["loc"]]
            where = ".".join(loc[:2] if loc[0] == "slurm" else loc[:1])
            option = _PROFILE_OPTIONS.get(where)
            where = f"{where} ({option})" if option else where
            msg = str(err["msg"]).removeprefix("Value error, ")
            raise ProfileError(f"profile {args.name!r}: {where}: {msg}") from None
        store.add(profile, replace=args.replace)
        print(f"saved {_v(profile.describe())} in {_v(store.path)}")
        return 0
    return _cluster_test(args, store)


def _cluster_test(args: argparse.Namespace, store: Any) -> int:
    from engine.schema import STAGE_ORDER, load_config
    from remote.bundle import sync_bundle
    from remote.doctor import remote_doctor, stage_problems, summary_lines
    from remote.profiles import runner_for

    profile = store.get(args.name)
    runner = runner_for(profile, **_ssh_options(args))
    try:
        started = time.monotonic()
        _connect(runner, args)
        print(f"connected to {_v(profile.describe())} in {time.monotonic() - started:.2f} s")
        for warning in getattr(runner, "known_hosts_warnings", []):
            print(f"  ! known_hosts line skipped: {_v(warning)}")
        report = sync_bundle(runner, profile.workdir)
        print(f"engine bundle {_v(report.digest[:12])}: {_v(report.uploaded)} files uploaded "
              f"({_v(report.bytes)} bytes), {_v(report.reused)} reused")
        facts = remote_doctor(runner, profile, report.bundle_dir)
        for line in summary_lines(facts):
            print("  " + _v(line))
        if args.config:
            config = load_config(args.config)
            stages = [s for s in STAGE_ORDER
                      if getattr(config, s).enabled and getattr(config, s).placement == args.name]
        else:
            config, stages = None, list(facts.get("stages", {}))
        problems = stage_problems(facts, config, stages, profile.name) if config else {
            s: [f"{s} needs {m} on {profile.name}" for m in v["missing"]]
            for s, v in facts.get("stages", {}).items() if v["missing"]}
        for lines in problems.values():
            for line in lines:
                print(f"  ! {_v(line)}")
        print("ready" if not problems else "ready, with the problems above for those stages")
        return 0
    finally:
        runner.close()


# ---------------------------------------------------------------------------------------------
# runs


def cmd_launch(args: argparse.Namespace) -> int:
    stages = args.stages.split(",") if args.stages else None
    with _launcher(args) as launcher:
        if args.preview:
            from remote.display_text import visible

            print(visible(launcher.preview(args.config, stages=stages, cluster=args.cluster,
                                           overrides=args.overrides), keep_newlines=True),
                  end="")
            return 0
        for seg in launcher.plan(args.config, stages=stages, cluster=args.cluster,
                                 overrides=args.overrides):
            _connect(launcher.runner(seg.cluster), args)
        record = launcher.launch(args.config, stages=stages, cluster=args.cluster,
                                 overrides=args.overrides, run_id=args.run_id,
                                 preflight=args.preflight)
    print(f"launched {_v(record.run_id)}")
    for seg in record.segments:
        jobs = ", ".join(str(j.get("job_id")) for j in seg.jobs) or "-"  # from sbatch's answer
        print(_v(f"  {seg.cluster}: {', '.join(seg.stages)} [{seg.status}] jobs {jobs}"))
    print(f"follow it with: synthsmith tail {_v(record.run_id)} --follow")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from remote.launch import RunRegistry

    for r in RunRegistry().list():
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(r.created_at))
        where = " -> ".join(dict.fromkeys(s.cluster for s in r.segments))
        print(_v(f"{r.run_id}  {when}  {r.status:<9}  {where}"))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    with _launcher(args) as launcher:
        record = launcher.refresh(args.run)
        state = launcher.remote_state(args.run)
    if args.json:
        print(json.dumps({"run": json.loads(record.to_json()), "state": state}, indent=2))
        return 0
    print(_v(f"{record.run_id}: {record.status}"))
    for seg in record.segments:
        why = f" ({seg.reason})" if seg.reason else ""
        print(_v(f"  {seg.cluster}: {', '.join(seg.stages)} [{seg.status}]{why}"))
    if isinstance(state, dict) and state.get("error"):  # unreadable, oversized, not JSON
        print(_v(f"  state.json: {state['error']}"))
    stages = state.get("stages") if isinstance(state, dict) else None
    for stage, st in (stages.items() if isinstance(stages, dict) else ()):
        st = st if isinstance(st, dict) else {"status": st}  # state.json is the cluster's
        print(f"    {_v(stage)}: {_v(st.get('status'))}"
              + (f" - {_v(st['reason'])}" if st.get("reason") else ""))
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    with _launcher(args) as launcher:
        record = launcher.cancel(args.run)
    print(_v(f"{record.run_id}: {record.status}"))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    with _launcher(args) as launcher:
        record = launcher.resume(args.run)
    print(_v(f"{record.run_id}: {record.status}"))
    return 0


def cmd_fetch(args: argparse.Namespace) -> int:
    with _launcher(args) as launcher:
        got = launcher.fetch(args.run, args.what, Path(args.to))
    for path in got:
        print(_v(path))
    return 0


def cmd_tail(args: argparse.Namespace) -> int:
    from remote.display_text import visible
    from remote.stream import EventTail, LogTail

    with _launcher(args) as launcher:
        record = launcher.refresh(args.run)
        tails = []
        for name in dict.fromkeys(s.cluster for s in record.segments if s.status != "waiting"):
            run_dir = record.clusters[name]["run_dir"]
            cls = LogTail if args.logs else EventTail
            tails.append(cls(launcher.runner(name), run_dir,
                             launcher.registry.tail_cache(record.run_id, name)))
        def show(items: Any) -> None:
            if args.logs:  # {file: new text}
                for name, text in items.items():
                    for line in text.splitlines():  # log text keeps its tabs
                        print(f"{_v(name)}: {visible(line, keep_newlines=True)}")
            else:
                for ev in items:
                    print(_event_line(ev))
            sys.stdout.flush()

        for t in tails:
            show(t.history())
        while True:
            for t in tails:
                show(t.poll())
            if not args.follow:
                return 0
            record = launcher.refresh(args.run)
            if record.status in ("completed", "failed", "cancelled"):
                for t in tails:  # what arrived after the last poll
                    show(t.poll())
                print(_v(f"# {record.run_id} {record.status}"), file=sys.stderr)
                return 0 if record.status == "completed" else EXIT_FAILED
            time.sleep(1.0)



def _event_line(ev: Any) -> str:
    """One event as one JSON line: exact (``json.loads`` gives the event back), with control
    and bidi characters inside its strings written as ``\\uXXXX`` escapes."""
    from remote.display_text import visible_json

    data = ev.data.model_dump() if hasattr(ev.data, "model_dump") else ev.data
    return visible_json({"t": round(ev.t, 3), "stage": ev.stage, "rank": ev.rank,
                         "kind": ev.kind, "seq": ev.seq, "data": data})
