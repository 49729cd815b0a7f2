"""``make contract``: the OpenAPI contract run, longer than the one in ``make test``.

    python -m tests.contract.run --examples 200 --seed 16 [--max-time 600]

Starts the real log (seeded) and the real webhook on loopback in a temporary
directory, runs schemathesis with every check and phase against each, prints
generated test cases and failures per target, and exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from tests.contract.harness import run_contract


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--examples", type=int, default=200, help="max examples per operation")
    p.add_argument("--seed", type=int, default=16)
    p.add_argument("--max-time", type=float, default=None, help="seconds per target")
    p.add_argument("--keep", type=Path, default=None, help="keep reports in this directory")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="aer-contract-") as tmp:
        work = args.keep or Path(tmp)
        runs = run_contract(work, examples=args.examples, seed=args.seed, max_time=args.max_time)
    bad = False
    for r in runs:
        print(r.summary())
        if r.failures or r.errors or r.returncode:
            bad = True
            print(r.output)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
