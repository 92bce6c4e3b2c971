"""The ``synthsmith`` subcommands that need no display: clusters, launches, runs.

    synthsmith cluster add h200 --host login.h200 --user me --jump bastion --scheduler slurm \\
        --partition gpu --gpu-type H200 --activate 'source ~/venv/bin/activate'
    synthsmith cluster list | test NAME | remove NAME
    synthsmith launch CONFIG.yaml [--cluster NAME] [--stages a,b] [--preview] [KEY=VALUE ...]
    synthsmith runs
    synthsmith status RUN [--json]
    synthsmith tail RUN [--follow] [--logs] [--json]
    synthsmith cancel RUN | resume RUN
    synthsmith fetch RUN [--what exports|checkpoints|store] [--to DIR]
    synthsmith llm test NAME --config CONFIG.yaml [--json] [--timeout S]

The same code the app uses (remote/): nothing here imports Qt. ``--ssh-config`` and
``--known-hosts`` (before the subcommand) point at other files than ~/.ssh's. An unknown host
key is shown with its fingerprint and accepted only when the user types ``yes`` (or passes
``--accept-fingerprint SHA256:...`` that matches it); never silently. Exit codes: 0 ok, 1 the
operation failed (the message says why and what to do), 2 bad usage (e.g. a run id that is
not a plain name).

Everything that came from a cluster (log lines, file names, reasons, job ids, event payloads,
error text) goes through ``remote.display_text`` before it is printed: terminal escapes, C1
controls and bidi overrides show as ``\\x1b``, ``\\x9b``, ``\\u202e``. ``status --json`` and
``tail --json``'s event lines stay exact JSON (unsafe characters as ``\\uXXXX`` escapes).

``tail`` prints one readable line per event (time, stage, kind, what it says); ``--json``
prints the records themselves. ``tail --follow`` rides out dropped links (waits, reconnects,
goes on) until the run ends, then fetches the last events with a poll retried until it goes
through.
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
    tail.add_argument("--follow", action="store_true",
                      help="keep following until the run ends, through dropped links")
    tail.add_argument("--logs", action="store_true", help="stage logs instead of events")
    tail.add_argument("--json", action="store_true",
                      help="events as exact JSON lines (the records), not readable lines")
    fetch = sub.add_parser("fetch", help="copy a run's outputs here")
    fetch.add_argument("run")
    fetch.add_argument("--what", choices=("exports", "checkpoints", "store"), default="exports")
    fetch.add_argument("--to", default=".")

    llm = sub.add_parser("llm", help="LLM endpoints of a pipeline config")
    lsub = llm.add_subparsers(dest="llm_command", metavar="ACTION", required=True)
    lt = lsub.add_parser("test", help="reachability, model, context length, a 1-token "
                         "completion, latency and the API key's presence, from the cluster "
                         "the stages using it are placed on")
    lt.add_argument("name", help="an endpoint's key in the config's llms:")
    lt.add_argument("--config", required=True, help="pipeline config YAML")
    lt.add_argument("--json", action="store_true", help="print the report as JSON")
    lt.add_argument("--timeout", type=float, default=120.0, metavar="S",
                    help="cap on each request's wait (default 120 s)")
    lt.add_argument("--cluster", help="test from this cluster profile (default: where the "
                    "config places the first enabled stage using the endpoint)")


def run(args: argparse.Namespace) -> int:
    from engine.contracts.config import ConfigError
    from remote.display_text import visible
    from remote.errors import LaunchError, RemoteError
    from remote.profiles import ProfileError

    handler = COMMANDS[args.command]
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
    from remote.launch import Launcher
    from remote.profiles import ProfileStore, runner_for
    from remote.run_registry import RunRegistry

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
    from engine.contracts.config import STAGE_ORDER, load_config
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
    from engine.contracts.config import load_config

    stages = args.stages.split(",") if args.stages else None
    config = load_config(args.config, args.overrides)  # the one read; the object goes on
    with _launcher(args) as launcher:
        if args.preview:
            from remote.display_text import visible

            print(visible(launcher.preview(config, stages=stages, cluster=args.cluster),
                          keep_newlines=True), end="")
            return 0
        for seg in launcher.plan(config, stages=stages, cluster=args.cluster):
            _connect(launcher.runner(seg.cluster), args)
        record = launcher.launch(config, source=str(args.config), stages=stages,
                                 cluster=args.cluster, run_id=args.run_id,
                                 preflight=args.preflight)
    print(f"launched {_v(record.run_id)}")
    for seg in record.segments:
        jobs = ", ".join(str(j.get("job_id")) for j in seg.jobs) or "-"  # from sbatch's answer
        print(_v(f"  {seg.cluster}: {', '.join(seg.stages)} [{seg.status}] jobs {jobs}"))
    print(f"follow it with: synthsmith tail {_v(record.run_id)} --follow")
    return 0


def cmd_runs(args: argparse.Namespace) -> int:
    from remote.run_registry import RunRegistry

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
    """Print a run's events (readable lines, or the exact records with ``--json``) or logs:
    what earlier sessions received (the local cache), then what is new. With ``--follow``,
    poll until the run ends. A dropped link (``TransientError``) never ends the command: the
    status check is waited out with backoff (a note on stderr) and polls lost to the link are
    read again by the next one. Once the run has ended, ``drain`` fetches its last events,
    retried until a poll goes through. Exit 0 when the run completed (or without
    ``--follow``), 1 when it failed or was cancelled, or its last events could not be
    fetched within ``remote.stream.DRAIN_TIMEOUT_S``."""
    from remote.display_text import visible
    from remote.errors import TransientError
    from remote.stream import EventTail, LogTail

    def show(items: Any) -> None:
        if args.logs:  # {file: new text}
            for name, text in items.items():
                for line in text.splitlines():  # log text keeps its tabs
                    print(f"{_v(name)}: {visible(line, keep_newlines=True)}")
        else:
            for ev in items:
                print(_event_line(ev) if args.json else _event_text(ev))
        sys.stdout.flush()

    with _launcher(args) as launcher:
        tails: dict[str, Any] = {}

        def add_tails(record: Any) -> None:
            # Later segments start on their own clusters while we follow: tail those too.
            for name in dict.fromkeys(s.cluster for s in record.segments
                                      if s.status != "waiting"):
                if name not in tails:
                    cls = LogTail if args.logs else EventTail
                    tails[name] = cls(launcher.runner(name), record.clusters[name]["run_dir"],
                                      launcher.registry.tail_cache(record.run_id, name))
                    show(tails[name].history())

        link = _LinkWait()
        record = None
        while record is None:
            try:
                record = launcher.refresh(args.run)
            except TransientError as exc:
                if not args.follow:
                    raise
                link.lost(exc)
        add_tails(record)
        while args.follow and record.status not in _RUN_ENDED:
            for t in tails.values():
                show(t.poll())  # a poll lost to the link returns nothing; the next reads it
            try:
                record = launcher.refresh(args.run)
            except TransientError as exc:
                link.lost(exc)
                continue
            link.back()
            add_tails(record)
            if record.status not in _RUN_ENDED:
                time.sleep(1.0)
        for name, t in tails.items():  # the last events: retried until a poll goes through
            if not t.drain(show):
                print(_v(f"synthsmith tail: the last {'logs' if args.logs else 'events'} on "
                         f"{name} could not be fetched: {t.last_error}. Nothing is lost: run "
                         f"`synthsmith tail {record.run_id}` again when the link is back"),
                      file=sys.stderr)
                return EXIT_FAILED
        if not args.follow:
            return 0
        print(_v(f"# {record.run_id} {record.status}"), file=sys.stderr)
        return 0 if record.status == "completed" else EXIT_FAILED


_RUN_ENDED = ("completed", "failed", "cancelled")


class _LinkWait:
    """Rides out a link that stays down while ``tail --follow`` checks the run's status
    (the runner has retried by then): a note on stderr, then waits of 1, 2, 4 ... 15 s. The
    run goes on without us and the tails keep their offsets, so waiting loses nothing."""

    def __init__(self) -> None:
        self.wait, self.since = 1.0, None

    def lost(self, exc: Exception) -> None:
        self.since = self.since or time.monotonic()
        why = str(exc) if len(str(exc)) <= 300 else str(exc)[:299] + "…"  # a long command
        print(_v(f"# link lost ({why}); trying again in {self.wait:g} s"), file=sys.stderr)
        time.sleep(self.wait)
        self.wait = min(self.wait * 2, 15.0)

    def back(self) -> None:
        if self.since is not None:
            print(f"# link back after {time.monotonic() - self.since:.0f} s", file=sys.stderr)
        self.wait, self.since = 1.0, None


def _event_line(ev: Any) -> str:
    """One event as its exact JSON record (``v``, ``seq``, ``t``, ``stage``, ``rank``,
    ``kind``, ``step``, ``data``, as the engine wrote it: ``json.loads`` gives it back), with
    control and bidi characters inside its strings written as ``\\uXXXX`` escapes."""
    from remote.display_text import visible_json

    if hasattr(ev, "model_dump_json"):
        # The wire form (non-finite floats as "NaN" strings), with only the fields the line
        # had: a field a newer engine added, left unset by an older one, is not made up.
        record = json.loads(ev.model_dump_json(exclude_unset=True))
    else:  # a record-like object (tests, other producers)
        data = ev.data.model_dump() if hasattr(ev.data, "model_dump") else ev.data
        record = {"v": getattr(ev, "v", 1), "seq": ev.seq, "t": ev.t, "stage": ev.stage,
                  "rank": ev.rank, "kind": ev.kind, "step": getattr(ev, "step", None),
                  "data": data}
    return visible_json(record)


def _get(data: Any, name: str, default: Any = None) -> Any:
    """A field of an event's data: a pydantic record or a plain dict."""
    if isinstance(data, dict):
        return data.get(name, default)
    return getattr(data, name, default)


