#!/usr/bin/env bash
# Runs the benchmarks and rewrites BENCHMARKS.md. Called by `make bench` after a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p Benchmarks/work
cc -O2 -o Benchmarks/work/baseline Benchmarks/baseline/baseline.c $(pkg-config --cflags --libs libsodium sqlite3)
swift build -c release --product consentry-bench
"$(swift build -c release --show-bin-path)/consentry-bench" \
    --work Benchmarks/work --baseline Benchmarks/work/baseline --policies policies --out BENCHMARKS.md "$@"
