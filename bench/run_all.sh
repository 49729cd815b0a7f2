#!/usr/bin/env bash
# Run every AER benchmark; each prints JSON and saves it under bench/results/.
#
#   bench/run_all.sh          quick, small sizes (minutes; preliminary numbers)
#   bench/run_all.sh full     the sizes docs/benchmarks.md reports (run on a quiet machine)
#
# Signed entries and built logs are cached in bench/results/cache/ and reused.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
mode=${1:-quick}

run() { echo "+ $*" >&2; "$@" > /dev/null; }

if [ "$mode" = full ]; then
  run $PY bench/ingest_http.py --size 100000 --seconds 30 --py-spy
  run $PY bench/http_floor.py --size 100000 --seconds 20
  run $PY bench/ingest_breakdown.py --size 10000
  run $PY bench/bulk_integrate.py --size 1000000 --aer-size 50000 --batch 10000
  run $PY bench/proofs.py --size 1000000 --samples 5000
  run $PY bench/proofs.py --size 10000000 --samples 5000   # needs ~5 GB free in bench/results/cache
  run $PY bench/storage.py --size 50000
  run $PY bench/storage.py --size 1000000 --bodies synthetic
  run $PY bench/audit.py --size 1000000 --repeat 3 --seconds 60 --rate 20
else
  run $PY bench/ingest_http.py --size 6000 --seconds 5 --py-spy
  run $PY bench/http_floor.py --size 6000 --seconds 5
  run $PY bench/ingest_breakdown.py --size 2000
  run $PY bench/bulk_integrate.py --size 20000 --aer-size 6000 --batch 10000
  run $PY bench/proofs.py --size 100000 --samples 1000
  run $PY bench/proofs.py --size 1000000 --samples 2000   # builds once (~30 s), cached
  run $PY bench/storage.py --size 6000
  run $PY bench/storage.py --size 100000 --bodies synthetic
  run $PY bench/audit.py --size 100000 --repeat 1 --seconds 10 --rate 20
fi
run $PY bench/keyless.py --runs 30
run $PY bench/provenance.py --runs 30
ls -l bench/results/*.json >&2
