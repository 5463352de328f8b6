//! `policy/v1` PodDisruptionBudget and the pod `eviction` subresource (kube's
//! `pkg/apis/policy/validation` and `pkg/registry/core/pod/storage/eviction.go`), as pure
//! functions: the PDB's validation and initial status, which budget an eviction must pass
//! ([`plan`]), and the verify-and-decrement of that budget ([`check_and_decrement`]). The
//! handler (`handlers/evict.rs`) does the reads and writes around them.

use serde_json::{json, Map, Value};

use crate::error::{ApiError, Cause};
use crate::machinery::selectors::LabelSelector;
use crate::machinery::validation::{label_key_ok, label_value_ok};

/// kube's `MaxDisruptedPodSize`: evictions the disruption controller has not yet confirmed.
pub const MAX_DISRUPTED_POD_SIZE: usize = 2000;

/// The status a new PDB starts with: Go's zero `PodDisruptionBudgetStatus` (its four counts
/// have no omitempty).
pub fn initial_status() -> Value {
    json!({"disruptionsAllowed": 0, "currentHealthy": 0, "desiredHealthy": 0, "expectedPods": 0})
}

/// `ValidatePositiveIntOrPercent` and `IsNotMoreThan100Percent` of an int-or-string field.
fn validate_int_or_percent(v: &Value, field: &str, causes: &mut Vec<Cause>) {
    match v {
        Value::Number(n) if n.as_i64().is_none_or(|n| n < 0) => causes.push(Cause::invalid(
            field,
            v,
            "must be greater than or equal to 0",
        )),
        Value::String(s) => match percent(s) {
            None => causes.push(Cause::invalid(
                field,
                v,
                "a valid percent string must be a numeric string followed by an ending '%' (e.g. '1%',  or '93%', regex used for validation is '[0-9]+%')",
            )),
            Some(p) if p > 100 => causes.push(Cause::invalid(
                field,
                v,
                "must not be greater than 100%",
            )),
            Some(_) => {}
        },
        _ => {}
    }
}

/// `50%` → 50; anything else (not `[0-9]+%`) → None.
pub fn percent(s: &str) -> Option<u64> {
    let digits = s.strip_suffix('%')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().or(Some(u64::MAX))
}

