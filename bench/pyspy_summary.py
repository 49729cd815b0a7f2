"""Summarize a py-spy ``--format raw`` (collapsed stacks) profile: self and inclusive time.

Usage:
    .venv/bin/python bench/pyspy_summary.py bench/results/ingest_py_spy.txt [--top 30]
        [--thread-filter aer-sequencer] [--grep prepare_entry]

Prints JSON: total samples, samples per thread/process root, and the top
functions by self and by inclusive share (a function counted once per stack).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


def _short(frame: str) -> str:
    m = _FRAME.match(frame)
    if not m:
        return frame
    f = m["file"]
    for marker in ("site-packages/", "/work/main/", "lib/python3.11/"):
        if marker in f:
            f = f.split(marker, 1)[1]
            break
    return f"{m['func']} ({f})"


def _role(stack: str) -> str:
    if "Sequencer._run" in stack:
        return "sequencer thread (integrate batch)"
    if "handle_request" in stack:
        return "request threads (gunicorn gthread handle_request)"
    if "ThreadWorker" in stack or "gthread" in stack:
        return "gunicorn worker other (accept/poll/keepalive)"
    return "other"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("profile")
    ap.add_argument("--top", type=int, default=30)
    ap.add_argument("--thread-filter", default=None, help="keep stacks whose role contains this")
    ap.add_argument("--grep", default=None, help="keep stacks containing this text")
    args = ap.parse_args()

    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    roots: Counter[str] = Counter()
    total = 0
    for line in Path(args.profile).read_text().splitlines():
        if not line.strip():
            continue
        stack, _, count_s = line.rpartition(" ")
        try:
            count = int(count_s)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if not f.startswith("process ")]
        role = _role(stack)
        if args.thread_filter and args.thread_filter not in role:
            continue
        if args.grep and args.grep not in stack:
            continue
        total += count
        roots[role] += count
        short = [_short(f) for f in frames] or ["(no python frame)"]
        self_c[short[-1]] += count
        for f in set(short):
            incl_c[f] += count

    def table(c: Counter[str]) -> list[dict[str, object]]:
        return [
            {"share_pct": round(100 * n / max(total, 1), 1), "samples": n, "function": f}
            for f, n in c.most_common(args.top)
        ]

    print(
        json.dumps(
            {
                "total_samples": total,
                "roots": table(roots),
                "self": table(self_c),
                "inclusive": table(incl_c),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
