#!/usr/bin/env bash
# Runs tests/e2e/etcdctl-scenario.sh with the real etcdctl 3.4.23 against real etcd 3.4.23 and
# against mainstay, normalises both outputs (tests/e2e/normalize.py) and diffs them.
#
#   tests/e2e/compare-with-etcd.sh [--members N] MAINSTAY_BIN
#                                   exit 0 iff the normalised outputs are identical
#   tests/e2e/compare-with-etcd.sh [--members N] --etcd-only
#                                   run against etcd only, print the normalised output
#
# --members N (default 1) runs both as N-member clusters on loopback; leadership is moved to the
# first member (etcdctl move-leader) and the scenario talks to it, so both runs see the same roles.
#
# Environment:
#   E2E_OUT_DIR        keep raw + normalised outputs and server logs in this directory
#                      (otherwise a temp dir, kept only when the outputs differ or a server fails)
#   ETCD_BIN           etcd binary (default: etcd), ETCDCTL (default: etcdctl); both must be 3.4.23
#   ETCD_CLIENT_PORT / ETCD_PEER_PORT          default 23790 / 23800 (member i adds 100*i)
#   MAINSTAY_CLIENT_PORT / MAINSTAY_PEER_PORT  default 23791 / 23801 (member i adds 100*i)
#   E2E_START_TIMEOUT  seconds to wait for a server to become healthy (default 60)
set -u
set -o pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ETCD_BIN=${ETCD_BIN:-etcd}
export ETCDCTL=${ETCDCTL:-etcdctl}
export ETCDCTL_API=3
ETCD_CLIENT_PORT=${ETCD_CLIENT_PORT:-23790}
ETCD_PEER_PORT=${ETCD_PEER_PORT:-23800}
MAINSTAY_CLIENT_PORT=${MAINSTAY_CLIENT_PORT:-23791}
MAINSTAY_PEER_PORT=${MAINSTAY_PEER_PORT:-23801}
START_TIMEOUT=${E2E_START_TIMEOUT:-60}
WANT_VERSION=3.4.23

usage() {
    echo "usage: $0 [--members N] MAINSTAY_BIN | --etcd-only" >&2
    exit 2
}
MEMBERS=1
if [ "${1:-}" = --members ]; then
    MEMBERS=${2:-}
    [[ "$MEMBERS" =~ ^[1-9]$ ]] || usage
    shift 2
fi
[ $# -eq 1 ] || usage
export E2E_MEMBERS=$MEMBERS
ETCD_ONLY=0
MAINSTAY_BIN=
case $1 in
    --etcd-only) ETCD_ONLY=1 ;;
    -h | --help) usage ;;
    *)
        MAINSTAY_BIN=$1
        if [ ! -x "$MAINSTAY_BIN" ] && ! command -v "$MAINSTAY_BIN" >/dev/null 2>&1; then
            echo "error: mainstay binary '$MAINSTAY_BIN' not found or not executable" >&2
            exit 2
        fi
        ;;
esac

log() { echo "compare-with-etcd: $*" >&2; }

# --- tool versions: the expected output depends on exactly these ----------------------------
# (captured first: `cmd | grep -q` can fail under pipefail when grep exits early)
etcd_version=$("$ETCD_BIN" --version 2>/dev/null)
etcdctl_version=$("$ETCDCTL" version 2>/dev/null)
if ! grep -qx "etcd Version: $WANT_VERSION" <<<"$etcd_version"; then
    log "error: $ETCD_BIN is not etcd $WANT_VERSION"
    exit 2
fi
if ! grep -qx "etcdctl version: $WANT_VERSION" <<<"$etcdctl_version"; then
    log "error: $ETCDCTL is not etcdctl $WANT_VERSION"
    exit 2
fi

# --- directories -----------------------------------------------------------------------------
DATA_ROOT=$(mktemp -d "${TMPDIR:-/tmp}/mainstay-e2e-data.XXXXXX")
if [ -n "${E2E_OUT_DIR:-}" ]; then
    mkdir -p "$E2E_OUT_DIR" || exit 2
    OUT_DIR=$(cd "$E2E_OUT_DIR" && pwd)
    KEEP_OUT=1
else
    OUT_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mainstay-e2e-out.XXXXXX")
    KEEP_OUT=0
fi

