#!/usr/bin/env bash
# Installs what building and testing Mainstay needs on a Debian machine (idempotent):
#   libclang-dev      RocksDB's bindings (bindgen)
#   protobuf-compiler, libprotobuf-dev   the etcd-client crate's build (protoc and the well-known
#                     .proto files it imports; our own proto crate uses a vendored protoc)
#   etcd-server, etcd-client  real etcd 3.4 and etcdctl, for the side-by-side e2e test and benchmarks
#   fonts-dejavu-core  the font `mainstay bench` draws its charts with
#   jq                the kubectl e2e suite reads kubectl's JSON with it
#   python3-fusepy    the power-loss test's file system (tests/power-loss/lossyfs.py)
set -euo pipefail
if ! command -v apt-get >/dev/null; then
  echo "setup: not a Debian-like system; install libclang, protoc, etcd and etcdctl 3.4 by hand" >&2
  exit 0
fi
need=()
for p in libclang-dev protobuf-compiler libprotobuf-dev etcd-server etcd-client fonts-dejavu-core jq python3-fusepy; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}"
fi
# The Debian package starts an etcd service on the default ports; Mainstay's tests and node need them.
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
  systemctl stop etcd || true
fi
