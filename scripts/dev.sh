#!/usr/bin/env bash
# Builds mainstay and runs three masters on loopback (`mainstay dev`): store members with clients
# on 127.0.0.1:2379, :22379 and :32379, apiservers on https://127.0.0.1:6443, :6444 and :6445, a
# scheduler and a controller-manager per master, and three simulated nodes; data, logs and the
# kubeconfig in ./mainstay-dev. Ctrl-C stops it.
# Extra arguments go to `mainstay dev` (e.g. --fresh to start from empty data directories).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mainstay-target}"
scripts/setup.sh
# One build (scripts/build.sh, release profile) serves tests, benchmarks and this, so each crate is
# compiled once.
scripts/build.sh
exec "$CARGO_TARGET_DIR/release/mainstay" dev "$@"
