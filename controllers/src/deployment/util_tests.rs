//! Tests of `util.rs` (kept apart so that `util` and the test builders in `testing` do not
//! import each other).

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::DeploymentStatus;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::testing::*;
use super::util::*;

fn s(v: &str) -> IntOrString {
    IntOrString::String(v.into())
}

#[test]
fn fenceposts_round_surge_up_and_unavailable_down() {
    // kube's TestResolveFenceposts, plus the int and default cases.
    // (maxSurge, maxUnavailable, replicas, (surge, unavailable) or an error)
    type Case = (IntOrString, IntOrString, i32, Option<(i32, i32)>);
    let cases: &[Case] = &[
        (s("0%"), s("0%"), 0, Some((0, 1))),
        (s("39%"), s("39%"), 10, Some((4, 3))),
        (s("oops"), s("39%"), 10, None),
        (s("55%"), s("urg"), 10, None),
        (s("5"), s("1"), 7, None),
        (s("25%"), s("25%"), 10, Some((3, 2))),
        (s("25%"), s("25%"), 8, Some((2, 2))),
        (s("25%"), s("25%"), 1, Some((1, 0))),
        (s("25%"), s("25%"), 3, Some((1, 0))),
        (s("1%"), s("1%"), 2, Some((1, 0))),
        (s("0%"), s("1%"), 2, Some((0, 1))),
        (IntOrString::Int(1), IntOrString::Int(1), 2, Some((1, 1))),
        (IntOrString::Int(0), IntOrString::Int(0), 10, Some((0, 1))),
        (IntOrString::Int(3), s("50%"), 5, Some((3, 2))),
        (IntOrString::Int(-1), IntOrString::Int(1), 5, None),
    ];
    for (surge, unavailable, desired, want) in cases {
        let got = resolve_fenceposts(Some(surge), Some(unavailable), *desired).ok();
        assert_eq!(
            got, *want,
            "surge {surge:?} unavailable {unavailable:?} of {desired}"
        );
    }
    assert_eq!(resolve_fenceposts(None, None, 10), Ok((0, 1)));
}

#[test]
fn max_unavailable_is_capped_and_zero_for_recreate() {
    // kube's TestMaxUnavailable.
    let mut d = deployment("foo", 10, IntOrString::Int(0), IntOrString::Int(20));
    assert_eq!(max_unavailable(&d), 10);
    d = deployment("foo", 3, IntOrString::Int(0), IntOrString::Int(10));
    assert_eq!(max_unavailable(&d), 3);
    d = deployment("foo", 10, s("0%"), s("30%"));
    assert_eq!(max_unavailable(&d), 3);
    d = deployment("foo", 0, IntOrString::Int(0), IntOrString::Int(1));
    assert_eq!(max_unavailable(&d), 0);
    d = deployment("foo", 10, IntOrString::Int(0), IntOrString::Int(1));
    set_recreate(&mut d);
    assert_eq!(max_unavailable(&d), 0);
    assert_eq!(max_surge(&d), 0);
}

#[test]
fn new_rs_new_replicas_follows_kube() {
    // kube's TestNewRSNewReplicas: allRSs is one RS of 5 replicas.
    let cases = [
        (STRATEGY_ROLLING_UPDATE, 1, 5, 1, 5),
        (STRATEGY_ROLLING_UPDATE, 6, 2, 10, 6),
        (STRATEGY_RECREATE, 3, 1, 1, 3),
    ];
    for (strategy, dep_replicas, new_replicas, surge, want) in cases {
        let mut d = deployment(
            "foo",
            dep_replicas,
            IntOrString::Int(surge),
            IntOrString::Int(0),
        );
        if strategy == STRATEGY_RECREATE {
            set_recreate(&mut d);
        }
        let rs5 = rs("foo-a", 5, 0);
        let new = rs("foo-b", new_replicas, 0);
        assert_eq!(
            new_rs_new_replicas(&d, [&rs5], &new),
            Ok(want),
            "{strategy}"
        );
    }
}

