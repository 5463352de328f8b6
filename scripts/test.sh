#!/usr/bin/env bash
# Runs every test: unit, property and integration tests (cargo), the store's micro-benchmarks once
# each, the etcdctl e2e scenario against real etcd 3.4 and against mainstay, whose normalised
# outputs must be identical (once with one member each, once with three-member clusters), and a
# smoke run of the benchmark harness (every workload and scale check, tiny counts, no errors
# allowed; its numbers are not benchmarks), the apiserver's kube-rs tests once more on real etcd
# (the workspace run uses Mainstay) and its kubectl suite on `mainstay dev` and on real etcd, the
# pod lifecycle with kubectl on a whole `mainstay dev` (schedulers, controller-managers, nodes), and,
# where Docker runs, the chaos suite's short
# profile against the compose cluster built from this checkout (10 faults of each kind).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mainstay-target}"
scripts/setup.sh
# No two files of a crate import each other, and the apiserver's layers point one way.
python3 scripts/import-cycles.py proto store raft server apiserver component scheduler controllers nodesim mainstay testkit bench chaos
# The Kubernetes components reach the cluster only through the Kubernetes API: none of them
# depends on the store, Raft, the etcd API or the apiserver, nor on another component.
scripts/check-component-deps.sh
scripts/build.sh
cargo test --release --workspace
cargo test --release --workspace --bench hot_paths
tests/e2e/compare-with-etcd.sh "$CARGO_TARGET_DIR/release/mainstay"
tests/e2e/compare-with-etcd.sh --members 3 "$CARGO_TARGET_DIR/release/mainstay"
MAINSTAY_TEST_TARGET=etcd cargo test --release --workspace --test kube_rs --test deletion --test eviction
tests/e2e/apiserver-e2e.sh "$CARGO_TARGET_DIR/release/mainstay"
smoke="$(mktemp -d)"
"$CARGO_TARGET_DIR/release/mainstay" bench --quick --strict --doc none --out-dir "$smoke"
rm -rf "$smoke"
if docker info >/dev/null 2>&1; then
  scripts/build-image.sh
  chaos="$(mktemp -d)"
  "$CARGO_TARGET_DIR/release/mainstay" chaos --faults-per-kind 10 --out-dir "$chaos"
  rm -rf "$chaos"
else
  echo "test: Docker is not running here; the chaos suite is skipped" >&2
fi