SERVER_PIDS=()
stop_server() {
    local pid
    for pid in "${SERVER_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null
    done
    for pid in "${SERVER_PIDS[@]}"; do
        local deadline=$((SECONDS + 10))
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    SERVER_PIDS=()
}
on_exit() {
    stop_server
    rm -rf "$DATA_ROOT"
    if [ "$KEEP_OUT" = 0 ]; then
        rm -rf "$OUT_DIR"
    fi
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

port_in_use() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# start_cluster NAME CLIENT_PORT PEER_PORT CMD... : start MEMBERS members of CMD (given etcd's
# flags for member i, with client port CLIENT_PORT+100*i and peer port PEER_PORT+100*i), wait until
# every member is healthy, then move the leadership to the first member.
start_cluster() {
    local name=$1 client=$2 peer=$3
    shift 3
    local i p cluster="" endpoints=""
    for ((i = 0; i < MEMBERS; i++)); do
        for p in $((client + 100 * i)) $((peer + 100 * i)); do
            if port_in_use "$p"; then
                log "error: port 127.0.0.1:$p is already in use (set ${name^^}_CLIENT_PORT/${name^^}_PEER_PORT)"
                KEEP_OUT=1
                exit 2
            fi
        done
        cluster+="${cluster:+,}e2e$i=http://127.0.0.1:$((peer + 100 * i))"
        endpoints+="${endpoints:+,}http://127.0.0.1:$((client + 100 * i))"
    done
    for ((i = 0; i < MEMBERS; i++)); do
        local c=$((client + 100 * i)) pp=$((peer + 100 * i)) member_name=e2e$i
        [ "$MEMBERS" = 1 ] && member_name=e2e
        local args=(--name "$member_name" --data-dir "$DATA_ROOT/$name$i"
            --listen-client-urls "http://127.0.0.1:$c" --advertise-client-urls "http://127.0.0.1:$c"
            --listen-peer-urls "http://127.0.0.1:$pp" --initial-advertise-peer-urls "http://127.0.0.1:$pp")
        if [ "$MEMBERS" = 1 ]; then
            args+=(--initial-cluster "e2e=http://127.0.0.1:$pp")
        else
            args+=(--initial-cluster "$cluster" --initial-cluster-token "e2e-$name")
        fi
        mkdir -m 700 -p "$DATA_ROOT/$name$i"
        log "starting $name member $i: $* ${args[*]}"
        "$@" "${args[@]}" >"$OUT_DIR/$name$i.log" 2>&1 &
        SERVER_PIDS+=($!)
    done
    local deadline=$((SECONDS + START_TIMEOUT))
    until "$ETCDCTL" --endpoints="$endpoints" --dial-timeout=1s --command-timeout=2s \
        endpoint health >/dev/null 2>&1; do
        for ((i = 0; i < MEMBERS; i++)); do
            if ! kill -0 "${SERVER_PIDS[$i]}" 2>/dev/null; then
                log "error: $name member $i exited before becoming healthy; log: $OUT_DIR/$name$i.log"
                KEEP_OUT=1
                tail -n 30 "$OUT_DIR/$name$i.log" >&2
                exit 1
            fi
        done
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "error: $name not healthy after ${START_TIMEOUT}s; logs: $OUT_DIR/$name*.log"
            KEEP_OUT=1
            for ((i = 0; i < MEMBERS; i++)); do tail -n 30 "$OUT_DIR/$name$i.log" >&2; done
            exit 1
        fi
        sleep 0.2
    done
    if [ "$MEMBERS" -gt 1 ]; then
        # The first member leads, in both runs: the scenario's endpoint status then agrees.
        local first_id
        first_id=$("$ETCDCTL" --endpoints="http://127.0.0.1:$client" endpoint status -w fields |
            sed -n 's/^"MemberID" : //p')
        first_id=$(printf '%x' "$first_id")
        local leader_endpoint
        leader_endpoint=$("$ETCDCTL" --endpoints="$endpoints" endpoint status |
            awk -F', ' '$5 == "true" {print $1}')
        if [ -z "$leader_endpoint" ]; then
            log "error: $name has no leader"
            KEEP_OUT=1
            exit 1
        fi
        if ! "$ETCDCTL" --endpoints="$leader_endpoint" move-leader "$first_id" >>"$OUT_DIR/$name.move-leader.log" 2>&1; then
            log "error: move-leader on $name failed: $(cat "$OUT_DIR/$name.move-leader.log")"
            KEEP_OUT=1
            exit 1
        fi
    fi
    log "$name is healthy ($MEMBERS member(s))"
}

# run_against NAME CLIENT_PORT : run the scenario and normalise its output.
run_against() {
    local name=$1 client=$2
    log "running scenario against $name"
    "$HERE/etcdctl-scenario.sh" "http://127.0.0.1:$client" >"$OUT_DIR/$name.raw.txt"
    local rc=$?
    if [ "$rc" != 0 ]; then
        log "error: scenario script failed against $name (status $rc)"
        KEEP_OUT=1
        exit 1
    fi
    python3 "$HERE/normalize.py" <"$OUT_DIR/$name.raw.txt" >"$OUT_DIR/$name.normalized.txt" || {
        log "error: normalize.py failed on $OUT_DIR/$name.raw.txt"
        KEEP_OUT=1
        exit 1
    }
}

# --- etcd ------------------------------------------------------------------------------------
start_cluster etcd "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" "$ETCD_BIN"
run_against etcd "$ETCD_CLIENT_PORT"
stop_server

if [ "$ETCD_ONLY" = 1 ]; then
    cat "$OUT_DIR/etcd.normalized.txt"
    [ "$KEEP_OUT" = 1 ] && log "outputs kept in $OUT_DIR"
    exit 0
fi

# --- mainstay --------------------------------------------------------------------------------
start_cluster mainstay "$MAINSTAY_CLIENT_PORT" "$MAINSTAY_PEER_PORT" "$MAINSTAY_BIN" store
run_against mainstay "$MAINSTAY_CLIENT_PORT"
stop_server

# --- compare ---------------------------------------------------------------------------------
if diff -u --label etcd.normalized.txt --label mainstay.normalized.txt \
    "$OUT_DIR/etcd.normalized.txt" "$OUT_DIR/mainstay.normalized.txt" >"$OUT_DIR/diff.txt"; then
    log "OK: mainstay's normalised etcdctl output is identical to etcd $WANT_VERSION's"
    [ "$KEEP_OUT" = 1 ] && log "outputs kept in $OUT_DIR"
    exit 0
fi
KEEP_OUT=1
cat "$OUT_DIR/diff.txt"
log "FAIL: outputs differ (diff above, also in $OUT_DIR/diff.txt)"
log "  etcd raw output:     $OUT_DIR/etcd.raw.txt"
log "  mainstay raw output: $OUT_DIR/mainstay.raw.txt"
log "  normalised:          $OUT_DIR/etcd.normalized.txt $OUT_DIR/mainstay.normalized.txt"
log "  server logs:         $OUT_DIR/etcd*.log $OUT_DIR/mainstay*.log"
exit 1
