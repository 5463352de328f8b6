//! Table tests after kube's `reconciler_test.go` (`TestReconcile1Pod`,
//! `TestReconcileEndpointSlicesSomePreexisting`, `TestReconcileEndpointSlicesReplaceDeprecated`,
//! placeholder handling).

use super::*;
use crate::endpoint::desired::tests::{pod, svc};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn service() -> Service {
    let mut s = svc("web", &[("http", 80, IntOrString::String("http".into()))]);
    s.metadata.uid = Some("svc-uid".into());
    s
}

fn pods(n: usize, ready: bool) -> Vec<Pod> {
    (0..n)
        .map(|i| {
            pod(
                &format!("p{i}"),
                &format!("10.0.{}.{}", i / 200, i % 200 + 1),
                ready,
            )
        })
        .collect()
}

fn want(
    svc: &Service,
    pods: &[Pod],
) -> BTreeMap<PortKey, (Vec<EndpointPort>, BTreeMap<String, Endpoint>)> {
    let refs: Vec<&Pod> = pods.iter().collect();
    desired(svc, &refs)
}

/// Applies `changes` as the API server would: created slices get names.
fn apply(existing: &[Arc<EndpointSlice>], c: &Changes) -> Vec<Arc<EndpointSlice>> {
    let gone: HashSet<_> = c.delete.iter().map(|s| s.metadata.name.clone()).collect();
    let updated: BTreeMap<_, _> = c
        .update
        .iter()
        .map(|s| (s.metadata.name.clone(), s.clone()))
        .collect();
    let mut out: Vec<Arc<EndpointSlice>> = existing
        .iter()
        .filter(|s| !gone.contains(&s.metadata.name))
        .map(|s| {
            updated
                .get(&s.metadata.name)
                .cloned()
                .map_or_else(|| s.clone(), Arc::new)
        })
        .collect();
    for (i, s) in c.create.iter().enumerate() {
        let mut s = s.clone();
        s.metadata.name = Some(format!("web-new{}-{i}", out.len()));
        out.push(Arc::new(s));
    }
    out
}

fn sizes(slices: &[Arc<EndpointSlice>]) -> Vec<usize> {
    let mut v: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
    v.sort();
    v
}

#[test]
fn one_pod_makes_one_slice_with_kubes_labels_owner_and_conditions() {
    let s = service();
    let c = reconcile(&s, &[], want(&s, &pods(1, true)), 100, Some("t"));
    assert_eq!((c.create.len(), c.update.len(), c.delete.len()), (1, 0, 0));
    let slice = &c.create[0];
    assert_eq!(slice.metadata.generate_name.as_deref(), Some("web-"));
    assert_eq!(slice.address_type, "IPv4");
    let l = slice.metadata.labels.as_ref().expect("labels");
    assert_eq!(l[SERVICE_NAME_LABEL], "web");
    assert_eq!(l[MANAGED_BY_LABEL], MANAGED_BY);
    assert_eq!(l["team"], "a");
    let owner = &slice.metadata.owner_references.as_ref().expect("owner")[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Service", "svc-uid", Some(true))
    );
    let e = &slice.endpoints[0];
    assert_eq!(e.addresses, ["10.0.0.1"]);
    let cond = e.conditions.as_ref().expect("conditions");
    assert_eq!(
        (cond.ready, cond.serving, cond.terminating),
        (Some(true), Some(true), Some(false))
    );
    assert_eq!(slice.ports.as_ref().expect("ports")[0].port, Some(8080));
    assert_eq!(
        slice.metadata.annotations.as_ref().expect("a")[TRIGGER_TIME_ANNOTATION],
        "t"
    );
}

#[test]
fn endpoints_are_split_at_max_per_slice_and_a_second_pass_changes_nothing() {
    let s = service();
    let all = pods(250, true);
    let c = reconcile(&s, &[], want(&s, &all), 100, None);
    assert_eq!(c.create.len(), 3);
    let slices = apply(&[], &c);
    assert_eq!(sizes(&slices), [50, 100, 100]);
    let again = reconcile(&s, &slices, want(&s, &all), 100, None);
    assert!(again.is_empty(), "{again:?}");
}

