//! Table tests after kube's `disruption_test.go`.

use super::*;
use crate::util::pod::testing::{at, owned_by, pod, ready_at, with_labels};
use k8s_openapi::api::policy::v1::PodDisruptionBudgetSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};

fn pdb(min: Option<IntOrString>, max: Option<IntOrString>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ObjectMeta {
            name: Some("b".into()),
            namespace: Some("ns".into()),
            generation: Some(1),
            ..ObjectMeta::default()
        },
        spec: Some(PodDisruptionBudgetSpec {
            min_available: min,
            max_unavailable: max,
            selector: Some(LabelSelector {
                match_labels: Some([("app".to_string(), "web".to_string())].into()),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

fn int(n: i32) -> Option<IntOrString> {
    Some(IntOrString::Int(n))
}

fn pct(s: &str) -> Option<IntOrString> {
    Some(IntOrString::String(s.into()))
}

fn ready(name: &str) -> Pod {
    ready_at(pod(name), Some(at(0)))
}

fn rs_pod(name: &str, ready: bool) -> Pod {
    let p = owned_by(pod(name), "ReplicaSet", "rs", "rs-uid");
    if ready {
        ready_at(p, Some(at(0)))
    } else {
        p
    }
}

/// Every ReplicaSet pod's controller is the Deployment `dep` of `replicas`.
fn scales(replicas: i32) -> impl Fn(&OwnerReference) -> Scale {
    move |r: &OwnerReference| (r.uid == "rs-uid").then(|| ("dep-uid".to_string(), replicas))
}

fn none(_: &OwnerReference) -> Scale {
    None
}

/// The status one sync computes, from scratch.
fn sync(
    b: &PodDisruptionBudget,
    pods: &[Pod],
    scale: &dyn Fn(&OwnerReference) -> Scale,
) -> PodDisruptionBudgetStatus {
    let sel = budget_selector(b).unwrap();
    let selected = pods_for(sel.as_ref(), pods.iter());
    let e = expected_pod_count(b, &selected, scale).unwrap();
    let (disrupted, _, _) = disrupted_pods(b, &selected, at(0));
    let o = Observed {
        current_healthy: count_healthy(&selected, &disrupted, at(0)),
        desired_healthy: e.desired_healthy,
        expected_count: e.expected_count,
        disrupted_pods: disrupted,
    };
    new_status(b, &o, at(0)).unwrap()
}

#[test]
fn percentages_round_up() {
    for (v, total, want) in [
        (IntOrString::Int(3), 10, 3),
        (IntOrString::String("50%".into()), 3, 2),
        (IntOrString::String("34%".into()), 3, 2),
        (IntOrString::String("0%".into()), 3, 0),
        (IntOrString::String("100%".into()), 7, 7),
    ] {
        assert_eq!(scaled_value(&v, total, true), Ok(want), "{v:?} of {total}");
    }
    assert!(scaled_value(&IntOrString::String("x".into()), 3, true).is_err());
}

#[test]
fn counts_follow_kubes_table() {
    // (minAvailable, maxUnavailable, pods (name, ready), deployment replicas) →
    // (expected, desired, current, allowed)
    type Case = (
        Option<IntOrString>,
        Option<IntOrString>,
        &'static [bool],
        i32,
        (i32, i32, i32, i32),
    );
    let cases: &[Case] = &[
        // TestNoSelector-like: minAvailable int counts the selected pods.
        (int(3), None, &[true, true, true], 3, (3, 3, 3, 0)),
        (int(2), None, &[true, true, true], 3, (3, 2, 3, 1)),
        (int(2), None, &[true, false, true], 3, (3, 2, 2, 0)),
        // No pods at all: nothing allowed even with minAvailable 0.
        (int(0), None, &[], 3, (0, 0, 0, 0)),
        // Percentages take the controller's scale, rounding up.
        (pct("50%"), None, &[true, true, true], 3, (3, 2, 3, 1)),
        (pct("50%"), None, &[true, true], 4, (4, 2, 2, 0)),
        // maxUnavailable: desired = scale - max (never below 0).
        (None, int(1), &[true, true, true], 3, (3, 2, 3, 1)),
        (None, pct("30%"), &[true, true, true], 3, (3, 2, 3, 1)),
        (None, int(5), &[true, true], 3, (3, 0, 2, 2)),
        (None, int(0), &[true, true, true], 3, (3, 3, 3, 0)),
    ];
    for (min, max, pods, replicas, want) in cases {
        let b = pdb(min.clone(), max.clone());
        let pods: Vec<Pod> = pods
            .iter()
            .enumerate()
            .map(|(i, r)| rs_pod(&format!("p{i}"), *r))
            .collect();
        let s = sync(&b, &pods, &scales(*replicas));
        assert_eq!(
            (
                s.expected_pods,
                s.desired_healthy,
                s.current_healthy,
                s.disruptions_allowed
            ),
            *want,
            "min {min:?} max {max:?} pods {pods:?}"
        );
        assert_eq!(s.observed_generation, Some(1));
        let c = &s.conditions.as_ref().unwrap()[0];
        let (st, reason) = if want.3 > 0 {
            ("True", "SufficientPods")
        } else {
            ("False", "InsufficientPods")
        };
        assert_eq!((c.status.as_str(), c.reason.as_str()), (st, reason));
    }
}

#[test]
fn only_selected_pods_count() {
    let b = pdb(int(1), None);
    let pods = vec![
        ready("a"),
        with_labels(ready("b"), &[("app", "db")]),
        ready("c"),
    ];
    let s = sync(&b, &pods, &none);
    assert_eq!((s.expected_pods, s.current_healthy), (2, 2));
    // An empty selector selects everything; a missing one nothing.
    let mut all = pdb(int(1), None);
    all.spec.as_mut().unwrap().selector = Some(LabelSelector::default());
    assert_eq!(sync(&all, &pods, &none).expected_pods, 3);
    let mut nothing = pdb(int(1), None);
    nothing.spec.as_mut().unwrap().selector = None;
    assert_eq!(sync(&nothing, &pods, &none).expected_pods, 0);
}

#[test]
fn pods_without_a_known_controller() {
    // Unmanaged pods are reported, not an error, and count for nothing in the scale.
    let b = pdb(None, int(1));
    let pods = [ready("lonely"), rs_pod("p", true)];
    let selected: Vec<&Pod> = pods.iter().collect();
    let e = expected_pod_count(&b, &selected, &scales(2)).unwrap();
    assert_eq!(e.unmanaged, ["lonely"]);
    assert_eq!((e.expected_count, e.desired_healthy), (2, 1));
    // A controller the lookups cannot find is an error (kube's failSafe follows).
    let err = expected_pod_count(&b, &selected, &none).unwrap_err();
    assert_eq!(err, "found no controllers for pod \"p\"");
    // minAvailable as an integer needs no controller at all.
    assert!(expected_pod_count(&pdb(int(1), None), &selected, &none).is_ok());
    assert!(!needs_scale(&pdb(int(1), None)));
    assert!(needs_scale(&pdb(pct("10%"), None)));
    assert!(needs_scale(&pdb(None, int(0))));
}

#[test]
fn recent_evictions_are_not_healthy_until_they_time_out() {
    let mut b = pdb(int(2), None);
    let pods = [ready("a"), ready("b"), ready("c"), ready("gone")];
    b.status = Some(PodDisruptionBudgetStatus {
        disrupted_pods: Some(
            [
                ("a".to_string(), Time(at(-30))),
                ("b".to_string(), Time(at(-200))),
                ("missing".to_string(), Time(at(-10))),
            ]
            .into(),
        ),
        ..PodDisruptionBudgetStatus::default()
    });
    let selected: Vec<&Pod> = pods.iter().collect();
    let (kept, recheck, timed_out) = disrupted_pods(&b, &selected, at(0));
    // "a" still counts as disrupted; "b" timed out; "missing" has no pod.
    assert_eq!(kept.keys().collect::<Vec<_>>(), ["a"]);
    assert_eq!(timed_out, ["b"]);
    assert_eq!(recheck, Some(at(-30) + DELETION_TIMEOUT));
    assert_eq!(count_healthy(&selected, &kept, at(0)), 3);
    let s = sync(&b, &pods, &none);
    assert_eq!((s.current_healthy, s.disruptions_allowed), (3, 1));
    assert_eq!(s.disrupted_pods.unwrap().keys().collect::<Vec<_>>(), ["a"]);
    // A pod being deleted is neither healthy nor kept in the map.
    let mut deleting = ready("a");
    deleting.metadata.deletion_timestamp = Some(Time(at(0)));
    let pods = [deleting, ready("b")];
    let s = sync(&b, &pods, &none);
    assert_eq!(s.current_healthy, 1);
    assert_eq!(s.disrupted_pods, None);
}

#[test]
fn an_up_to_date_status_is_not_written_again() {
    let b = pdb(int(1), None);
    let pods = [ready("a"), ready("b")];
    let mut b2 = b.clone();
    b2.status = Some(sync(&b, &pods, &none));
    let selected: Vec<&Pod> = pods.iter().collect();
    let o = Observed {
        current_healthy: 2,
        desired_healthy: 1,
        expected_count: 2,
        disrupted_pods: BTreeMap::new(),
    };
    assert_eq!(new_status(&b2, &o, at(5)), None);
    // A new generation is written even when the numbers are the same.
    b2.metadata.generation = Some(2);
    let s = new_status(&b2, &o, at(5)).unwrap();
    assert_eq!(s.observed_generation, Some(2));
    // The transition time stays while the condition's status does.
    assert_eq!(
        s.conditions.as_ref().unwrap()[0].last_transition_time,
        Time(at(0))
    );
    assert_eq!(count_healthy(&selected, &BTreeMap::new(), at(0)), 2);
}

#[test]
fn a_failed_sync_allows_no_disruption() {
    let mut b = pdb(None, int(1));
    b.status = Some(PodDisruptionBudgetStatus {
        disruptions_allowed: 3,
        observed_generation: Some(1),
        ..PodDisruptionBudgetStatus::default()
    });
    let s = fail_safe_status(&b, "found no controllers for pod \"p\"", at(0));
    assert_eq!(s.disruptions_allowed, 0);
    let c = &s.conditions.unwrap()[0];
    assert_eq!(
        (
            c.type_.as_str(),
            c.status.as_str(),
            c.reason.as_str(),
            c.message.as_str()
        ),
        (
            "DisruptionAllowed",
            "False",
            "SyncFailed",
            "found no controllers for pod \"p\""
        )
    );
}
