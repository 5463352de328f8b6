# Check helpers shared by the kubectl suites (sourced): each check prints "ok - DESC" or
# "FAIL - DESC" with the command, the expected and the actual output, and counts into PASS/FAIL.
PASS=0
FAIL=0

OUT=
RC=0
# run CMD...: runs CMD capturing stdout+stderr into $OUT and exit status in $RC.
run() {
    OUT=$("$@" 2>&1)
    RC=$?
}

report_fail() { # desc expected
    FAIL=$((FAIL + 1))
    echo "FAIL - $1"
    echo "    command:  ${LAST_CMD}"
    echo "    expected: $2" | sed '2,$s/^/              /'
    echo "    actual (exit $RC):"
    printf '%s\n' "$OUT" | sed 's/^/        /'
}
report_ok() { PASS=$((PASS + 1)); echo "ok - $1"; }

# eq DESC EXPECTED CMD...: CMD succeeds and its output is exactly EXPECTED.
eq() {
    local desc=$1 exp=$2
    shift 2
    LAST_CMD="$*"
    run "$@"
    if [ "$RC" -eq 0 ] && [ "$OUT" == "$exp" ]; then report_ok "$desc"; else report_fail "$desc" "$exp"; fi
}
# match DESC REGEX CMD...: CMD succeeds and its output matches extended REGEX
# (grep -E over the whole output, any line).
match() {
    local desc=$1 re=$2
    shift 2
    LAST_CMD="$*"
    run "$@"
    if [ "$RC" -eq 0 ] && printf '%s\n' "$OUT" | grep -Eq -- "$re"; then report_ok "$desc"; else report_fail "$desc" "/$re/"; fi
}
# fails DESC REGEX CMD...: CMD exits non-zero and its output matches REGEX.
fails() {
    local desc=$1 re=$2
    shift 2
    LAST_CMD="$*"
    run "$@"
    if [ "$RC" -ne 0 ] && printf '%s\n' "$OUT" | grep -Eq -- "$re"; then report_ok "$desc"; else report_fail "$desc" "non-zero exit and /$re/"; fi
}
# fails_eq DESC EXPECTED CMD...: CMD exits non-zero and the output is exactly EXPECTED.
fails_eq() {
    local desc=$1 exp=$2
    shift 2
    LAST_CMD="$*"
    run "$@"
    if [ "$RC" -ne 0 ] && [ "$OUT" == "$exp" ]; then report_ok "$desc"; else report_fail "$desc" "non-zero exit and: $exp"; fi
}
# out_match DESC REGEX: the previous check's output (same command) also matches REGEX.
out_match() {
    if printf '%s\n' "$OUT" | grep -Eq -- "$2"; then report_ok "$1"; else report_fail "$1" "/$2/"; fi
}
# jqt DESC FILTER JSONFILE: jq -e FILTER over a file (captured earlier) is true.
jqt() {
    local desc=$1 filter=$2 file=$3
    LAST_CMD="jq -e '$filter' <$(basename "$file")>"
    OUT=$(jq -e "$filter" "$file" 2>&1)
    RC=$?
    if [ "$RC" -eq 0 ]; then report_ok "$desc"; else report_fail "$desc" "jq filter true"; fi
}
# header/row checks: squeeze runs of 2+ spaces to "|" so columns compare exactly.
cols() { sed -E 's/ {2,}/|/g; s/ +$//'; }
# tbl DESC EXPECTED_REGEX CMD...: after cols(), some line matches ^REGEX$.
tbl() {
    local desc=$1 re=$2
    shift 2
    LAST_CMD="$*"
    run "$@"
    if [ "$RC" -eq 0 ] && printf '%s\n' "$OUT" | cols | grep -Eq -- "^$re\$"; then report_ok "$desc"; else report_fail "$desc" "a line /^$re\$/ (runs of 2+ spaces shown as |)"; fi
}