#[test]
fn a_readiness_change_updates_only_the_slice_holding_the_pod() {
    let s = service();
    let mut all = pods(150, true);
    let slices = apply(&[], &reconcile(&s, &[], want(&s, &all), 100, None));
    all[3] = pod("p3", "10.0.0.4", false);
    let c = reconcile(&s, &slices, want(&s, &all), 100, None);
    assert_eq!((c.create.len(), c.update.len(), c.delete.len()), (0, 1, 0));
    let e = c.update[0]
        .endpoints
        .iter()
        .find(|e| e.addresses[0] == "10.0.0.4")
        .expect("p3");
    let cond = e.conditions.as_ref().expect("c");
    assert_eq!((cond.ready, cond.serving), (Some(false), Some(false)));
}

#[test]
fn a_terminating_pod_stays_not_ready_and_terminating() {
    let s = service();
    let mut p = pod("p0", "10.0.0.1", true);
    p.metadata.deletion_timestamp = Some(Time(chrono::Utc::now()));
    let c = reconcile(&s, &[], want(&s, &[p]), 100, None);
    let cond = c.create[0].endpoints[0].conditions.clone().expect("c");
    assert_eq!(
        (cond.ready, cond.serving, cond.terminating),
        (Some(false), Some(true), Some(true))
    );
}

#[test]
fn new_endpoints_fill_a_slice_with_room_before_a_new_slice_is_made() {
    let s = service();
    let all = pods(130, true);
    let slices = apply(&[], &reconcile(&s, &[], want(&s, &all[..90]), 100, None));
    assert_eq!(sizes(&slices), [90]);
    // 40 more: 10 fit nowhere as a whole, so the 90-slice is not touched; one new slice of 40.
    let c = reconcile(&s, &slices, want(&s, &all), 100, None);
    assert_eq!((c.create.len(), c.update.len()), (1, 0));
    assert_eq!(c.create[0].endpoints.len(), 40);
    // 5 more fit whole into the existing slice: an update, no create.
    let c = reconcile(&s, &slices, want(&s, &all[..95]), 100, None);
    assert_eq!((c.create.len(), c.update.len()), (0, 1));
    assert_eq!(c.update[0].endpoints.len(), 95);
}

#[test]
fn scaling_down_removes_endpoints_and_empty_slices_and_to_zero_keeps_a_placeholder() {
    let s = service();
    let all = pods(150, true);
    let slices = apply(&[], &reconcile(&s, &[], want(&s, &all), 100, None));
    let c = reconcile(&s, &slices, want(&s, &all[..20]), 100, None);
    assert!(
        c.create.is_empty(),
        "endpoints stay where they are; nothing is repacked"
    );
    let after = apply(&slices, &c);
    assert_eq!(sizes(&after).iter().sum::<usize>(), 20);
    assert!(
        after.iter().all(|s| !s.endpoints.is_empty()),
        "emptied slices are deleted"
    );
    let c = reconcile(&s, &after, want(&s, &[]), 100, None);
    let empty = apply(&after, &c);
    assert_eq!(sizes(&empty), [0], "one placeholder");
    assert!(empty[0].ports.is_none());
    assert!(reconcile(&s, &empty, want(&s, &[]), 100, None).is_empty());
    // No pods at all from the start: a placeholder is created.
    let c = reconcile(&s, &[], want(&s, &[]), 100, None);
    assert_eq!(c.create.len(), 1);
    assert!(c.create[0].endpoints.is_empty());
}

#[test]
fn a_port_change_reuses_the_slice_instead_of_create_and_delete() {
    let s = service();
    let all = pods(10, true);
    let slices = apply(&[], &reconcile(&s, &[], want(&s, &all), 100, None));
    let moved = svc("web", &[("http", 80, IntOrString::Int(9090))]);
    let c = reconcile(&moved, &slices, want(&moved, &all), 100, None);
    assert_eq!((c.create.len(), c.update.len(), c.delete.len()), (0, 1, 0));
    assert_eq!(c.update[0].ports.as_ref().expect("p")[0].port, Some(9090));
    assert_eq!(c.update[0].metadata.name, slices[0].metadata.name);
}

#[test]
fn changed_service_labels_update_the_slices() {
    let s = service();
    let all = pods(3, true);
    let slices = apply(&[], &reconcile(&s, &[], want(&s, &all), 100, None));
    let mut relabelled = s.clone();
    relabelled.metadata.labels = Some([("team".to_string(), "b".to_string())].into());
    let c = reconcile(&relabelled, &slices, want(&relabelled, &all), 100, None);
    assert_eq!(c.update.len(), 1);
    assert_eq!(
        c.update[0].metadata.labels.as_ref().expect("l")["team"],
        "b"
    );
}
