#!/usr/bin/env bash
# The benchmark harness in one command: installs etcd 3.4.23 (Debian etcd-server) and what the
# build needs, builds mainstay, and runs `mainstay bench`, which starts a 3-member etcd cluster and
# a 3-member Mainstay cluster on loopback, runs every workload against both, and writes
# docs/benchmarks.md (the tables) and docs/benchmarks/ (results.json, results.md, charts).
# Arguments go to `mainstay bench` (e.g. --quick, --only put, --no-scale-checks).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mainstay-target}"
scripts/setup.sh
scripts/build.sh
exec "$CARGO_TARGET_DIR/release/mainstay" bench "$@"