/// `ValidateLabelSelector`: operators, their values, and label keys and values.
fn validate_selector(sel: &Value, at: &str, causes: &mut Vec<Cause>) {
    let Some(obj) = sel.as_object() else { return };
    if let Some(ml) = obj.get("matchLabels").and_then(Value::as_object) {
        for (k, v) in ml {
            if !label_key_ok(k) {
                causes.push(Cause::invalid(format!("{at}.matchLabels"), &json!(k), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
            }
            if !v.as_str().is_some_and(label_value_ok) {
                causes.push(Cause::invalid(format!("{at}.matchLabels"), v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
            }
        }
    }
    let exprs = obj.get("matchExpressions").and_then(Value::as_array);
    for (i, e) in exprs.into_iter().flatten().enumerate() {
        let here = format!("{at}.matchExpressions[{i}]");
        let op = e.get("operator").and_then(Value::as_str).unwrap_or("");
        let values = e
            .get("values")
            .and_then(Value::as_array)
            .map_or(0, Vec::len);
        match op {
            "In" | "NotIn" if values == 0 => causes.push(Cause::required(format!("{here}.values"))),
            "Exists" | "DoesNotExist" if values > 0 => causes.push(Cause::forbidden(
                format!("{here}.values"),
                "may not be specified when `operator` is 'Exists' or 'DoesNotExist'",
            )),
            "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
            other => causes.push(Cause::invalid(
                format!("{here}.operator"),
                &json!(other),
                "not a valid selector operator",
            )),
        }
        let key = e.get("key").and_then(Value::as_str).unwrap_or("");
        if !label_key_ok(key) {
            causes.push(Cause::invalid(format!("{here}.key"), &json!(key), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
        }
    }
}

/// `ValidatePodDisruptionBudget` (spec) and the status counts' `ValidateNonnegativeField`.
pub fn validate(obj: &Value, causes: &mut Vec<Cause>) {
    let empty = json!({});
    let spec = obj.get("spec").unwrap_or(&empty);
    let min = spec.get("minAvailable").filter(|v| !v.is_null());
    let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
    if min.is_some() && max.is_some() {
        causes.push(Cause::invalid(
            "spec",
            spec,
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    if let Some(v) = min {
        validate_int_or_percent(v, "spec.minAvailable", causes);
    }
    if let Some(v) = max {
        validate_int_or_percent(v, "spec.maxUnavailable", causes);
    }
    if let Some(sel) = spec.get("selector") {
        validate_selector(sel, "spec.selector", causes);
    }
    if let Some(p) = spec
        .get("unhealthyPodEvictionPolicy")
        .and_then(Value::as_str)
    {
        let allowed = ["AlwaysAllow", "IfHealthyBudget"];
        if !allowed.contains(&p) {
            causes.push(Cause::unsupported(
                "spec.unhealthyPodEvictionPolicy",
                p,
                &allowed,
            ));
        }
    }
    for f in [
        "disruptionsAllowed",
        "currentHealthy",
        "desiredHealthy",
        "expectedPods",
    ] {
        if let Some(n) = obj.pointer(&format!("/status/{f}")).and_then(Value::as_i64) {
            if n < 0 {
                causes.push(Cause::invalid(
                    format!("status.{f}"),
                    &json!(n),
                    "must be greater than or equal to 0",
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Eviction
// ---------------------------------------------------------------------------------------------

/// kube's message for an eviction a budget refuses.
pub const VIOLATES_BUDGET: &str =
    "Cannot evict pod as it would violate the pod's disruption budget.";
/// kube's message when more than one budget selects the pod (a 500 Status, not an error).
pub const MULTIPLE_BUDGETS: &str =
    "This pod has more than one PodDisruptionBudget, which the eviction subresource does not support.";

/// What an eviction must do before it deletes the pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// No budget applies (`canIgnorePDB`: the pod is Succeeded, Failed, Pending or already
    /// being deleted): delete it, pinned to the resourceVersion read when
    /// `pin_resource_version` (`shouldEnforceResourceVersion`: a Pending pod could become
    /// healthy meanwhile).
    DeleteIgnoringBudgets { pin_resource_version: bool },
    /// No budget selects the pod: delete it.
    NoBudget,
    /// More than one budget selects it: answer kube's 500 Status.
    MultipleBudgets,
    /// The pod is not Ready and the budget lets unhealthy pods go without spending a
    /// disruption: delete it pinned to the resourceVersion read; a conflict is a 429.
    DeleteUnhealthy { budget: String },
    /// Spend one of the budget's disruptions ([`check_and_decrement`]), then delete.
    Decrement { budget: String },
}

fn phase(pod: &Value) -> &str {
    pod.pointer("/status/phase")
        .and_then(Value::as_str)
        .unwrap_or("")
}

/// `podutil.IsPodReady`.
pub fn is_pod_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// The budgets (of the pod's namespace) whose selector selects the pod. On policy/v1 an empty
/// selector selects every pod; a missing or invalid one selects none.
pub fn budgets_selecting<'a>(pod: &Value, budgets: &'a [Value]) -> Vec<&'a Value> {
    let labels = pod.pointer("/metadata/labels").and_then(Value::as_object);
    let ns = pod.pointer("/metadata/namespace");
    budgets
        .iter()
        .filter(|b| b.pointer("/metadata/namespace") == ns)
        .filter(|b| {
            let sel = b.pointer("/spec/selector").unwrap_or(&Value::Null);
            LabelSelector::from_json(sel).is_ok_and(|s| s.matches(labels))
        })
        .collect()
}

fn int(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or(0)
}

/// Which budget an eviction of `pod` must pass, given the budgets of its namespace.
pub fn plan(pod: &Value, budgets: &[Value]) -> Plan {
    let deleting = pod.pointer("/metadata/deletionTimestamp").is_some();
    let p = phase(pod);
    if matches!(p, "Succeeded" | "Failed" | "Pending") || deleting {
        let terminal = matches!(p, "Succeeded" | "Failed");
        return Plan::DeleteIgnoringBudgets {
            pin_resource_version: !terminal && !deleting,
        };
    }
    let selecting = budgets_selecting(pod, budgets);
    let budget = match selecting.as_slice() {
        [] => return Plan::NoBudget,
        [one] => *one,
        _ => return Plan::MultipleBudgets,
    };
    let name = budget
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !is_pod_ready(pod) {
        let policy = budget
            .pointer("/spec/unhealthyPodEvictionPolicy")
            .and_then(Value::as_str);
        if policy == Some("AlwaysAllow") {
            return Plan::DeleteUnhealthy { budget: name };
        }
        let current = int(budget, "/status/currentHealthy");
        let desired = int(budget, "/status/desiredHealthy");
        if current >= desired && desired > 0 {
            return Plan::DeleteUnhealthy { budget: name };
        }
    }
    Plan::Decrement { budget: name }
}

fn forbidden(budget: &str, why: &str) -> ApiError {
    ApiError {
        details: Some(json!({"name": budget, "group": "policy", "kind": "poddisruptionbudget"})),
        ..ApiError::new(
            403,
            "Forbidden",
            format!("poddisruptionbudget.policy {budget:?} is forbidden: {why}"),
        )
    }
}

/// kube's `createTooManyRequestsError`: the budget's status is older than its spec.
pub fn still_processing(budget: &str) -> ApiError {
    ApiError {
        details: Some(json!({
            "causes": [{"reason": "DisruptionBudget",
                "message": format!("The disruption budget {budget} is still being processed by the server.")}],
            "retryAfterSeconds": 10,
        })),
        ..ApiError::new(429, "TooManyRequests", VIOLATES_BUDGET)
    }
}

/// `pdbhelper.UpdateDisruptionAllowedCondition` with `meta.SetStatusCondition`'s rules: the
/// transition time moves only when the status does.
pub fn set_disruption_allowed_condition(status: &mut Map<String, Value>, now: &str) {
    let allowed = status
        .get("disruptionsAllowed")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        > 0;
    let observed = status
        .get("observedGeneration")
        .and_then(Value::as_i64)
        .unwrap_or(0);
    let (st, reason) = if allowed {
        ("True", "SufficientPods")
    } else {
        ("False", "InsufficientPods")
    };
    set_condition(status, st, reason, "", observed, now);
}

/// `meta.SetStatusCondition` for the `DisruptionAllowed` condition.
pub fn set_condition(
    status: &mut Map<String, Value>,
    st: &str,
    reason: &str,
    message: &str,
    observed_generation: i64,
    now: &str,
) {
    let conds = status.entry("conditions").or_insert_with(|| json!([]));
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return;
    };
    let mut c = json!({"type": "DisruptionAllowed", "status": st, "reason": reason,
        "message": message, "observedGeneration": observed_generation, "lastTransitionTime": now});
    if let Some(old) = list.iter_mut().find(|c| c["type"] == "DisruptionAllowed") {
        if old["status"] == st {
            if let Some(t) = old.get("lastTransitionTime") {
                c["lastTransitionTime"] = t.clone();
            }
        }
        *old = c;
    } else {
        list.push(c);
    }
}

/// kube's `checkAndDecrement`: refuses (429, or 403 for a corrupt status) or returns the budget
/// with one disruption spent and the pod recorded in `status.disruptedPods` at `now`.
pub fn check_and_decrement(budget: &Value, pod_name: &str, now: &str) -> Result<Value, ApiError> {
    let name = budget
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if int(budget, "/status/observedGeneration") < int(budget, "/metadata/generation") {
        return Err(still_processing(name));
    }
    let allowed = int(budget, "/status/disruptionsAllowed");
    if allowed < 0 {
        return Err(forbidden(name, "pdb disruptions allowed is negative"));
    }
    let disrupted = budget
        .pointer("/status/disruptedPods")
        .and_then(Value::as_object)
        .map_or(0, Map::len);
    if disrupted > MAX_DISRUPTED_POD_SIZE {
        return Err(forbidden(
            name,
            "DisruptedPods map too big - too many evictions not confirmed by PDB controller",
        ));
    }
    if allowed == 0 {
        return Err(ApiError {
            details: Some(json!({"causes": [{"reason": "DisruptionBudget",
                "message": format!("The disruption budget {name} needs {} healthy pods and has {} currently",
                    int(budget, "/status/desiredHealthy"), int(budget, "/status/currentHealthy"))}]})),
            ..ApiError::new(429, "TooManyRequests", VIOLATES_BUDGET)
        });
    }
    let mut new = budget.clone();
    if !new.get("status").is_some_and(Value::is_object) {
        new["status"] = json!({});
    }
    let Some(status) = new.get_mut("status").and_then(Value::as_object_mut) else {
        return Err(ApiError::internal("budget status is not an object"));
    };
    status.insert("disruptionsAllowed".into(), json!(allowed - 1));
    if allowed - 1 == 0 {
        set_disruption_allowed_condition(status, now);
    }
    let pods = status.entry("disruptedPods").or_insert_with(|| json!({}));
    if !pods.is_object() {
        *pods = json!({});
    }
    pods[pod_name] = json!(now);
    Ok(new)
}

/// `podutil.UpdatePodCondition` with the `DisruptionTarget` condition an eviction adds before it
/// deletes the pod. Returns whether the pod changed.
pub fn add_disruption_target(pod: &mut Value, now: &str) -> bool {
    let want = json!({"type": "DisruptionTarget", "status": "True",
        "reason": "EvictionByEvictionAPI", "message": "Eviction API: evicting"});
    if !pod.get("status").is_some_and(Value::is_object) {
        pod["status"] = json!({});
    }
    let conds = &mut pod["status"]["conditions"];
    if !conds.is_array() {
        *conds = json!([]);
    }
    let Some(list) = conds.as_array_mut() else {
        return false;
    };
    match list.iter_mut().find(|c| c["type"] == "DisruptionTarget") {
        Some(old) => {
            let same = ["status", "reason", "message"]
                .iter()
                .all(|k| old.get(*k) == want.get(*k));
            if same {
                return false;
            }
            if old["status"] != want["status"] || old.get("lastTransitionTime").is_none() {
                old["lastTransitionTime"] = json!(now);
            }
            for k in ["status", "reason", "message"] {
                old[k] = want[k].clone();
            }
            true
        }
        None => {
            let mut c = want;
            c["lastProbeTime"] = Value::Null;
            c["lastTransitionTime"] = json!(now);
            list.push(c);
            true
        }
    }
}

#[cfg(test)]
#[path = "pdb_tests.rs"]
mod tests;
