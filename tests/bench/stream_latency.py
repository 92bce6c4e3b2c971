"""Latency and throughput of the live event tail (remote/stream.py) over loopback SSH.

Run: ``.venv/bin/python tests/bench/stream_latency.py [--poll-s 0.25] [--events 200000]``.
Starts its own sshd on a free loopback port (the recipe of tests/remote/fixtures_ssh.py,
whose helpers it imports), then, with a writer process using ``engine.events.EventWriter``:

1. latency: the writer appends events at a fixed rate (``--rate`` per s for ``--seconds``);
   each event's latency is the time the tail's ``follow`` delivered it minus its ``t``;
2. throughput: the writer appends ``--events`` events across 3 files as fast as it can; the
   rate is those events over the time from the writer's start to the last one received.

Prints ONE JSON line: ``{"latency_p50_s", "latency_p95_s", "events_per_s", "events",
"transport": "ssh", ...}``. Targets: p95 < 1 s, >= 5,000 events/s. A benchmark, not a test:
pytest does not collect tests/bench and nothing here asserts. Loopback has no network delay:
on a real link add about one round trip to each latency.
"""

from __future__ import annotations

import argparse
import getpass
import importlib.util
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from remote.ssh import SSHRunner  # noqa: E402
from remote.stream import EventTail  # noqa: E402

_spec = importlib.util.spec_from_file_location("fixtures_ssh",
                                               ROOT / "tests" / "remote" / "fixtures_ssh.py")
assert _spec and _spec.loader
fixtures_ssh = importlib.util.module_from_spec(_spec)
sys.modules["fixtures_ssh"] = fixtures_ssh  # dataclasses look their module up there
_spec.loader.exec_module(fixtures_ssh)

WRITER = r"""
import sys, time
from engine.events import EventWriter
events_dir, n, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
names = [("sft", 0), ("sft", 1), ("verify", 0)] if rate == 0 else [("sft", 0)]
writers = [EventWriter.for_run(events_dir, s, r) for s, r in names]
start = time.monotonic()
for i in range(n):
    writers[i % len(writers)].metric(i, {"sft/loss": 1.0 / (i + 1), "sft/lr": 1e-5})
    if rate:
        time.sleep(max(0.0, start + (i + 1) / rate - time.monotonic()))
for w in writers:
    w.close()
"""


def _writer(events_dir: Path, n: int, rate: float) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-c", WRITER, str(events_dir), str(n), str(rate)],
                            env=env)


def _follow_until(tail: EventTail, n: int, on_batch, timeout: float) -> None:
    got = 0
    deadline = time.monotonic() + timeout

    def on_events(events: list) -> None:
        nonlocal got
        got += len(events)
        on_batch(events)

    tail.follow(lambda: got >= n or time.monotonic() > deadline, on_events)
    if got < n:
        raise SystemExit(f"received {got} of {n} events within {timeout:g} s")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--poll-s", type=float, default=0.25)
    ap.add_argument("--rate", type=float, default=200.0, help="events/s of the latency part")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of the latency part")
    ap.add_argument("--events", type=int, default=200_000, help="events of the throughput part")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="stream-bench-") as tmp:
        root = Path(tmp)
        fixtures_ssh._keygen(root / "client")
        sshd = fixtures_ssh.start_sshd("target", root, root / "client.pub")
        try:
            known = root / "known_hosts"
            known.write_text(f"[127.0.0.1]:{sshd.port} {sshd.host_pub}\n")
            runner = SSHRunner("127.0.0.1", port=sshd.port, user=getpass.getuser(),
                               identity_file=root / "client", known_hosts=known,
                               ssh_config=None, use_agent=False)

            # 1. latency at a fixed rate
            run1 = root / "run-latency"
            tail = EventTail(runner, str(run1), root / "cache", poll_s=args.poll_s)
            n1 = int(args.rate * args.seconds)
            latencies: list[float] = []
            writer = _writer(run1 / "events", n1, args.rate)
            _follow_until(tail, n1, lambda evs: latencies.extend(
                time.time() - e.t for e in evs), timeout=args.seconds + 60)
            writer.wait()
            cuts = statistics.quantiles(latencies, n=100)

            # 2. throughput: as fast as the writer can
            run2 = root / "run-throughput"
            tail = EventTail(runner, str(run2), root / "cache", poll_s=args.poll_s)
            start = time.monotonic()
            writer = _writer(run2 / "events", args.events, 0)
            _follow_until(tail, args.events, lambda evs: None, timeout=300)
            elapsed = time.monotonic() - start
            writer.wait()
            runner.close()
        finally:
            os.kill(sshd.pid, signal.SIGTERM)

    print(json.dumps({
        "latency_p50_s": round(statistics.median(latencies), 4),
        "latency_p95_s": round(cuts[94], 4),
        "events_per_s": round(args.events / elapsed),
        "events": args.events,
        "transport": "ssh",
        "latency_events": n1,
        "poll_s": args.poll_s,
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
