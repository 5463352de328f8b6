#!/usr/bin/env bash
# Runs tests/e2e/etcdctl-scenario.sh with the real etcdctl 3.4.23 against real etcd 3.4.23 and
# against mainstay, normalises both outputs (tests/e2e/normalize.py) and diffs them.
#
#   tests/e2e/compare-with-etcd.sh MAINSTAY_BIN    exit 0 iff the normalised outputs are identical
#   tests/e2e/compare-with-etcd.sh --etcd-only     run against etcd only, print the normalised output
#
# Environment:
#   E2E_OUT_DIR        keep raw + normalised outputs and server logs in this directory
#                      (otherwise a temp dir, kept only when the outputs differ or a server fails)
#   ETCD_BIN           etcd binary (default: etcd), ETCDCTL (default: etcdctl); both must be 3.4.23
#   ETCD_CLIENT_PORT / ETCD_PEER_PORT          default 23790 / 23800
#   MAINSTAY_CLIENT_PORT / MAINSTAY_PEER_PORT  default 23791 / 23801
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
    echo "usage: $0 MAINSTAY_BIN | --etcd-only" >&2
    exit 2
}
[ $# -eq 1 ] || usage
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

SERVER_PID=
stop_server() {
    if [ -n "$SERVER_PID" ]; then
        kill -TERM "$SERVER_PID" 2>/dev/null
        local deadline=$((SECONDS + 10))
        while kill -0 "$SERVER_PID" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
        SERVER_PID=
    fi
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

# start_server NAME CLIENT_PORT PEER_PORT CMD... : start the server, wait until healthy.
start_server() {
    local name=$1 client=$2 peer=$3
    shift 3
    local p
    for p in "$client" "$peer"; do
        if port_in_use "$p"; then
            log "error: port 127.0.0.1:$p is already in use (set ${name^^}_CLIENT_PORT/${name^^}_PEER_PORT)"
            KEEP_OUT=1
            exit 2
        fi
    done
    log "starting $name: $*"
    "$@" >"$OUT_DIR/$name.log" 2>&1 &
    SERVER_PID=$!
    local deadline=$((SECONDS + START_TIMEOUT))
    until "$ETCDCTL" --endpoints="http://127.0.0.1:$client" --dial-timeout=1s --command-timeout=2s \
        endpoint health >/dev/null 2>&1; do
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            wait "$SERVER_PID"
            log "error: $name exited (status $?) before becoming healthy; log: $OUT_DIR/$name.log"
            SERVER_PID=
            KEEP_OUT=1
            tail -n 30 "$OUT_DIR/$name.log" >&2
            exit 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "error: $name not healthy after ${START_TIMEOUT}s; log: $OUT_DIR/$name.log"
            KEEP_OUT=1
            tail -n 30 "$OUT_DIR/$name.log" >&2
            exit 1
        fi
        sleep 0.2
    done
    log "$name is healthy"
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
start_server etcd "$ETCD_CLIENT_PORT" "$ETCD_PEER_PORT" \
    "$ETCD_BIN" --name e2e --data-dir "$DATA_ROOT/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "e2e=http://127.0.0.1:$ETCD_PEER_PORT"
run_against etcd "$ETCD_CLIENT_PORT"
stop_server

if [ "$ETCD_ONLY" = 1 ]; then
    cat "$OUT_DIR/etcd.normalized.txt"
    [ "$KEEP_OUT" = 1 ] && log "outputs kept in $OUT_DIR"
    exit 0
fi

# --- mainstay --------------------------------------------------------------------------------
mkdir -m 700 "$DATA_ROOT/mainstay"
start_server mainstay "$MAINSTAY_CLIENT_PORT" "$MAINSTAY_PEER_PORT" \
    "$MAINSTAY_BIN" store --name e2e --data-dir "$DATA_ROOT/mainstay" \
    --listen-client-urls "http://127.0.0.1:$MAINSTAY_CLIENT_PORT" \
    --advertise-client-urls "http://127.0.0.1:$MAINSTAY_CLIENT_PORT" \
    --listen-peer-urls "http://127.0.0.1:$MAINSTAY_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$MAINSTAY_PEER_PORT" \
    --initial-cluster "e2e=http://127.0.0.1:$MAINSTAY_PEER_PORT"
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
log "  server logs:         $OUT_DIR/etcd.log $OUT_DIR/mainstay.log"
exit 1
