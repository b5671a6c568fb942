#!/usr/bin/env bash
# Runs the benchmarks and rewrites BENCHMARKS.md. Called by `make bench` after a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p Benchmarks/work
# The decision-rate peer (Cedar's engine, from PyPI).
python3 -c "import cedarpy" 2>/dev/null || python3 -m pip install --quiet cedarpy
# The template-rendering peers.
python3 -c "import liquid, jinja2, markupsafe" 2>/dev/null || python3 -m pip install --quiet "python-liquid==2.3.6" jinja2 markupsafe
cc -O2 -o Benchmarks/work/baseline Benchmarks/baseline/baseline.c $(pkg-config --cflags --libs libsodium sqlite3)
swift build -c release --product consentry-bench
"$(swift build -c release --show-bin-path)/consentry-bench" \
    --work Benchmarks/work --baseline Benchmarks/work/baseline --policies policies --peer Benchmarks/peer/cedar_peer.py --out BENCHMARKS.md "$@"
