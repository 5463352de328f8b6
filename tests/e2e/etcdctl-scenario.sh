#!/usr/bin/env bash
# Runs a fixed etcdctl (v3 API, etcdctl 3.4.23) scenario against ENDPOINT and prints, for every
# command, a "### description" line, the command line, its stdout, its stderr and its exit status.
#
#   tests/e2e/etcdctl-scenario.sh ENDPOINT        e.g. http://127.0.0.1:23790
#
# The server must be freshly started and EMPTY: revisions in the output are compared exactly.
# Pipe the output through tests/e2e/normalize.py before comparing two servers' outputs.
#
# Determinism rules followed here:
#   * no sleeps that race: long-running commands (watch, elect) run in the background and we poll
#     their output until an expected number of lines has arrived (with a deadline), then stop them;
#   * live watches always start at an explicit --rev, so no event can be missed or duplicated;
#   * keys whose names embed a lease ID (lock/election keys) are never printed with -w json
#     (the ID would be hidden inside base64) and are listed with --sort-by=CREATE (lease IDs are
#     server-chosen, so their sort order is not comparable);
#   * session leases that etcdctl lock/elect leave behind are revoked explicitly.
#
# Environment: ETCDCTL (default: etcdctl), E2E_CMD_TIMEOUT (seconds, default 20),
#              E2E_WAIT_TIMEOUT (seconds to wait for background output, default 10).
set -u
set -o pipefail

