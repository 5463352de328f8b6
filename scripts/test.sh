#!/usr/bin/env bash
# Runs every test: unit, property and integration tests (cargo), the store's micro-benchmarks once
# each, the etcdctl e2e scenario against real etcd 3.4 and against mainstay, whose normalised
# outputs must be identical (once with one member each, once with three-member clusters), and a
# smoke run of the benchmark harness (every workload and scale check, tiny counts, no errors
# allowed; its numbers are not benchmarks).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mainstay-target}"
scripts/setup.sh
cargo build --bin mainstay
cargo test --workspace
cargo test --workspace --bench hot_paths
tests/e2e/compare-with-etcd.sh "$CARGO_TARGET_DIR/debug/mainstay"
tests/e2e/compare-with-etcd.sh --members 3 "$CARGO_TARGET_DIR/debug/mainstay"
smoke="$(mktemp -d)"
"$CARGO_TARGET_DIR/debug/mainstay" bench --quick --strict --doc none --out-dir "$smoke"
rm -rf "$smoke"
