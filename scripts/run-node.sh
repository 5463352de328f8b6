#!/usr/bin/env bash
# Builds mainstay and runs one store node with etcd's default ports on loopback
# (clients: http://127.0.0.1:2379), data in ./mainstay-data. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/mainstay-target}"
scripts/setup.sh
# One build (scripts/build.sh, release profile) serves tests, benchmarks and this.
scripts/build.sh
echo "mainstay: try   etcdctl --endpoints http://127.0.0.1:2379 put foo bar" >&2
exec "$CARGO_TARGET_DIR/release/mainstay" store --name node1 --data-dir mainstay-data \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster node1=http://127.0.0.1:2380 "$@"