#[test]
fn revision_history_is_kept_and_cut() {
    let d = deployment("foo", 1, IntOrString::Int(1), IntOrString::Int(0));
    let mut r = rs("foo-a", 1, 0);
    assert!(set_new_replica_set_annotations(
        &d, &mut r, "1", false, 2000
    ));
    assert_eq!(annotations(&r.metadata)[REVISION_ANNOTATION], "1");
    assert_eq!(annotations(&r.metadata)[DESIRED_REPLICAS_ANNOTATION], "1");
    assert_eq!(annotations(&r.metadata)[MAX_REPLICAS_ANNOTATION], "2");
    assert!(!annotations(&r.metadata).contains_key(REVISION_HISTORY_ANNOTATION));
    // Rolled back to twice: its earlier revisions are remembered in order.
    assert!(set_new_replica_set_annotations(&d, &mut r, "3", true, 2000));
    assert!(set_new_replica_set_annotations(&d, &mut r, "5", true, 2000));
    assert_eq!(annotations(&r.metadata)[REVISION_ANNOTATION], "5");
    assert_eq!(annotations(&r.metadata)[REVISION_HISTORY_ANNOTATION], "1,3");
    // A lower revision never replaces a higher one.
    assert!(!set_new_replica_set_annotations(
        &d, &mut r, "4", true, 2000
    ));
    assert_eq!(annotations(&r.metadata)[REVISION_ANNOTATION], "5");
    // With a 4-character limit the oldest entries are dropped: "3,5" fits, "1,3,5" not.
    assert!(set_new_replica_set_annotations(&d, &mut r, "7", true, 4));
    assert_eq!(annotations(&r.metadata)[REVISION_HISTORY_ANNOTATION], "3,5");
}

#[test]
fn deployment_annotations_are_copied_except_the_controllers_own() {
    let mut d = deployment("foo", 1, IntOrString::Int(1), IntOrString::Int(0));
    let ann = d.metadata.annotations.get_or_insert_with(BTreeMap::new);
    ann.insert("team".into(), "a".into());
    ann.insert(REVISION_ANNOTATION.into(), "9".into());
    ann.insert(LAST_APPLIED_CONFIG_ANNOTATION.into(), "{}".into());
    let mut r = rs("foo-a", 1, 0);
    set_new_replica_set_annotations(&d, &mut r, "2", true, 2000);
    let got = annotations(&r.metadata);
    assert_eq!(got.get("team").map(String::as_str), Some("a"));
    assert_eq!(got[REVISION_ANNOTATION], "2");
    assert!(!got.contains_key(LAST_APPLIED_CONFIG_ANNOTATION));
}

#[test]
fn revisions_max_and_last() {
    let rss = [
        with_revision(rs("a", 0, 0), "1"),
        with_revision(rs("b", 0, 0), "3"),
        with_revision(rs("c", 0, 0), "x"),
        with_revision(rs("d", 0, 0), "2"),
    ];
    assert_eq!(max_revision(&rss), 3);
    assert_eq!(last_revision(&rss), 2);
    assert_eq!(max_revision(std::iter::empty()), 0);
}

#[test]
fn templates_compare_without_the_hash_label() {
    let a = template(&[("app", "web")], "nginx:1");
    let mut b = a.clone();
    b.metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.into(), "abc".into());
    assert!(equal_ignore_hash(&a, &b));
    // An empty annotation map is the same as none (kube's semantic equality).
    b.metadata.as_mut().unwrap().annotations = Some(BTreeMap::new());
    assert!(equal_ignore_hash(&a, &b));
    let c = template(&[("app", "web")], "nginx:2");
    assert!(!equal_ignore_hash(&a, &c));
    let e = template(&[("app", "web"), ("x", "y")], "nginx:1");
    assert!(!equal_ignore_hash(&a, &e));
}

