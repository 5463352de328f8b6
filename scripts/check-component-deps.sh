#!/usr/bin/env bash
# The scheduler, the controllers and the simulated nodes are Kubernetes clients: they reach the
# cluster only through the Kubernetes API (kube-rs), as kube's own components do. This fails when
# one of them depends (normal dependencies, transitively) on the store, Raft, the server, the
# etcd API or the apiserver, or on another component; `mainstay-component` may depend on no
# `mainstay-*` crate at all. (Kubernetes keeps the same rule with `.import-restrictions`.)
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(mainstay-(apiserver|store|raft|server|proto|testkit|bench|chaos)|etcd-client|rocksdb|librocksdb-sys|openraft) '
status=0
check() { # check PACKAGE EXTRA_FORBIDDEN_REGEX
    local pkg=$1 extra=$2 tree
    tree=$(cargo tree --offline -e normal -p "$pkg" --prefix none --format '{p}' 2>/dev/null | sort -u) || {
        echo "check-component-deps: cargo tree failed for $pkg" >&2; return 1; }
    local bad
    bad=$(grep -E "$forbidden" <<<"$tree" || true)
    if [ -n "$extra" ]; then bad+=$(grep -E "$extra" <<<"$tree" || true); fi
    if [ -n "$bad" ]; then
        echo "check-component-deps: $pkg must not depend on:" >&2
        sed 's/^/    /' <<<"$bad" >&2
        status=1
    fi
}
check mainstay-component '^mainstay-(scheduler|controllers|nodesim) '
check mainstay-scheduler '^mainstay-(controllers|nodesim) '
check mainstay-controllers '^mainstay-(scheduler|nodesim) '
check mainstay-nodesim '^mainstay-(scheduler|controllers) '
[ "$status" -eq 0 ] && echo "check-component-deps: the components depend only on kube-rs and mainstay-component"
exit "$status"
