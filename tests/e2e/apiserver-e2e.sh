#!/usr/bin/env bash
# Runs the kubectl suite (tests/e2e/kubectl.sh) against Mainstay's apiserver twice in one run:
#   1. `mainstay dev --control-plane=false --nodes 0`: three Mainstay members and three apiservers
#      (HTTPS, bearer token) with no scheduler, controllers or nodes (the suite checks objects as
#      the apiserver alone leaves them: pods Pending, a Deployment 0/2), through the kubeconfig it
#      writes — once through the first replica and once through the second. Beside them runs one
#      `mainstay controller-manager --controllers=namespace` only: namespace deletion is the
#      namespace controller's job, and the suite checks a deleted namespace goes;
#   2. three `mainstay apiserver` replicas on real etcd 3.4.23 (same certificates and token),
#      once through each replica, with the same namespace-only controller-manager;
#   3. the whole of `mainstay dev` (three masters, each with a scheduler and a controller-manager,
#      and three simulated nodes): the lifecycle suite (tests/e2e/lifecycle.sh) through the second
#      apiserver.
#
#   tests/e2e/apiserver-e2e.sh MAINSTAY_BIN
#
# Environment: E2E_OUT_DIR keeps logs there (otherwise a temp dir, kept on failure);
# ETCD_BIN (default etcd); E2E_DEV_PORT (default 2579), E2E_API_PORT (default 25443),
# E2E_ETCD_PORT (default 24379), E2E_ETCD_API_PORT (default 24443), E2E_CP_PORT (default 2589),
# E2E_CP_API_PORT (default 25453).
set -u
set -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
[ $# -eq 1 ] || { echo "usage: $0 MAINSTAY_BIN" >&2; exit 2; }
BIN=$1
ETCD_BIN=${ETCD_BIN:-etcd}
# `mainstay dev` puts its members on this port, +20000 and +30000 (peers one up): all must stay
# below the kernel's ephemeral range (32768 and up), where an outgoing connection may hold them.
DEV_PORT=${E2E_DEV_PORT:-2579}
API_PORT=${E2E_API_PORT:-25443}
ETCD_PORT=${E2E_ETCD_PORT:-24379}
ETCD_API_PORT=${E2E_ETCD_API_PORT:-24443}
CP_PORT=${E2E_CP_PORT:-2589}
CP_API_PORT=${E2E_CP_API_PORT:-25453}
OUT=${E2E_OUT_DIR:-$(mktemp -d)}
mkdir -p "$OUT"
pids=()
failed=0

log() { echo "apiserver-e2e: $*" >&2; }
cleanup() {
    for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null; done
    for p in "${pids[@]}"; do
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$p" 2>/dev/null
    done
    if [ "$failed" -eq 0 ] && [ -z "${E2E_OUT_DIR:-}" ]; then rm -rf "$OUT"; else log "logs in $OUT"; fi
}
trap cleanup EXIT

wait_for() { # wait_for SECONDS CMD...
    local until=$((SECONDS + $1)); shift
    until "$@" >/dev/null 2>&1; do
        [ $SECONDS -lt $until ] || return 1
        sleep 0.5
    done
}

run_suite() { # run_suite LABEL KUBECONFIG [CONTEXT [SUITE]]
    local label=$1 kc=$2 ctx=${3:-} suite=${4:-kubectl.sh}
    local kc_used=$kc
    if [ -n "$ctx" ]; then
        kc_used="$OUT/$label.kubeconfig"
        KUBECONFIG=$kc kubectl config view --raw --flatten >"$kc_used"
        KUBECONFIG=$kc_used kubectl config use-context "$ctx" >/dev/null
    fi
    log "kubectl suite: $label"
    # Bounded: the suite's own checks take about 20 s; a hung server must not hold CI.
    if timeout 600 "$HERE/$suite" "$kc_used" >"$OUT/$label.out" 2>&1; then
        log "PASS $label ($(grep -c '^ok' "$OUT/$label.out" || true) checks)"
    else
        failed=1
        log "FAIL $label:"
        grep -v '^ok' "$OUT/$label.out" | tail -60 >&2
    fi
}

# 1. mainstay dev
log "starting mainstay dev (members on :$DEV_PORT.., apiservers on :$API_PORT..$((API_PORT + 2)))"
"$BIN" dev --fresh --data-dir "$OUT/dev" --client-port "$DEV_PORT" --apiserver-port "$API_PORT" \
    --control-plane=false --nodes 0 >"$OUT/dev.out" 2>&1 &
pids+=($!)
KC="$OUT/dev/kubeconfig"
if ! wait_for 90 env KUBECONFIG="$KC" kubectl --request-timeout=5s get ns default; then
    failed=1
    log "mainstay dev did not serve kubectl within 90 s"; tail -20 "$OUT/dev.out" >&2
    exit 1
fi
# The namespace controller alone (namespace deletion), leader-elected as in a real cluster.
start_namespace_controller() { # start_namespace_controller LABEL KUBECONFIG
    "$BIN" controller-manager --kubeconfig "$2" --controllers namespace-controller \
        >"$OUT/$1-controller-manager.log" 2>&1 &
    pids+=($!)
}
start_namespace_controller mainstay "$KC"
run_suite mainstay-replica1 "$KC"
run_suite mainstay-replica2 "$KC" mainstay-dev-2

# 2. real etcd with three apiservers, reusing the dev run's certificates and token
ver=$("$ETCD_BIN" --version 2>/dev/null | sed -n 's/^etcd Version: //p')
log "starting etcd $ver on :$ETCD_PORT"
"$ETCD_BIN" --name e2e --data-dir "$OUT/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --initial-cluster "e2e=http://127.0.0.1:$((ETCD_PORT + 1))" >"$OUT/etcd.log" 2>&1 &
pids+=($!)
PKI="$OUT/dev/pki"
for i in 0 1 2; do
    port=$((ETCD_API_PORT + i))
    "$BIN" apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" --bind-address 127.0.0.1 \
        --secure-port "$port" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
        --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
        >"$OUT/etcd-apiserver-$((i + 1)).log" 2>&1 &
    pids+=($!)
done
KC2="$OUT/etcd.kubeconfig"
sed -e "s#https://127.0.0.1:$API_PORT\$#https://127.0.0.1:$ETCD_API_PORT#" \
    -e "s#https://127.0.0.1:$((API_PORT + 1))\$#https://127.0.0.1:$((ETCD_API_PORT + 1))#" \
    -e "s#https://127.0.0.1:$((API_PORT + 2))\$#https://127.0.0.1:$((ETCD_API_PORT + 2))#" "$KC" >"$KC2"
# The etcd suites must reach the etcd apiservers, not mainstay dev's (which still run).
servers=$(KUBECONFIG=$KC2 kubectl config view -o jsonpath='{.clusters[*].cluster.server}')
if [ "$servers" != "https://127.0.0.1:$ETCD_API_PORT https://127.0.0.1:$((ETCD_API_PORT + 1)) https://127.0.0.1:$((ETCD_API_PORT + 2))" ]; then
    failed=1; log "FAIL the etcd kubeconfig names $servers"; exit 1
fi
if ! wait_for 60 env KUBECONFIG="$KC2" kubectl --request-timeout=5s get ns default; then
    failed=1
    log "apiserver on etcd did not serve kubectl within 60 s"; tail -20 "$OUT/etcd-apiserver-1.log" >&2
    exit 1
fi
start_namespace_controller etcd "$KC2"
run_suite etcd-replica1 "$KC2"
run_suite etcd-replica2 "$KC2" mainstay-dev-2

# Unauthenticated and wrong-token requests are refused on both.
for kc in "$KC" "$KC2"; do
    server=$(KUBECONFIG=$kc kubectl config view --raw -o jsonpath='{.clusters[0].cluster.server}')
    if out=$(kubectl --server "$server" --insecure-skip-tls-verify --token wrong --request-timeout=10s get ns 2>&1); then
        failed=1; log "FAIL a wrong token was accepted by $server"
    elif ! grep -q "Unauthorized" <<<"$out"; then
        failed=1; log "FAIL wrong token on $server: $out"
    fi
done

# 3. the whole control plane
log "starting mainstay dev with its control plane (members on :$CP_PORT.., apiservers on :$CP_API_PORT..)"
"$BIN" dev --fresh --data-dir "$OUT/dev-cp" --client-port "$CP_PORT" --apiserver-port "$CP_API_PORT" \
    --nodes 3 >"$OUT/dev-cp.out" 2>&1 &
pids+=($!)
KC3="$OUT/dev-cp/kubeconfig"
if wait_for 90 env KUBECONFIG="$KC3" kubectl --request-timeout=5s get ns default; then
    run_suite lifecycle "$KC3" mainstay-dev-2 lifecycle.sh
else
    failed=1
    log "mainstay dev (control plane) did not serve kubectl within 90 s"; tail -20 "$OUT/dev-cp.out" >&2
fi

[ "$failed" -eq 0 ] && log "all suites passed"
exit "$failed"