def _num(value: Any) -> str:
    """A metric value, short: 6 significant digits (0.912, 1e-05, 123456), no float noise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    return f"{value:.6g}"


def _brief(value: Any, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _event_essentials(ev: Any) -> str:
    """What one event says, for a person: ``step 30  sft/loss=0.912 sft/lr=1e-05``,
    ``5/8 seeds (62%)  ok 3, rejected 2``, ``failed: <reason>``, ``warning: <message>``."""
    data, kind = ev.data, ev.kind
    if kind == "metric":
        values = data.items() if isinstance(data, dict) else ()
        return f"step {ev.step}  " + " ".join(f"{k}={_num(v)}" for k, v in values)
    if kind == "progress":
        done, total, unit = _get(data, "done"), _get(data, "total"), _get(data, "unit", "")
        text = f"{done} {unit}"
        if total is not None:
            pct = f" ({100 * done // total}%)" if total else ""
            text = f"{done}/{total} {unit}{pct}"
        kept = [f"{name} {_get(data, name)}" for name in ("ok", "rejected")
                if _get(data, name) is not None]  # of done: kept / refused, where known
        return text + (f"  {', '.join(kept)}" if kept else "")
    if kind == "stage":
        text = str(_get(data, "status"))
        if _get(data, "reason"):
            text += f": {_get(data, 'reason')}"
        summary = _get(data, "summary") or {}
        shown = [f"{k}={_brief(v, 30)}" for k, v in list(summary.items())[:8]]
        return text + (f"  ({', '.join(shown)})" if shown else "")
    if kind == "log":
        return f"{_get(data, 'level')}: {_get(data, 'message')}"
    if kind == "alert":
        code = f" [{_get(data, 'code')}]" if _get(data, "code") else ""
        return f"{str(_get(data, 'level')).upper()}{code}: {_get(data, 'message')}"
    if kind == "artifact":
        return f"{_get(data, 'kind')} {_get(data, 'name')}: {_get(data, 'path')}"
    if kind == "sample":
        payload = _get(data, "payload") or {}
        shown = [f"{k}={_brief(v)}" for k, v in list(payload.items())[:4]]
        return f"{_get(data, 'kind')}  " + " ".join(shown)
    return _brief(data, 200)


def _event_text(ev: Any) -> str:
    """One event as one readable line: local time, stage (``sft[1]`` for rank 1), kind, and
    its essentials (``_event_essentials``). Text from the cluster is made visible (escapes
    for controls, newlines included), so one event is always one line."""
    when = time.strftime("%H:%M:%S", time.localtime(ev.t))
    who = ev.stage if not ev.rank else f"{ev.stage}[{ev.rank}]"
    return _v(f"{when}  {who:<10} {ev.kind:<8}  {_event_essentials(ev)}")


# ---------------------------------------------------------------------------------------------
# LLM endpoints


def cmd_llm(args: argparse.Namespace) -> int:
    """``llm test NAME``: engine.llm.endpoint_check where the stages will reach the endpoint:
    on this computer, or on the cluster they are placed on (the engine's ``check-llm`` run
    there, in the uploaded bundle, with the profile's Python and environment: a server on a
    compute node's network, or a key only the cluster's environment has, is tested as the
    stage will meet it). Exit 0 when the endpoint is usable, 1 with the problems otherwise."""
    from engine.contracts.config import STAGE_ORDER, load_config
    from engine.contracts.llm_check import EndpointCheck, LLMError, check_endpoint
    from remote.profiles import ProfileStore

    config = load_config(args.config)
    if args.name not in config.llms:
        known = ", ".join(sorted(config.llms)) or "none"
        raise ValueError(f"{args.config} has no endpoint {args.name!r} under llms: "
                         f"(it has {known}); pick one of those")
    cluster = args.cluster or next(
        (getattr(config, s).placement for s in STAGE_ORDER if getattr(config, s).enabled
         and getattr(getattr(config, s), "llm", None) == args.name), None)
    profile = ProfileStore().get(cluster) if cluster else None
    if profile is None or profile.is_local:
        try:
            report = check_endpoint(config.llms[args.name], args.name, timeout_s=args.timeout)
        except LLMError as e:
            raise ValueError(str(e)) from None
        where = "this computer"
    else:
        report = EndpointCheck(**_check_llm_on(profile, config, args))
        where = profile.name
    if args.json:
        # ensure_ascii: server-sent text arrives as \uXXXX escapes, never as terminal controls.
        print(json.dumps({**report.to_dict(), "tested_from": where}, indent=2,
                         ensure_ascii=True))
    else:
        print(f"tested from {_v(where)}")
        for line in report.lines():
            print(_v(line))
    return 0 if report.ok else EXIT_FAILED


def _check_llm_on(profile: Any, config: Any, args: argparse.Namespace) -> dict[str, Any]:
    """``python -m engine check-llm --json`` on the profile's cluster -> the report's fields."""
    import posixpath
    import secrets

    from engine.contracts.config import dump_config
    from engine.contracts.llm_check import EndpointCheck
    from remote.bundle import sync_bundle
    from remote.errors import RemoteSetupError
    from remote.profiles import runner_for
    from remote.quoting import command_line
    from remote.runner import run_framed

    runner = runner_for(profile, **_ssh_options(args))
    try:
        _connect(runner, args)
        bundle = sync_bundle(runner, profile.workdir).bundle_dir
        # The bundle is <workdir>/engine/<digest>, its path already absolute (~ expanded).
        work = posixpath.dirname(posixpath.dirname(bundle))
        path = f"{work}/tmp/llm-test-{secrets.token_hex(6)}.yaml"
        runner.put_bytes(dump_config(config).encode(), path, mode=0o600)
        try:
            command = command_line([profile.python, "-m", "engine", "check-llm", "--config",
                                    path, args.name, "--json"], cwd=bundle,
                                   env=dict(profile.env), prefix=profile.activate)
            result = run_framed(runner, command, timeout=args.timeout + 60,
                                max_bytes=1 << 20, what="`python -m engine check-llm`")
        finally:
            runner.run(["rm", "-f", "--", path], timeout=30)
        start = result.stdout.find("{")
        try:
            fields = json.loads(result.stdout[start:]) if start >= 0 else None
        except ValueError:
            fields = None
        if not isinstance(fields, dict):
            raise RemoteSetupError(f"{profile.name}: check-llm gave no report (exit "
                                   f"{result.returncode}): "
                                   f"{(result.stderr or result.stdout).strip()[-400:]}")
        known = set(EndpointCheck.__dataclass_fields__)
        return {k: v for k, v in fields.items() if k in known}
    finally:
        runner.close()


# The subcommand -> its function: the one table ``run`` dispatches through (gui/cli.py adds
# the parsers with ``add_commands``; a parser without an entry here fails the CLI test).
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "cluster": cmd_cluster, "launch": cmd_launch, "runs": cmd_runs, "status": cmd_status,
    "tail": cmd_tail, "cancel": cmd_cancel, "resume": cmd_resume, "fetch": cmd_fetch,
    "llm": cmd_llm,
}
