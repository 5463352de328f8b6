//! Builders for the Deployment controller's unit tests.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, ReplicaSet, ReplicaSetSpec, ReplicaSetStatus,
    RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::util::*;

/// A fixed instant plus `secs`.
pub fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap_or_default()
}

pub fn string(s: &str) -> IntOrString {
    IntOrString::String(s.into())
}

pub fn template(labels: &[(&str, &str)], image: &str) -> PodTemplateSpec {
    PodTemplateSpec {
        metadata: Some(ObjectMeta {
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        }),
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "c".into(),
                image: Some(image.into()),
                ..Default::default()
            }],
            ..Default::default()
        }),
    }
}

/// A RollingUpdate Deployment `name` in `default`, selector and template label `app: <name>`,
/// image `nginx:1`, generation 1, deadline 600 s, history limit 10.
pub fn deployment(
    name: &str,
    replicas: i32,
    surge: IntOrString,
    unavailable: IntOrString,
) -> Deployment {
    Deployment {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            generation: Some(1),
            creation_timestamp: Some(Time(at(0))),
            ..Default::default()
        },
        spec: Some(DeploymentSpec {
            replicas: Some(replicas),
            selector: LabelSelector {
                match_labels: Some(BTreeMap::from([("app".to_string(), name.to_string())])),
                ..Default::default()
            },
            template: template(&[("app", name)], "nginx:1"),
            strategy: Some(DeploymentStrategy {
                type_: Some(STRATEGY_ROLLING_UPDATE.into()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(surge),
                    max_unavailable: Some(unavailable),
                }),
            }),
            revision_history_limit: Some(10),
            progress_deadline_seconds: Some(600),
            ..Default::default()
        }),
        status: None,
    }
}

pub fn set_recreate(d: &mut Deployment) {
    d.spec.as_mut().unwrap().strategy = Some(DeploymentStrategy {
        type_: Some(STRATEGY_RECREATE.into()),
        rolling_update: None,
    });
}

/// A bare ReplicaSet (no template, no owner), created `created` seconds after `at(0)`.
pub fn rs(name: &str, replicas: i32, created: i64) -> ReplicaSet {
    ReplicaSet {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("default".into()),
            uid: Some(format!("uid-{name}")),
            creation_timestamp: Some(Time(at(created))),
            ..Default::default()
        },
        spec: Some(ReplicaSetSpec {
            replicas: Some(replicas),
            ..Default::default()
        }),
        status: None,
    }
}

/// A ReplicaSet of `d` with `template` (given its hash label), at revision `revision`.
pub fn rs_for(
    d: &Deployment,
    template: PodTemplateSpec,
    name: &str,
    revision: &str,
    created: i64,
) -> ReplicaSet {
    let hash = compute_hash(&template, None);
    let mut template = template;
    template
        .metadata
        .get_or_insert_with(Default::default)
        .labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash.clone());
    let mut r = rs(name, 0, created);
    r.metadata.labels = template.metadata.as_ref().and_then(|m| m.labels.clone());
    r.metadata.owner_references = controller_ref(d).map(|o| vec![o]);
    let mut selector = d.spec.as_ref().unwrap().selector.clone();
    selector
        .match_labels
        .get_or_insert_with(BTreeMap::new)
        .insert(POD_TEMPLATE_HASH_LABEL.into(), hash);
    let spec = r.spec.as_mut().unwrap();
    spec.selector = selector;
    spec.template = Some(template);
    with_revision(r, revision)
}

/// `foo-new` (the Deployment's template, revision 2, created at 10 s) and `foo-old` (image
/// `nginx:0`, revision 1, created at 0), both with 0 replicas.
pub fn rollout_pair(d: &Deployment) -> (ReplicaSet, ReplicaSet) {
    let name = d.metadata.name.clone().unwrap();
    let new = rs_for(
        d,
        d.spec.as_ref().unwrap().template.clone(),
        "foo-new",
        "2",
        10,
    );
    let old = rs_for(d, template(&[("app", &name)], "nginx:0"), "foo-old", "1", 0);
    (new, old)
}

pub fn with_revision(mut r: ReplicaSet, revision: &str) -> ReplicaSet {
    r.metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert(REVISION_ANNOTATION.into(), revision.into());
    r
}

pub fn with_available(mut r: ReplicaSet, available: i32) -> ReplicaSet {
    r.status
        .get_or_insert_with(Default::default)
        .available_replicas = Some(available);
    r
}

pub fn with_status(mut r: ReplicaSet, replicas: i32, ready: i32, available: i32) -> ReplicaSet {
    r.status = Some(ReplicaSetStatus {
        replicas,
        ready_replicas: Some(ready),
        available_replicas: Some(available),
        observed_generation: r.metadata.generation,
        ..Default::default()
    });
    r
}

/// `spec.replicas` and the replica annotations of a ReplicaSet last scaled for
/// `desired`/`max`.
pub fn scaled_to(mut r: ReplicaSet, replicas: i32, desired: i32, max: i32) -> ReplicaSet {
    set_rs_replicas(&mut r, replicas);
    set_replicas_annotations(&mut r, desired, max);
    r
}
