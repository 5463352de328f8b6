//! kube's ReplicationController manager (`pkg/controller/replication`): the ReplicaSet
//! controller run over ReplicationControllers presented as ReplicaSets. These are the two
//! conversions of kube's `conversion.go` adapter — a ReplicationController's equality selector
//! becomes `matchLabels`, everything else carries over field for field — so the controller's
//! decisions are the ReplicaSet ones, and its status goes back as the ReplicationController's.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    ReplicaSet, ReplicaSetCondition, ReplicaSetSpec, ReplicaSetStatus,
};
use k8s_openapi::api::core::v1::{
    ReplicationController, ReplicationControllerCondition, ReplicationControllerStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// The ReplicaSet a ReplicationController stands for. An absent or empty selector is the
/// template's labels, as the API server defaults it.
pub fn to_replica_set(rc: &ReplicationController) -> ReplicaSet {
    let spec = rc.spec.clone().unwrap_or_default();
    let labels: BTreeMap<String, String> = match spec.selector.filter(|s| !s.is_empty()) {
        Some(s) => s,
        None => spec
            .template
            .as_ref()
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default(),
    };
    ReplicaSet {
        metadata: rc.metadata.clone(),
        spec: Some(ReplicaSetSpec {
            replicas: spec.replicas,
            min_ready_seconds: spec.min_ready_seconds,
            selector: LabelSelector {
                match_labels: Some(labels),
                match_expressions: None,
            },
            template: spec.template,
        }),
        status: rc.status.as_ref().map(|s| ReplicaSetStatus {
            replicas: s.replicas,
            fully_labeled_replicas: s.fully_labeled_replicas,
            ready_replicas: s.ready_replicas,
            available_replicas: s.available_replicas,
            observed_generation: s.observed_generation,
            conditions: s.conditions.as_ref().map(|cs| {
                cs.iter()
                    .map(|c| ReplicaSetCondition {
                        type_: c.type_.clone(),
                        status: c.status.clone(),
                        last_transition_time: c.last_transition_time.clone(),
                        reason: c.reason.clone(),
                        message: c.message.clone(),
                    })
                    .collect()
            }),
        }),
    }
}

/// The ReplicationController status a ReplicaSet status stands for.
pub fn to_rc_status(s: &ReplicaSetStatus) -> ReplicationControllerStatus {
    ReplicationControllerStatus {
        replicas: s.replicas,
        fully_labeled_replicas: s.fully_labeled_replicas,
        ready_replicas: s.ready_replicas,
        available_replicas: s.available_replicas,
        observed_generation: s.observed_generation,
        conditions: s.conditions.as_ref().map(|cs| {
            cs.iter()
                .map(|c| ReplicationControllerCondition {
                    type_: c.type_.clone(),
                    status: c.status.clone(),
                    last_transition_time: c.last_transition_time.clone(),
                    reason: c.reason.clone(),
                    message: c.message.clone(),
                })
                .collect()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodTemplateSpec, ReplicationControllerSpec};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn rc(selector: Option<&[(&str, &str)]>) -> ReplicationController {
        let map = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
            kv.iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        ReplicationController {
            metadata: ObjectMeta {
                name: Some("web".into()),
                namespace: Some("ns".into()),
                uid: Some("rc-uid".into()),
                generation: Some(3),
                ..Default::default()
            },
            spec: Some(ReplicationControllerSpec {
                replicas: Some(4),
                min_ready_seconds: Some(7),
                selector: selector.map(map),
                template: Some(PodTemplateSpec {
                    metadata: Some(ObjectMeta {
                        labels: Some(map(&[("app", "web"), ("tier", "fe")])),
                        ..Default::default()
                    }),
                    spec: None,
                }),
            }),
            status: Some(ReplicationControllerStatus {
                replicas: 2,
                ready_replicas: Some(1),
                observed_generation: Some(2),
                conditions: Some(vec![ReplicationControllerCondition {
                    type_: "ReplicaFailure".into(),
                    status: "True".into(),
                    reason: Some("FailedCreate".into()),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn the_selector_becomes_match_labels_and_the_rest_carries_over() {
        let rs = to_replica_set(&rc(Some(&[("app", "web")])));
        let spec = rs.spec.as_ref().unwrap();
        assert_eq!(
            spec.selector.match_labels.as_ref().unwrap().len(),
            1,
            "only the RC's own selector"
        );
        assert_eq!((spec.replicas, spec.min_ready_seconds), (Some(4), Some(7)));
        assert_eq!(rs.metadata.uid.as_deref(), Some("rc-uid"));
        let status = rs.status.as_ref().unwrap();
        assert_eq!((status.replicas, status.ready_replicas), (2, Some(1)));
        assert_eq!(
            status.conditions.as_ref().unwrap()[0].reason.as_deref(),
            Some("FailedCreate")
        );
    }

    #[test]
    fn an_absent_or_empty_selector_is_the_template_labels() {
        for sel in [None, Some(&[][..])] {
            let rs = to_replica_set(&rc(sel));
            assert_eq!(
                rs.spec.unwrap().selector.match_labels.unwrap().len(),
                2,
                "{sel:?}"
            );
        }
    }

    #[test]
    fn status_converts_back_unchanged() {
        let original = rc(None).status.unwrap();
        let rs = to_replica_set(&rc(None));
        assert_eq!(to_rc_status(rs.status.as_ref().unwrap()), original);
    }
}
