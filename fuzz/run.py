"""Run the fuzz targets under atheris (coverage-guided, libFuzzer), each for a set time.

Usage:
    .venv/bin/python fuzz/run.py --seconds 60            # every target
    .venv/bin/python fuzz/run.py --seconds 300 bundle    # one target
    make fuzz                                            # every target, FUZZ_SECONDS each

Each target runs in its own process: the project's modules are imported
under ``atheris.instrument_imports()`` so coverage guides the mutations, the
seed corpus (the project's test data, see ``fuzz/targets.py``) is written to
``fuzz/corpus/<target>/`` and grows there, and any exception the parser does
not document is a finding (atheris stops, the input is saved as
``fuzz/crash-<target>-*``). A JSON summary per target (executions, corpus,
findings) is printed at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def _child(name: str, seconds: int) -> None:
    import atheris

    with atheris.instrument_imports(include=["verifier", "log_server", "attest"]):
        import targets

        target = next(t for t in targets.targets() if t.name == name)
        seeds = list(target.seeds())
        for seed in seeds:  # imports the parser's modules here, instrumented
            targets.check(target, seed)

    corpus = HERE / "corpus" / name
    corpus.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        (corpus / hashlib.sha256(seed).hexdigest()[:16]).write_bytes(seed)

    def one(data: bytes) -> None:
        targets.check(target, data)

    argv = [sys.argv[0], str(corpus), f"-max_total_time={seconds}", "-print_final_stats=1"]
    argv += [f"-artifact_prefix={HERE}/crash-{name}-", "-rss_limit_mb=4096", "-timeout=10"]
    atheris.Setup(argv, one)
    atheris.Fuzz()


def main() -> None:
    """Run the chosen targets one after the other; exit 1 on any finding."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("names", nargs="*", help="targets (default: all)")
    ap.add_argument("--seconds", type=int, default=60, help="time per target")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child, args.seconds)
        return
    import targets

    names = args.names or [t.name for t in targets.targets()]
    summary = []
    for name in names:
        print(f"fuzz: {name} for {args.seconds}s", file=sys.stderr, flush=True)
        out = subprocess.run(
            [sys.executable, __file__, "--child", name, "--seconds", str(args.seconds)],
            capture_output=True, text=True, cwd=HERE,
        )  # fmt: skip
        log = out.stderr
        execs = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
        summary.append(
            {
                "target": name,
                "executions": int(execs[-1]) if execs else None,
                "corpus": len(list((HERE / "corpus" / name).glob("*"))),
                "finding": out.returncode != 0,
                "exit": out.returncode,
                "tail": log.strip().splitlines()[-3:] if out.returncode else [],
            }
        )
        print(json.dumps(summary[-1]), flush=True)
    if any(s["finding"] for s in summary):
        sys.exit(1)


if __name__ == "__main__":
    main()
