#!/usr/bin/env bash
# kubectl suite for the pod lifecycle on a whole control plane (apiserver, scheduler,
# controller-manager, nodes): what the README shows, checked with real kubectl 1.32.
#
#   tests/e2e/lifecycle.sh /path/to/kubeconfig
#
# Needs at least 3 Ready nodes with room for 5 small pods. Works in a fresh namespace, deleted at
# the end. Expectations are kubectl 1.32's own texts (rollout status, rollout history, undo,
# pause/resume, scale, describe).
set -u

if [ $# -ne 1 ] || [ ! -r "$1" ]; then
    echo "usage: $0 KUBECONFIG" >&2
    exit 2
fi
export KUBECONFIG="$1"
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=checks.sh
. "$HERE/checks.sh"

NS="life-$(od -An -N4 -tx4 /dev/urandom | tr -d ' \n')"
K=(kubectl --request-timeout=20s)
KN=(kubectl --request-timeout=20s -n "$NS")
cleanup() { "${K[@]}" delete namespace "$NS" --ignore-not-found --wait=false >/dev/null 2>&1; }
trap cleanup EXIT

# until_eq DESC EXPECTED SECONDS CMD...: CMD's output becomes EXPECTED within SECONDS.
until_eq() {
    local desc=$1 exp=$2 secs=$3
    shift 3
    LAST_CMD="$*"
    local until=$((SECONDS + secs))
    while :; do
        run "$@"
        if [ "$RC" -eq 0 ] && [ "$OUT" == "$exp" ]; then report_ok "$desc"; return; fi
        if [ $SECONDS -ge $until ]; then report_fail "$desc" "$exp (within ${secs}s)"; return; fi
        sleep 0.5
    done
}

AGE='[0-9]+[smhd]([0-9]+[smh])?'
echo "# namespace $NS"
eq "create namespace" "namespace/$NS created" "${K[@]}" create namespace "$NS"
until_eq "three nodes Ready" "3" 30 sh -c "kubectl get nodes --no-headers | awk '\$2==\"Ready\"' | wc -l | tr -d ' '"

# ------------------------------------------------------------- create and roll out
eq "create deployment" "deployment.apps/web created" \
    "${KN[@]}" create deployment web --image=nginx:1.25 --replicas=3
match "rollout status" '^deployment "web" successfully rolled out$' \
    "${KN[@]}" rollout status deployment/web --timeout=60s
tbl "get deployment row" "web\|3/3\|3\|3\|$AGE" "${KN[@]}" get deployment web
eq "3 pods Running" "$(printf 'Running\nRunning\nRunning')" \
    "${KN[@]}" get pods -l app=web -o 'jsonpath={range .items[*]}{.status.phase}{"\n"}{end}'
match "on 3 different nodes" '^3$' sh -c \
    "kubectl -n $NS get pods -l app=web -o jsonpath='{range .items[*]}{.spec.nodeName}{\"\\n\"}{end}' | sort -u | wc -l | tr -d ' '"
tbl "get pods -o wide row" "web-[a-z0-9]+-[a-z0-9]{5}\|1/1\|Running\|0\|$AGE\|10\.[0-9.]+\|[a-z0-9-]+\|<none>\|<none>" \
    "${KN[@]}" get pods -o wide
tbl "get rs row" "web-[a-z0-9]+\|3\|3\|3\|$AGE" "${KN[@]}" get rs

POD=$("${KN[@]}" get pods -l app=web -o 'jsonpath={.items[0].metadata.name}')
NODE=$("${KN[@]}" get pod "$POD" -o 'jsonpath={.spec.nodeName}')
match "describe pod: Status Running" '^Status: +Running$' "${KN[@]}" describe pod "$POD"
out_match "describe pod: Node" "^Node: +$NODE/"
out_match "describe pod: Controlled By" '^Controlled By: +ReplicaSet/web-'
out_match "describe pod: Ready condition" '^ +Ready +True *$'
out_match "describe pod: Scheduled event" "Normal +Scheduled +$AGE +default-scheduler +Successfully assigned $NS/$POD to $NODE"
match "describe deployment: NewReplicaSet" '^NewReplicaSet: +web-[a-z0-9]+ \(3/3 replicas created\)$' \
    "${KN[@]}" describe deployment web
out_match "describe deployment: ScalingReplicaSet event" 'Normal +ScalingReplicaSet +.* +deployment-controller +Scaled up replica set web-[a-z0-9]+ (to|from 0 to) 3'
out_match "describe deployment: Available condition" '^ +Available +True +MinimumReplicasAvailable$'

# ------------------------------------------------------------- set image, history, undo
eq "set image" "deployment.apps/web image updated" "${KN[@]}" set image deployment/web nginx=nginx:1.26
match "rollout status after set image" '^deployment "web" successfully rolled out$' \
    "${KN[@]}" rollout status deployment/web --timeout=60s
eq "pods run the new image" "$(printf 'nginx:1.26\nnginx:1.26\nnginx:1.26')" \
    "${KN[@]}" get pods -l app=web --field-selector=status.phase=Running \
    -o 'jsonpath={range .items[*]}{.spec.containers[0].image}{"\n"}{end}'
tbl "rollout history header" 'REVISION\|CHANGE-CAUSE' "${KN[@]}" rollout history deployment/web
out_match "rollout history revision 1" '^1 +<none>$'
out_match "rollout history revision 2" '^2 +<none>$'
match "rollout history --revision 1" 'Image:[[:space:]]+nginx:1.25$' "${KN[@]}" rollout history deployment/web --revision=1
eq "rollout undo" "deployment.apps/web rolled back" "${KN[@]}" rollout undo deployment/web
match "rollout status after undo" '^deployment "web" successfully rolled out$' \
    "${KN[@]}" rollout status deployment/web --timeout=60s
until_eq "pods run the old image again" "$(printf 'nginx:1.25\nnginx:1.25\nnginx:1.25')" 30 \
    "${KN[@]}" get pods -l app=web -o 'jsonpath={range .items[*]}{.spec.containers[0].image}{"\n"}{end}'
match "history after undo: 2 and 3" '^3 +<none>$' "${KN[@]}" rollout history deployment/web
if printf '%s\n' "$OUT" | grep -Eq '^1 +'; then
    report_fail "revision 1 became 3" "no revision 1 line"
else
    report_ok "revision 1 became 3"
fi
eq "two ReplicaSets (the old one reused)" "2" sh -c "kubectl -n $NS get rs --no-headers | wc -l | tr -d ' '"

# ------------------------------------------------------------- pause, resume, scale
eq "rollout pause" "deployment.apps/web paused" "${KN[@]}" rollout pause deployment/web
eq "set image while paused" "deployment.apps/web image updated" "${KN[@]}" set image deployment/web nginx=nginx:1.27
sleep 2
eq "paused: no new ReplicaSet" "2" sh -c "kubectl -n $NS get rs --no-headers | wc -l | tr -d ' '"
match "paused: Progressing DeploymentPaused" '^ +Progressing +Unknown +DeploymentPaused$' "${KN[@]}" describe deployment web
eq "rollout resume" "deployment.apps/web resumed" "${KN[@]}" rollout resume deployment/web
match "rollout status after resume" '^deployment "web" successfully rolled out$' \
    "${KN[@]}" rollout status deployment/web --timeout=60s
eq "scale" "deployment.apps/web scaled" "${KN[@]}" scale deployment web --replicas=5
match "rollout status after scale" '^deployment "web" successfully rolled out$' \
    "${KN[@]}" rollout status deployment/web --timeout=60s
tbl "get deployment 5/5" "web\|5/5\|5\|5\|$AGE" "${KN[@]}" get deployment web
until_eq "5 pods Running" "5" 30 sh -c \
    "kubectl -n $NS get pods -l app=web --field-selector=status.phase=Running --no-headers | wc -l | tr -d ' '"
eq "scale down" "deployment.apps/web scaled" "${KN[@]}" scale deployment web --replicas=2
until_eq "2 pods left" "2" 30 sh -c "kubectl -n $NS get pods -l app=web --no-headers | wc -l | tr -d ' '"

# ------------------------------------------------------------- a pod no node fits
printf 'apiVersion: v1\nkind: Pod\nmetadata:\n  name: huge\nspec:\n  containers:\n  - name: c\n    image: nginx\n    resources:\n      requests:\n        cpu: "1000"\n' |
    "${KN[@]}" create -f - >/dev/null 2>&1
until_eq "huge stays Pending, Unschedulable" "Unschedulable" 30 \
    "${KN[@]}" get pod huge -o 'jsonpath={.status.conditions[?(@.type=="PodScheduled")].reason}'
match "describe pod: FailedScheduling event" 'Warning +FailedScheduling +.*default-scheduler +0/[0-9]+ nodes are available: [0-9]+ Insufficient cpu\.' \
    "${KN[@]}" describe pod huge

# ------------------------------------------------------------- a budget and kubectl drain
# Six replicas on three nodes, a budget of minAvailable 5: draining a node with two of them
# evicts one, is refused (429) for the other until the first replacement is Ready elsewhere.
eq "scale to 6 for the drain" "deployment.apps/web scaled" "${KN[@]}" scale deployment web --replicas=6
match "rollout status at 6" '^deployment "web" successfully rolled out$' \
    "${KN[@]}" rollout status deployment/web --timeout=60s
eq "create pdb" "poddisruptionbudget.policy/web created" \
    "${KN[@]}" create poddisruptionbudget web --selector=app=web --min-available=5
until_eq "pdb allows one disruption" "1" 30 "${KN[@]}" get pdb web -o 'jsonpath={.status.disruptionsAllowed}'
tbl "get pdb row" "web\|5\|N/A\|1\|$AGE" "${KN[@]}" get pdb web
tbl "get poddisruptionbudgets.policy" "web\|5\|N/A\|1\|$AGE" "${KN[@]}" get poddisruptionbudgets.policy
DRAIN_NODE=$(kubectl -n "$NS" get pods -l app=web -o 'jsonpath={range .items[*]}{.spec.nodeName}{"\n"}{end}' | sort | uniq -c | sort -rn | awk 'NR==1{print $2}')
uncordon() { kubectl uncordon "$DRAIN_NODE" >/dev/null 2>&1; cleanup; }
trap uncordon EXIT
match "drain: a refused eviction, retried" "Cannot evict pod as it would violate the pod's disruption budget\." \
    "${K[@]}" drain "$DRAIN_NODE" --pod-selector=app=web --ignore-daemonsets --delete-emptydir-data --timeout=90s
out_match "drain: the node is drained" "^node/$DRAIN_NODE drained$"
eq "drain: the node is cordoned" "true" "${K[@]}" get node "$DRAIN_NODE" -o 'jsonpath={.spec.unschedulable}'
until_eq "drain: 6 pods Ready elsewhere" "6" 60 sh -c \
    "kubectl -n $NS get pods -l app=web --field-selector=spec.nodeName!=$DRAIN_NODE,status.phase=Running --no-headers | grep -c ' 1/1 '"
eq "uncordon" "node/$DRAIN_NODE uncordoned" "${K[@]}" uncordon "$DRAIN_NODE"

# ------------------------------------------------------------- garbage collection
eq "delete deployment (cascade background)" 'deployment.apps "web" deleted' "${KN[@]}" delete deployment web
until_eq "its ReplicaSets are collected" "0" 30 sh -c \
    "kubectl -n $NS get rs -l app=web --no-headers 2>/dev/null | wc -l | tr -d ' '"
until_eq "its pods are collected" "0" 60 sh -c \
    "kubectl -n $NS get pods -l app=web --no-headers 2>/dev/null | wc -l | tr -d ' '"

# kubectl waits for a foreground deletion: when it returns, the ReplicaSet and pods are gone.
eq "create deployment fg" "deployment.apps/fg created" \
    "${KN[@]}" create deployment fg --image=nginx:1.25 --replicas=2
match "rollout status fg" '^deployment "fg" successfully rolled out$' \
    "${KN[@]}" rollout status deployment/fg --timeout=60s
eq "delete --cascade=foreground" 'deployment.apps "fg" deleted' \
    "${KN[@]}" delete deployment fg --cascade=foreground --timeout=60s
eq "no ReplicaSet of fg left" "0" sh -c \
    "kubectl -n $NS get rs -l app=fg --no-headers 2>/dev/null | wc -l | tr -d ' '"
eq "no pod of fg left" "0" sh -c \
    "kubectl -n $NS get pods -l app=fg --no-headers 2>/dev/null | wc -l | tr -d ' '"

# --cascade=orphan: the ReplicaSet and its pods stay, the ReplicaSet without its owner.
eq "create deployment orph" "deployment.apps/orph created" \
    "${KN[@]}" create deployment orph --image=nginx:1.25 --replicas=2
match "rollout status orph" '^deployment "orph" successfully rolled out$' \
    "${KN[@]}" rollout status deployment/orph --timeout=60s
eq "delete --cascade=orphan" 'deployment.apps "orph" deleted' \
    "${KN[@]}" delete deployment orph --cascade=orphan --timeout=60s
eq "the ReplicaSet of orph stays" "1" sh -c \
    "kubectl -n $NS get rs -l app=orph --no-headers 2>/dev/null | wc -l | tr -d ' '"
eq "without owner references" "" \
    "${KN[@]}" get rs -l app=orph -o 'jsonpath={.items[*].metadata.ownerReferences[*].name}'
sleep 2
eq "the pods of orph stay" "2" sh -c \
    "kubectl -n $NS get pods -l app=orph --no-headers 2>/dev/null | wc -l | tr -d ' '"

# ------------------------------------------------------------- namespace deletion
# The namespace controller deletes everything (the Deployment's pods through their nodes'
# graceful termination), finalizes the namespace, and the apiserver removes it.
eq "delete namespace" "namespace \"$NS\" deleted" "${K[@]}" delete namespace "$NS" --wait=false
tbl "deleted namespace is Terminating" "$NS\|Terminating\|$AGE" "${K[@]}" get namespace "$NS"
until_eq "namespace emptied and gone" "gone" 120 sh -c \
    "kubectl get namespace $NS 2>&1 | grep -q '(NotFound)' && echo gone || echo present"

echo "# $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
