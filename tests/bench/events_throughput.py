"""Throughput of the event stream: write 200k metric events, read them back.

Run: ``python tests/bench/events_throughput.py [N]``. Prints one JSON line,
``{"write_events_per_s": ..., "read_events_per_s": ...}``. A benchmark, not a test: pytest does
not collect tests/bench, and nothing here asserts a speed.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from engine.events import EventReader, EventWriter


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 200_000
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "sft.0.jsonl"
        start = time.perf_counter()
        with EventWriter(path, "sft") as w:
            for step in range(n):
                w.metric(step, {"sft/loss": 1.0 / (step + 1), "sft/lr": 1e-5, "sft/grad_norm": 0.5})
        write_s = time.perf_counter() - start

        start = time.perf_counter()
        events = EventReader(path).read_new()
        read_s = time.perf_counter() - start
        if len(events) != n:
            raise SystemExit(f"read {len(events)} events, wrote {n}")
        print(
            json.dumps(
                {
                    "events": n,
                    "bytes": path.stat().st_size,
                    "write_events_per_s": round(n / write_s),
                    "read_events_per_s": round(n / read_s),
                }
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