if [ $# -ne 1 ]; then
    echo "usage: $0 ENDPOINT" >&2
    exit 2
fi
ENDPOINT=$1
ETCDCTL=${ETCDCTL:-etcdctl}
CMD_TIMEOUT=${E2E_CMD_TIMEOUT:-20}
WAIT_TIMEOUT=${E2E_WAIT_TIMEOUT:-10}
export ETCDCTL_API=3

TMP=$(mktemp -d "${TMPDIR:-/tmp}/etcdctl-scenario.XXXXXX")
declare -A BG_PID=()
MAIN_PID=$BASHPID
cleanup() {
    local name
    # Background jobs are subshells and may inherit this trap: only the main shell cleans up.
    [ "$BASHPID" = "$MAIN_PID" ] || return 0
    for name in "${!BG_PID[@]}"; do
        kill -TERM "${BG_PID[$name]}" 2>/dev/null
        wait "${BG_PID[$name]}" 2>/dev/null
    done
    rm -rf "$TMP"
}
trap cleanup EXIT
# The snapshot is saved under a relative name so that the "Snapshot saved at" line is stable.
cd "$TMP" || exit 1

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

# ctl ARGS...: etcdctl against the endpoint, bounded by a timeout so a broken server cannot hang us.
ctl() {
    timeout "$CMD_TIMEOUT" "$ETCDCTL" --endpoints="$ENDPOINT" "$@"
}

# emit FILE: print FILE, adding a final newline if it lacks one (some etcdctl JSON output does).
emit() {
    cat "$1"
    if [ -s "$1" ] && [ -n "$(tail -c1 "$1")" ]; then
        echo
    fi
}

# print_result OUT ERR RC
print_result() {
    emit "$1"
    if [ -s "$2" ]; then
        echo "--- stderr"
        emit "$2"
    fi
    echo "--- exit $3"
    echo
}

section() {
    echo "=============================================================================="
    echo "== $*"
    echo "=============================================================================="
    echo
}

# run DESCRIPTION 'ARGS' : runs `etcdctl ARGS` (ARGS is eval'ed, so it is printed unexpanded,
# e.g. with $LEASE_LONG rather than the server-chosen lease ID).
run() {
    local desc=$1 args=$2 rc
    echo "### $desc"
    echo "\$ etcdctl $args"
    eval "ctl $args" >"$TMP/out" 2>"$TMP/err" </dev/null
    rc=$?
    print_result "$TMP/out" "$TMP/err" "$rc"
}

# run_stdin DESCRIPTION STDIN 'ARGS' : like run, with STDIN fed to etcdctl (printed as a heredoc).
run_stdin() {
    local desc=$1 input=$2 args=$3 rc
    echo "### $desc"
    echo "\$ etcdctl $args <<'EOF'"
    printf '%s' "$input"
    echo "EOF"
    printf '%s' "$input" >"$TMP/in"
    eval "ctl $args" >"$TMP/out" 2>"$TMP/err" <"$TMP/in"
    rc=$?
    print_result "$TMP/out" "$TMP/err" "$rc"
}

# run_sh DESCRIPTION 'SHELL' : a non-etcdctl step (e.g. checking the snapshot file).
run_sh() {
    local desc=$1 cmd=$2 rc
    echo "### $desc"
    echo "\$ $cmd"
    eval "$cmd" >"$TMP/out" 2>"$TMP/err" </dev/null
    rc=$?
    print_result "$TMP/out" "$TMP/err" "$rc"
}

# rev_now: the store's current revision (from a response header; a Range does not change it).
rev_now() {
    ctl get e2e-revision-probe -w json 2>/dev/null | sed -n 's/.*"revision":\([0-9]*\).*/\1/p'
}

# bookmark NAME: remember the current revision in $NAME and print it (revisions are compared exactly).
bookmark() {
    local r
    r=$(rev_now)
    printf -v "$1" '%s' "$r"
    echo "### bookmark: $1 = $r"
    echo
}

# bg_start NAME DESCRIPTION 'ARGS' : start `etcdctl ARGS` in the background.
bg_start() {
    local name=$1 desc=$2 args=$3
    echo "### $desc"
    echo "\$ etcdctl $args &    # [background: $name]"
    echo
    # Create the files first: the background subshell opens its redirections only after forking.
    : >"$TMP/$name.out"
    : >"$TMP/$name.err"
    # No `timeout` wrapper here: bash starts background jobs with SIGINT ignored and coreutils
    # timeout would not forward it; etcdctl itself re-enables SIGINT (elect resigns on it).
    # exec makes $! the etcdctl process itself. bg_stop escalates to SIGKILL if it hangs.
    eval "exec \"\$ETCDCTL\" --endpoints=\"\$ENDPOINT\" $args" >"$TMP/$name.out" 2>"$TMP/$name.err" </dev/null &
    BG_PID[$name]=$!
}

# wait_lines NAME N : poll (no fixed sleep) until background job NAME has printed N stdout lines,
# has exited, or WAIT_TIMEOUT passed. Prints nothing; bg_stop reports how it ended.
wait_lines() {
    local name=$1 want=$2 deadline=$((SECONDS + WAIT_TIMEOUT))
    while [ "$(wc -l <"$TMP/$name.out")" -lt "$want" ]; do
        if ! kill -0 "${BG_PID[$name]}" 2>/dev/null; then
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "### !!! timed out waiting for $want lines from [$name]"
            echo
            return 1
        fi
        sleep 0.05
    done
}

# wait_keys PREFIX N : poll until exactly N keys exist under PREFIX (e.g. election candidates).
wait_keys() {
    local prefix=$1 want=$2 deadline=$((SECONDS + WAIT_TIMEOUT)) n
    while :; do
        n=$(ctl get "$prefix" --prefix --keys-only 2>/dev/null | grep -c .)
        [ "$n" -eq "$want" ] && break
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "### !!! timed out waiting for $want keys under $prefix (have $n)"
            echo
            return 1
        fi
        sleep 0.05
    done
    echo "### (waited until $want key(s) exist under $prefix)"
    echo
}

# bg_stop NAME SIGNAL : stop background job NAME with SIGNAL (INT lets `elect` resign cleanly;
# `watch` does not handle INT, so it gets TERM) and print what it wrote.
bg_stop() {
    local name=$1 sig=$2 rc
    local pid=${BG_PID[$name]} deadline=$((SECONDS + WAIT_TIMEOUT))
    echo "### output of [$name] (stopped with SIG$sig)"
    kill -"$sig" "$pid" 2>/dev/null
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "### !!! [$name] did not exit on SIG$sig, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null
            break
        fi
        sleep 0.05
    done
    wait "$pid"
    rc=$?
    unset "BG_PID[$name]"
    print_result "$TMP/$name.out" "$TMP/$name.err" "$rc"
}

# ---------------------------------------------------------------------------------------------
section "0. preamble: client version, the server must be empty"
# ---------------------------------------------------------------------------------------------
run "etcdctl client version (client-side only)" 'version'
run "the whole keyspace is empty" 'get "" --from-key'
run "header of an empty server (revision must be 1)" 'get e2e-revision-probe -w json'
bookmark REV_START

# ---------------------------------------------------------------------------------------------
section "1. KV: put / get / ranges / sorting / limits / historical reads"
# ---------------------------------------------------------------------------------------------
run "put kv/a" 'put kv/a 1'
run "put kv/b" 'put kv/b 2'
run "put kv/c" 'put kv/c 3'
run "put kv/d" 'put kv/d 4'
run "put kv/e" 'put kv/e 5'
bookmark REV_KV_INITIAL
run "overwrite kv/a (version 2)" 'put kv/a 10'
run "put kv/c again with a smaller value (version 2)" 'put kv/c 0'
run "put a key outside the kv/ prefix" 'put kvx outside'
run "put a key sorting before kv/" 'put kv.dot dot'
bookmark REV_KV_WRITTEN

run "get single key" 'get kv/a'
run "get missing key (no output, exit 0)" 'get kv/missing'
run "get single key -w json" 'get kv/a -w json'
run "get single key -w fields" 'get kv/a -w fields'
run "get range [kv/a, kv/c)" 'get kv/a kv/c'
run "get range [kv/b, kv/zzz)" 'get kv/b kv/zzz'
run "get range with range_end < key (empty)" 'get kv/c kv/a'
run "get --prefix kv/" 'get --prefix kv/'
run "get --prefix kv (also matches kv.dot and kvx)" 'get --prefix kv'
run "get --from-key kv/c" 'get --from-key kv/c'
run "get --from-key with empty key (everything)" 'get --from-key ""'
run "get --prefix --keys-only" 'get --prefix kv/ --keys-only'
run "get --prefix --print-value-only" 'get --prefix kv/ --print-value-only'
run "get --count-only (NOT a flag in etcdctl 3.4.23: usage error, client-side)" 'get --prefix kv/ --count-only'
run "count via -w json --keys-only (count field)" 'get --prefix kv/ --keys-only -w json'
run "count via -w fields --keys-only" 'get --prefix kv/ --keys-only -w fields'
run "get --limit 2 (simple)" 'get --prefix kv/ --limit 2'
run "get --limit 2 -w json (more=true, count=5)" 'get --prefix kv/ --limit 2 -w json'
run "get --limit larger than result" 'get --prefix kv/ --limit 10'
run "get --order DESCEND (sort by key)" 'get --prefix kv/ --order DESCEND'
run "get --sort-by VALUE --order ASCEND" 'get --prefix kv/ --sort-by VALUE --order ASCEND'
run "get --sort-by VALUE --order DESCEND --limit 2" 'get --prefix kv/ --sort-by VALUE --order DESCEND --limit 2'
run "get --sort-by MODIFY --order DESCEND" 'get --prefix kv/ --sort-by MODIFY --order DESCEND'
run "get --sort-by CREATE --order DESCEND" 'get --prefix kv/ --sort-by CREATE --order DESCEND'
run "get --sort-by VERSION --order DESCEND (ties keep key order)" 'get --prefix kv/ --sort-by VERSION --order DESCEND'
run "get --sort-by VERSION (ascend)" 'get --prefix kv/ --sort-by VERSION'
run "get --sort-by KEY --order DESCEND --keys-only" 'get --prefix kv/ --sort-by KEY --order DESCEND --keys-only'
run "get --consistency s (serializable)" 'get kv/a --consistency s'

run "put --prev-kv over an existing key" 'put --prev-kv kv/a 11'
run "put --prev-kv of a new key (no prev)" 'put --prev-kv kv/f 6'
run "put --ignore-value keeps the value, bumps mod_revision/version" 'put --ignore-value kv/b'
run "kv/b after --ignore-value" 'get kv/b -w json'
run "put --ignore-lease on a key without lease" 'put --ignore-lease kv/b 22'
run "get kv/b" 'get kv/b -w json'
bookmark REV_KV_UPDATED

run "del single key" 'del kv/e'
run "del the same key again (0)" 'del kv/e'
run "del --prev-kv single key" 'del --prev-kv kv/d'
run "del --prev-kv missing key" 'del --prev-kv kv/missing'
run "del range [kv/a, kv/c) with --prev-kv" 'del --prev-kv kv/a kv/c'
run "remaining kv/ keys" 'get --prefix kv/'
bookmark REV_KV_DELETED

run "get kv/a --rev REV_START+1 (first version)" 'get kv/a --rev $((REV_START + 1))'
run "get --prefix kv/ at REV_KV_INITIAL" 'get --prefix kv/ --rev $REV_KV_INITIAL'
run "get --prefix kv/ at REV_KV_WRITTEN -w json" 'get --prefix kv/ --rev $REV_KV_WRITTEN -w json'
run "get --prefix kv/ at REV_KV_UPDATED --sort-by MODIFY --order DESCEND --limit 3" 'get --prefix kv/ --rev $REV_KV_UPDATED --sort-by MODIFY --order DESCEND --limit 3'
run "get kv/e at the revision before it was deleted" 'get kv/e --rev $REV_KV_UPDATED'
run "get kv/e at REV_KV_DELETED (gone)" 'get kv/e --rev $REV_KV_DELETED'
run "get --rev 1 (empty store)" 'get "" --from-key --rev 1'
run "get --rev of a future revision (error)" 'get kv/a --rev $((REV_KV_DELETED + 100))'
run "del --prefix kv" 'del --prefix kv'
run "nothing left" 'get "" --from-key'
bookmark REV_KV_END

# ---------------------------------------------------------------------------------------------
section "2. bad input"
# ---------------------------------------------------------------------------------------------
run "put with empty key" 'put "" v'
run "get with empty key" 'get ""'
run "del with empty key" 'del ""'
run "put --ignore-value of a missing key" 'put --ignore-value bad/missing'
run "put --ignore-lease of a missing key" 'put --ignore-lease bad/missing v'
run "put --lease with an unknown lease id (hex)" 'put --lease=deadbeef bad/k v'
run "lease timetolive of an unknown lease" 'lease timetolive deadbeef'
run "lease timetolive --keys of an unknown lease -w json" 'lease timetolive deadbeef --keys -w json'
run "lease revoke of an unknown lease" 'lease revoke deadbeef'
run "lease keep-alive --once of an unknown lease" 'lease keep-alive --once deadbeef'
run_stdin "txn with duplicate put keys in one branch" '
put bad/dup 1
put bad/dup 2


' 'txn'
run_stdin "txn with put and del of the same key" '
put bad/dup 1
del bad/dup


' 'txn'
run_stdin "txn with overlapping del ranges and a put inside (duplicate)" '
del bad/a bad/z
put bad/m 1


' 'txn'
run "nothing was written" 'get --prefix bad/'
bookmark REV_BAD_END

# ---------------------------------------------------------------------------------------------
section "3. watch"
# ---------------------------------------------------------------------------------------------
bookmark REV_WATCH_START
run "put w/a" 'put w/a 1'
run "put w/b" 'put w/b 1'
run "overwrite w/a" 'put w/a 2'
run "del w/b" 'del w/b'
run "put wz (outside w/)" 'put wz 1'
run "put w/c" 'put w/c 1'
bookmark REV_WATCH_HISTORY

bg_start w1 "watch single key from history (--rev)" 'watch w/a --rev $((REV_WATCH_START + 1))'
wait_lines w1 6
bg_stop w1 TERM

bg_start w2 "watch prefix from history with --prev-kv" 'watch --prefix w/ --rev $((REV_WATCH_START + 1)) --prev-kv'
wait_lines w2 19
bg_stop w2 TERM

bg_start w3 "watch range [w/a, w/c) from history" 'watch w/a w/c --rev $((REV_WATCH_START + 1))'
wait_lines w3 12
bg_stop w3 TERM

bg_start w4 "watch prefix from the middle of history (--rev REV_WATCH_START+3)" 'watch --prefix w/ --rev $((REV_WATCH_START + 3))'
wait_lines w4 9
bg_stop w4 TERM

bg_start w5 "watch single key from history -w json (one batch of historical events)" 'watch w/a --rev $((REV_WATCH_START + 1)) -w json'
wait_lines w5 1
bg_stop w5 TERM

bg_start w6 "live watch of prefix w/ starting at the next revision, with --prev-kv" 'watch --prefix w/ --rev $((REV_WATCH_HISTORY + 1)) --prev-kv'
run "put w/d (live)" 'put w/d 1'
run "del w/a (live)" 'del w/a'
run "put wz (live, outside w/)" 'put wz 2'
run "del --prefix w/ (live: deletes w/c and w/d in one revision)" 'del --prefix w/'
run "put w/e (live)" 'put w/e 1'
wait_lines w6 20
bg_stop w6 TERM
bookmark REV_WATCH_END

# ---------------------------------------------------------------------------------------------
section "4. txn"
# ---------------------------------------------------------------------------------------------
run "put t/x" 'put t/x 1'
bookmark T_X_CREATE
run "put t/y" 'put t/y 1'
run "put t/x again" 'put t/x 2'
bookmark T_X_MOD

run_stdin "txn: all compares true (value, version, create, mod) -> success branch" "value(\"t/x\") = \"2\"
version(\"t/x\") = \"2\"
create(\"t/x\") = \"$T_X_CREATE\"
mod(\"t/x\") = \"$T_X_MOD\"

put t/result success-branch
get t/x

put t/result failure-branch

" 'txn'
run_stdin "txn: version compare false -> failure branch (put, del, get in one txn)" "value(\"t/x\") = \"2\"
version(\"t/x\") > \"5\"

put t/result should-not-happen

put t/result failure-branch
del t/y
get --prefix t/

" 'txn'
run_stdin "txn: < and > on mod/create revisions -> success" "mod(\"t/x\") < \"$((T_X_MOD + 1))\"
create(\"t/x\") > \"$((T_X_CREATE - 1))\"
version(\"t/x\") != \"1\"

get t/x


" 'txn'
run_stdin "txn: create(missing) = 0 (create-if-absent idiom) -> success" 'create("t/new") = "0"

put t/new created

put t/new existed

' 'txn'
run_stdin "txn: same again, now the key exists -> failure" 'create("t/new") = "0"

put t/new created

put t/new existed

' 'txn'
run_stdin "txn: value compare on a missing key is false, even with != -> failure" 'value("t/missing") != "x"

put t/never 1

get t/missing

' 'txn'
run_stdin "txn: empty txn (no compares, no ops) -> success" '


' 'txn'
run_stdin "txn -w json" "value(\"t/x\") = \"2\"

put t/json 1
get t/x


" 'txn -w json'
run_stdin "txn -i (interactive mode fed by stdin; prompts go to stdout)" 'value("t/x") = "2"
mod("t/x") > "0"

put t/interactive 1
get t/interactive

put t/interactive 0

' 'txn -i'
run_stdin "txn: read-your-writes inside one txn, and a del with range_end" '
put t/z 1
get t/z
del t/result t/x


' 'txn'
run "final t/ keys -w json" 'get --prefix t/ -w json'
run "t/result history at T_X_MOD+1" 'get t/result --rev $((T_X_MOD + 1))'
run "del --prefix t/" 'del --prefix t/'
bookmark REV_TXN_END

# ---------------------------------------------------------------------------------------------
section "5. leases"
# ---------------------------------------------------------------------------------------------
echo "### lease grant 600 (LEASE_LONG)"
echo "\$ etcdctl lease grant 600"
ctl lease grant 600 >"$TMP/out" 2>"$TMP/err"
print_result "$TMP/out" "$TMP/err" "$?"
LEASE_LONG=$(awk '/granted/ {print $2}' "$TMP/out")
echo "### lease grant 300 -w json (LEASE_SHORT)"
echo "\$ etcdctl lease grant 300 -w json"
ctl lease grant 300 -w json >"$TMP/out" 2>"$TMP/err"
print_result "$TMP/out" "$TMP/err" "$?"
LEASE_SHORT=$(printf '%x' "$(sed -n 's/.*"ID":\([0-9]*\).*/\1/p' "$TMP/out")")

run "put l/a with LEASE_LONG" 'put --lease=$LEASE_LONG l/a v'
run "put l/b with LEASE_LONG" 'put --lease=$LEASE_LONG l/b v'
run "put l/c with LEASE_SHORT" 'put --lease=$LEASE_SHORT l/c v'
run "put l/plain without lease" 'put l/plain v'
run "get l/a -w json (shows the lease)" 'get l/a -w json'
run "put --ignore-lease keeps the lease" 'put --ignore-lease l/a v2'
run "get l/a -w fields" 'get l/a -w fields'
run "lease timetolive" 'lease timetolive $LEASE_LONG'
run "lease timetolive --keys" 'lease timetolive $LEASE_LONG --keys'
run "lease timetolive --keys -w json (keys are base64)" 'lease timetolive $LEASE_LONG --keys -w json'
run "lease timetolive --keys of LEASE_SHORT" 'lease timetolive $LEASE_SHORT --keys'
run "lease keep-alive --once" 'lease keep-alive --once $LEASE_LONG'
run "lease keep-alive --once -w json" 'lease keep-alive --once $LEASE_SHORT -w json'
run "lease list (ordered by expiry: LEASE_SHORT first)" 'lease list'
run "lease list -w json" 'lease list -w json'
run "move l/c to LEASE_LONG" 'put --lease=$LEASE_LONG l/c v'
run "LEASE_SHORT has no keys now" 'lease timetolive $LEASE_SHORT --keys'
bookmark REV_BEFORE_REVOKE
run "lease revoke LEASE_LONG (deletes l/a, l/b, l/c)" 'lease revoke $LEASE_LONG'
run "attached keys are gone" 'get --prefix l/'
run "lease timetolive after revoke" 'lease timetolive $LEASE_LONG'
run "lease timetolive --keys -w json after revoke" 'lease timetolive $LEASE_LONG --keys -w json'
run "lease keep-alive --once after revoke" 'lease keep-alive --once $LEASE_LONG'
run "lease revoke twice" 'lease revoke $LEASE_LONG'
run "put with the revoked lease" 'put --lease=$LEASE_LONG l/d v'
run "lease list (only LEASE_SHORT)" 'lease list'
bg_start wl "watch the deletions caused by the revoke (one revision, keys in sorted order)" 'watch --prefix l/ --rev $((REV_BEFORE_REVOKE + 1))'
wait_lines wl 9
bg_stop wl TERM
run "lease revoke LEASE_SHORT" 'lease revoke $LEASE_SHORT'
run "lease list (empty)" 'lease list'
run "del --prefix l/" 'del --prefix l/'
bookmark REV_LEASE_END

# ---------------------------------------------------------------------------------------------
section "6. lock and elect (client-side recipes over KV/Lease/Watch)"
# ---------------------------------------------------------------------------------------------
run "lock runs a command while holding the lock" "lock e2e-lock -- sh -c 'echo got-lock; echo ETCD_LOCK_KEY=\$ETCD_LOCK_KEY; echo ETCD_LOCK_REV=\$ETCD_LOCK_REV'"
run "the lock key was deleted on unlock" 'get --prefix e2e-lock'
run "etcdctl lock leaves its session lease behind" 'lease list'
for id in $(ctl lease list | tail -n +2); do
    run "revoke the leftover lock session lease" 'lease revoke $id'
done
run "lock with a failing command: exit status is propagated" "lock e2e-lock -- sh -c 'echo in-lock; exit 3'"
run "its session lease is left behind too" 'lease list'
for id in $(ctl lease list | tail -n +2); do
    run "revoke the leftover lock session lease" 'lease revoke $id'
done
bookmark REV_LOCK_END

bg_start c1 "candidate 1 campaigns and becomes leader" 'elect e2e-election proposal1'
wait_lines c1 2
run "the leader key" 'get --prefix e2e-election'
bg_start obs "observer: elect --listen prints the current leader" 'elect --listen e2e-election'
wait_lines obs 2
bg_start c2 "candidate 2 campaigns and waits" 'elect e2e-election proposal2'
wait_keys e2e-election/ 2
run "both candidates' keys, by creation" 'get --prefix e2e-election --sort-by CREATE'
bg_stop c1 INT
wait_lines c2 2
wait_lines obs 4
bg_stop obs INT
bg_stop c2 INT
run "no election keys left (both resigned)" 'get --prefix e2e-election'
bookmark REV_ELECT_END
run "session leases left behind by elect (2 candidates + observer, by expiry)" 'lease list'
for id in $(ctl lease list | tail -n +2); do
    run "revoke a leftover elect session lease" 'lease revoke $id'
done
run "lease list (empty)" 'lease list'

# ---------------------------------------------------------------------------------------------
section "7. compaction"
# ---------------------------------------------------------------------------------------------
run "get at REV_KV_WRITTEN before compaction" 'get kv/a --rev $REV_KV_WRITTEN'
run "compaction --physical at REV_TXN_END" 'compaction --physical $REV_TXN_END'
run "get below the compacted revision (error)" 'get kv/a --rev $REV_KV_WRITTEN'
run "get at exactly the compacted revision is allowed" 'get --prefix w/ --rev $REV_TXN_END'
run "get at compacted revision - 1 (error)" 'get --prefix w/ --rev $((REV_TXN_END - 1))'
run "watch from a compacted revision is cancelled by the server" 'watch --prefix w/ --rev $REV_WATCH_START'
run "compaction at the same revision again (error)" 'compaction $REV_TXN_END'
run "compaction at an older revision (error)" 'compaction $REV_KV_END'
run "compaction at a future revision (error)" 'compaction $((REV_ELECT_END + 1000))'
run "get at a future revision (error)" 'get w/e --rev $((REV_ELECT_END + 1000))'
run "endpoint hashkv -w json shows compact_revision (hash normalised)" 'endpoint hashkv -w json'
run "compaction at the current revision" 'compaction $REV_ELECT_END'

# ---------------------------------------------------------------------------------------------
section "8. cluster / maintenance"
# ---------------------------------------------------------------------------------------------
run "endpoint health" 'endpoint health'
run "endpoint health -w json" 'endpoint health -w json'
run "endpoint status" 'endpoint status'
run "endpoint status -w json" 'endpoint status -w json'
run "endpoint hashkv" 'endpoint hashkv'
if [ "${E2E_MEMBERS:-1}" -gt 1 ]; then
    # Members are listed in ID order, and IDs differ between implementations: sort by name.
    run_sh "member list (rows sorted by name)" 'ctl member list | sort -t, -k3,3'
    run_sh "member list -w json (members sorted by name)" \
        'ctl member list -w json | python3 -c "import json,sys; d=json.load(sys.stdin); d[\"members\"].sort(key=lambda m: m.get(\"name\",\"\")); print(json.dumps(d, separators=(\",\",\":\")))"'
else
    run "member list" 'member list'
    run "member list -w json" 'member list -w json'
fi
run "snapshot save" 'snapshot save snapshot.db'
run_sh "the snapshot file is not empty" 'test -s snapshot.db && echo snapshot.db is non-empty'

# ---------------------------------------------------------------------------------------------
section "9. final state"
# ---------------------------------------------------------------------------------------------
run "the whole keyspace" 'get "" --from-key'
run "final header" 'get e2e-revision-probe -w json'
echo "### end of scenario"