#[test]
fn hash_is_stable_safe_and_moves_with_collision_count() {
    let t = template(&[("app", "web")], "nginx:1");
    let h = compute_hash(&t, None);
    assert_eq!(h, compute_hash(&t, None));
    assert!(!h.is_empty() && h.len() <= 10);
    assert!(h.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{h}");
    // The label itself does not feed the hash (a template read back from an RS hashes the
    // same as the Deployment's).
    let mut labelled = t.clone();
    labelled
        .metadata
        .as_mut()
        .unwrap()
        .labels
        .as_mut()
        .unwrap()
        .insert(POD_TEMPLATE_HASH_LABEL.into(), h.clone());
    assert_eq!(compute_hash(&labelled, None), h);
    assert_ne!(compute_hash(&t, Some(1)), h);
    assert_ne!(compute_hash(&t, Some(1)), compute_hash(&t, Some(2)));
    assert_ne!(
        compute_hash(&template(&[("app", "web")], "nginx:2"), None),
        h
    );
    // kube's alphabet mapping: '0' is byte 48, 48 % 27 = 21 -> '4'; '9' is 57 % 27 = 3 -> 'f'.
    assert_eq!(safe_encode("09"), "4f");
}

#[test]
fn conditions_keep_transition_time_when_status_is_unchanged() {
    let t0 = at(0);
    let t1 = at(100);
    let mut st = DeploymentStatus::default();
    set_condition(
        &mut st,
        new_condition(
            CONDITION_PROGRESSING,
            STATUS_TRUE,
            reason::NEW_REPLICA_SET,
            "a".into(),
            t0,
        ),
    );
    // Same status and reason: nothing changes, not even the message.
    set_condition(
        &mut st,
        new_condition(
            CONDITION_PROGRESSING,
            STATUS_TRUE,
            reason::NEW_REPLICA_SET,
            "b".into(),
            t1,
        ),
    );
    let c = get_condition(Some(&st), CONDITION_PROGRESSING).unwrap();
    assert_eq!(c.message.as_deref(), Some("a"));
    // Same status, new reason: replaced, transition time kept.
    set_condition(
        &mut st,
        new_condition(
            CONDITION_PROGRESSING,
            STATUS_TRUE,
            reason::REPLICA_SET_UPDATED,
            "c".into(),
            t1,
        ),
    );
    let c = get_condition(Some(&st), CONDITION_PROGRESSING).unwrap();
    assert_eq!(c.last_transition_time, Some(Time(t0)));
    assert_eq!(c.last_update_time, Some(Time(t1)));
    // New status: both times move.
    set_condition(
        &mut st,
        new_condition(
            CONDITION_PROGRESSING,
            STATUS_FALSE,
            reason::TIMED_OUT,
            "d".into(),
            t1,
        ),
    );
    let c = get_condition(Some(&st), CONDITION_PROGRESSING).unwrap();
    assert_eq!(c.last_transition_time, Some(Time(t1)));
    assert_eq!(st.conditions.as_ref().unwrap().len(), 1);
    remove_condition(&mut st, CONDITION_PROGRESSING);
    assert!(st.conditions.is_none());
}

#[test]
fn timed_out_only_past_the_deadline_and_never_once_complete() {
    let mut d = deployment("foo", 1, IntOrString::Int(1), IntOrString::Int(0));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(600);
    let mut st = DeploymentStatus::default();
    assert!(
        !deployment_timed_out(&d, &st, at(10_000)),
        "no condition: no base"
    );
    set_condition(
        &mut st,
        new_condition(
            CONDITION_PROGRESSING,
            STATUS_TRUE,
            reason::REPLICA_SET_UPDATED,
            "m".into(),
            at(0),
        ),
    );
    assert!(!deployment_timed_out(&d, &st, at(600)));
    assert!(deployment_timed_out(&d, &st, at(601)));
    let mut done = DeploymentStatus::default();
    set_condition(
        &mut done,
        new_condition(
            CONDITION_PROGRESSING,
            STATUS_TRUE,
            reason::NEW_RS_AVAILABLE,
            "m".into(),
            at(0),
        ),
    );
    assert!(!deployment_timed_out(&d, &done, at(10_000)));
    d.spec.as_mut().unwrap().progress_deadline_seconds = Some(i32::MAX);
    assert!(!deployment_timed_out(&d, &st, at(10_000)));
}

#[test]
fn sort_orders_match_kube() {
    let mut v = [
        rs("b", 1, 10),
        rs("a", 3, 20),
        rs("c", 3, 5),
        rs("d", 1, 10),
    ];
    v.sort_by(by_size_older);
    let names: Vec<_> = v.iter().map(|r| r.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["c", "a", "b", "d"]);
    v.sort_by(by_size_newer);
    let names: Vec<_> = v.iter().map(|r| r.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["a", "c", "d", "b"]);
    let mut v = [
        with_revision(rs("x", 0, 1), "3"),
        with_revision(rs("y", 0, 2), "1"),
        with_revision(rs("z", 0, 0), "1"),
    ];
    v.sort_by(by_revision);
    let names: Vec<_> = v.iter().map(|r| r.metadata.name.clone().unwrap()).collect();
    assert_eq!(names, ["z", "y", "x"]);
}

#[test]
fn proportions_respect_what_is_left() {
    // A ReplicaSet of 3 scaled for max 5, the Deployment now at max 10: its share is 6 (+3),
    // but only 2 may still be added.
    let d = deployment("foo", 10, IntOrString::Int(0), IntOrString::Int(0));
    let mut r = rs("foo-a", 3, 0);
    set_replicas_annotations(&mut r, 5, 5);
    assert_eq!(replica_set_fraction(&r, &d), 3);
    assert_eq!(get_proportion(&r, &d, 5, 0), 3);
    assert_eq!(get_proportion(&r, &d, 5, 3), 2);
    assert_eq!(get_proportion(&r, &d, 5, 5), 0);
    // Never scale up from zero.
    let z = rs("foo-z", 0, 0);
    assert_eq!(get_proportion(&z, &d, 5, 0), 0);
    // Down to zero: the whole size goes.
    let zero = deployment("foo", 0, IntOrString::Int(0), IntOrString::Int(0));
    assert_eq!(get_proportion(&r, &zero, -6, 0), -3);
    // A zero max-replicas annotation with no status to fall back on gives nothing.
    let mut broken = rs("foo-b", 3, 0);
    set_replicas_annotations(&mut broken, 0, 0);
    assert_eq!(replica_set_fraction(&broken, &d), 0);
}

#[test]
fn claims_follow_controller_refs_and_the_selector() {
    let d = deployment("foo", 1, IntOrString::Int(1), IntOrString::Int(0));
    let (ours, _) = rollout_pair(&d);
    let mut orphan = ours.clone();
    orphan.metadata.owner_references = None;
    let mut theirs = ours.clone();
    theirs.metadata.owner_references.as_mut().unwrap()[0].uid = "someone-else".into();
    assert_eq!(claim(&d, &ours, true), Claim::Owned);
    assert_eq!(claim(&d, &ours, false), Claim::Release);
    assert_eq!(claim(&d, &orphan, true), Claim::Adopt);
    assert_eq!(claim(&d, &orphan, false), Claim::Ignore);
    assert_eq!(claim(&d, &theirs, true), Claim::Ignore);
    let mut deleting_orphan = orphan.clone();
    deleting_orphan.metadata.deletion_timestamp = Some(Time(at(0)));
    assert_eq!(claim(&d, &deleting_orphan, true), Claim::Ignore);
    let mut d_deleting = d.clone();
    d_deleting.metadata.deletion_timestamp = Some(Time(at(0)));
    assert_eq!(claim(&d_deleting, &orphan, true), Claim::Ignore);
    assert_eq!(
        claim(&d_deleting, &ours, false),
        Claim::Ignore,
        "no release while deleting"
    );
    assert_eq!(claim(&d_deleting, &ours, true), Claim::Owned);
    let patch = adopt_patch(&d, &orphan).unwrap();
    assert_eq!(patch["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        patch["metadata"]["ownerReferences"][0]["blockOwnerDeletion"],
        true
    );
    assert_eq!(
        patch["metadata"]["ownerReferences"][0]["kind"],
        "Deployment"
    );
    assert_eq!(patch["metadata"]["uid"], "uid-foo-new");
    let patch = release_patch(&d, &ours);
    assert_eq!(patch["metadata"]["ownerReferences"][0]["$patch"], "delete");
    assert_eq!(patch["metadata"]["ownerReferences"][0]["uid"], "uid-foo");
}
