use super::*;

const NOW: &str = "2026-01-01T00:00:00Z";

fn budget(name: &str, selector: Value, status: Value) -> Value {
    json!({"metadata": {"name": name, "namespace": "ns", "generation": 1},
        "spec": {"minAvailable": 2, "selector": selector}, "status": status})
}

fn healthy(allowed: i64) -> Value {
    json!({"observedGeneration": 1, "disruptionsAllowed": allowed, "currentHealthy": 3,
        "desiredHealthy": 3 - allowed, "expectedPods": 3})
}

fn pod(phase: &str, ready: bool) -> Value {
    json!({"metadata": {"name": "p", "namespace": "ns", "labels": {"app": "web"}},
        "status": {"phase": phase, "conditions": [
            {"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
}

fn web() -> Value {
    json!({"matchLabels": {"app": "web"}})
}

fn causes_of(obj: &Value) -> Vec<(String, String)> {
    let mut causes = Vec::new();
    validate(obj, &mut causes);
    causes.into_iter().map(|c| (c.field, c.message)).collect()
}

#[test]
fn validation_follows_kubes_rules() {
    let ok = |spec: Value| json!({"spec": spec});
    for spec in [
        json!({"minAvailable": 1, "selector": web()}),
        json!({"minAvailable": "100%"}),
        json!({"maxUnavailable": "0%", "selector": {}}),
        json!({"maxUnavailable": 0, "unhealthyPodEvictionPolicy": "AlwaysAllow"}),
    ] {
        assert_eq!(causes_of(&ok(spec.clone())), vec![], "{spec}");
    }
    let cases: &[(Value, &str, &str)] = &[
        (
            json!({"minAvailable": 1, "maxUnavailable": 1}),
            "spec",
            "minAvailable and maxUnavailable cannot be both set",
        ),
        (
            json!({"minAvailable": -1}),
            "spec.minAvailable",
            "Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            json!({"maxUnavailable": "101%"}),
            "spec.maxUnavailable",
            "Invalid value: \"101%\": must not be greater than 100%",
        ),
        (
            json!({"minAvailable": "half"}),
            "spec.minAvailable",
            "a valid percent string must be a numeric string followed by an ending '%'",
        ),
        (
            json!({"selector": {"matchExpressions": [{"key": "a", "operator": "In"}]}}),
            "spec.selector.matchExpressions[0].values",
            "Required value",
        ),
        (
            json!({"selector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}}),
            "spec.selector.matchExpressions[0].operator",
            "not a valid selector operator",
        ),
        (
            json!({"unhealthyPodEvictionPolicy": "Never"}),
            "spec.unhealthyPodEvictionPolicy",
            "Unsupported value: \"Never\": supported values: \"AlwaysAllow\", \"IfHealthyBudget\"",
        ),
    ];
    for (spec, field, message) in cases {
        let got = causes_of(&ok(spec.clone()));
        assert!(
            got.iter().any(|(f, m)| f == field && m.contains(message)),
            "{spec}: {got:?}"
        );
    }
    let got = causes_of(&json!({"spec": {}, "status": {"disruptionsAllowed": -1}}));
    assert_eq!(got[0].0, "status.disruptionsAllowed");
}

#[test]
fn percentages_parse_as_kube_reads_them() {
    assert_eq!(percent("25%"), Some(25));
    assert_eq!(percent("0%"), Some(0));
    for bad in ["%", "25", "2.5%", "-1%", " 1%"] {
        assert_eq!(percent(bad), None, "{bad}");
    }
}

#[test]
fn the_plan_depends_on_the_pods_phase_readiness_and_the_budgets() {
    let one = vec![budget("b", web(), healthy(1))];
    // canIgnorePDB: terminal, pending, or already being deleted.
    for (phase, pin) in [("Succeeded", false), ("Failed", false), ("Pending", true)] {
        assert_eq!(
            plan(&pod(phase, false), &one),
            Plan::DeleteIgnoringBudgets {
                pin_resource_version: pin
            },
            "{phase}"
        );
    }
    let mut deleting = pod("Running", true);
    deleting["metadata"]["deletionTimestamp"] = json!(NOW);
    assert_eq!(
        plan(&deleting, &one),
        Plan::DeleteIgnoringBudgets {
            pin_resource_version: false
        }
    );
    // Budgets: none matching, one, several; other namespaces and nil selectors never match,
    // an empty one matches everything.
    let other = budget("db", json!({"matchLabels": {"app": "db"}}), healthy(1));
    let mut elsewhere = budget("x", web(), healthy(1));
    elsewhere["metadata"]["namespace"] = json!("other");
    let nil = budget("nil", Value::Null, healthy(1));
    assert_eq!(
        plan(&pod("Running", true), &[other.clone(), elsewhere, nil]),
        Plan::NoBudget
    );
    assert_eq!(
        plan(&pod("Running", true), &[other, one[0].clone()]),
        Plan::Decrement { budget: "b".into() }
    );
    let all = budget("all", json!({}), healthy(1));
    assert_eq!(
        plan(&pod("Running", true), &[all, one[0].clone()]),
        Plan::MultipleBudgets
    );
    // An unready pod: free to go while the budget is met, else it spends a disruption,
    // unless the policy is AlwaysAllow.
    assert_eq!(
        plan(&pod("Running", false), &one),
        Plan::DeleteUnhealthy { budget: "b".into() }
    );
    let short = budget(
        "b",
        web(),
        json!({"observedGeneration": 1, "disruptionsAllowed": 0, "currentHealthy": 1, "desiredHealthy": 2}),
    );
    assert_eq!(
        plan(&pod("Running", false), std::slice::from_ref(&short)),
        Plan::Decrement { budget: "b".into() }
    );
    let mut always = short.clone();
    always["spec"]["unhealthyPodEvictionPolicy"] = json!("AlwaysAllow");
    assert_eq!(
        plan(&pod("Running", false), &[always]),
        Plan::DeleteUnhealthy { budget: "b".into() }
    );
    // desiredHealthy 0 does not count as met.
    let unset = budget(
        "b",
        web(),
        json!({"currentHealthy": 0, "desiredHealthy": 0}),
    );
    assert_eq!(
        plan(&pod("Running", false), &[unset]),
        Plan::Decrement { budget: "b".into() }
    );
}

#[test]
fn a_budget_with_room_spends_one_disruption_and_records_the_pod() {
    let b = budget("b", web(), healthy(2));
    let new = check_and_decrement(&b, "p", NOW).unwrap();
    assert_eq!(new["status"]["disruptionsAllowed"], 1);
    assert_eq!(new["status"]["disruptedPods"], json!({"p": NOW}));
    assert!(new["status"].get("conditions").is_none());
    // The last disruption flips the condition to InsufficientPods.
    let last = check_and_decrement(&new, "q", NOW).unwrap();
    assert_eq!(last["status"]["disruptionsAllowed"], 0);
    assert_eq!(last["status"]["disruptedPods"], json!({"p": NOW, "q": NOW}));
    let c = &last["status"]["conditions"][0];
    assert_eq!(
        (&c["type"], &c["status"], &c["reason"]),
        (
            &json!("DisruptionAllowed"),
            &json!("False"),
            &json!("InsufficientPods")
        )
    );
}

#[test]
fn a_spent_or_stale_budget_refuses_with_kubes_429() {
    let e = check_and_decrement(&budget("b", web(), healthy(0)), "p", NOW).unwrap_err();
    assert_eq!((e.code, e.reason), (429, "TooManyRequests"));
    assert_eq!(e.message, VIOLATES_BUDGET);
    let d = e.details.unwrap();
    assert_eq!(d["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(
        d["causes"][0]["message"],
        "The disruption budget b needs 3 healthy pods and has 3 currently"
    );
    assert!(d.get("retryAfterSeconds").is_none());

    let mut stale = budget("b", web(), healthy(2));
    stale["metadata"]["generation"] = json!(2);
    let e = check_and_decrement(&stale, "p", NOW).unwrap_err();
    assert_eq!(e.code, 429);
    let d = e.details.unwrap();
    assert_eq!(
        d["causes"][0]["message"],
        "The disruption budget b is still being processed by the server."
    );
    assert_eq!(d["retryAfterSeconds"], 10);

    let e = check_and_decrement(&budget("b", web(), healthy(-1)), "p", NOW).unwrap_err();
    assert_eq!(e.code, 403);
}

#[test]
fn the_disruption_target_condition_is_added_once() {
    let mut p = pod("Running", true);
    assert!(add_disruption_target(&mut p, NOW));
    let c = p["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "DisruptionTarget")
        .unwrap()
        .clone();
    assert_eq!(c["reason"], "EvictionByEvictionAPI");
    assert_eq!(c["message"], "Eviction API: evicting");
    assert_eq!(c["lastTransitionTime"], NOW);
    assert!(!add_disruption_target(&mut p, "2027-01-01T00:00:00Z"));
    assert_eq!(p["status"]["conditions"].as_array().unwrap().len(), 2);
}
