//! apps/v1 DaemonSets, StatefulSets and ControllerRevisions (kube's `pkg/apis/apps/v1`
//! defaults and `pkg/apis/apps/validation`): defaults, the selector against the template, the
//! restart policy pods of a controller must have, and the spec fields an update may not change.
//! The pod template's own defaults and validation are the generic pod spec's (in `strategy`).

use serde_json::{json, Value};

use crate::error::Cause;
use crate::registry::kinds::fields::{
    immutable, non_negative, one_of, selector_selects_template, set_default,
};

/// The annotation apps/v1 keeps a DaemonSet's template generation in (kube's internal
/// `spec.templateGeneration`, converted to and from it).
pub const TEMPLATE_GENERATION_ANNOTATION: &str = "deprecated.daemonset.template.generation";

/// `SetDefaults_DaemonSet`.
pub fn default_daemonset(ds: &mut Value) {
    set_default(ds, "/spec/updateStrategy/type", json!("RollingUpdate"));
    if ds.pointer("/spec/updateStrategy/type") == Some(&json!("RollingUpdate")) {
        set_default(
            ds,
            "/spec/updateStrategy/rollingUpdate/maxUnavailable",
            json!(1),
        );
        set_default(ds, "/spec/updateStrategy/rollingUpdate/maxSurge", json!(0));
    }
    set_default(ds, "/spec/revisionHistoryLimit", json!(10));
}

/// The DaemonSet strategy's template generation: 1 on create, one more each time an update
/// changes the template (kept in [`TEMPLATE_GENERATION_ANNOTATION`]).
pub fn daemonset_template_generation(old: Option<&Value>, ds: &mut Value) {
    let generation = match old {
        None => 1,
        Some(old) => {
            let g = old
                .pointer("/metadata/annotations")
                .and_then(|a| a.get(TEMPLATE_GENERATION_ANNOTATION))
                .and_then(Value::as_str)
                .and_then(|s| s.parse::<i64>().ok())
                .unwrap_or(0);
            if old.pointer("/spec/template") != ds.pointer("/spec/template") {
                g + 1
            } else {
                g
            }
        }
    };
    if !ds.get("metadata").is_some_and(Value::is_object) {
        return;
    }
    set_default(ds, "/metadata/annotations", json!({}));
    if let Some(a) = ds
        .pointer_mut("/metadata/annotations")
        .and_then(Value::as_object_mut)
    {
        a.insert(
            TEMPLATE_GENERATION_ANNOTATION.into(),
            json!(generation.to_string()),
        );
    }
}

/// `SetDefaults_StatefulSet` (1.32 feature gates: StatefulSetAutoDeletePVC on,
/// MaxUnavailableStatefulSet off), and the claim templates' `SetDefaults_PersistentVolumeClaim`.
pub fn default_statefulset(sts: &mut Value) {
    set_default(sts, "/spec/podManagementPolicy", json!("OrderedReady"));
    let type_unset = sts
        .pointer("/spec/updateStrategy/type")
        .is_none_or(|t| t.is_null() || t == "");
    if type_unset {
        if let Some(spec) = sts.get_mut("spec").filter(|s| s.is_object()) {
            if let Some(us) = spec
                .get_mut("updateStrategy")
                .and_then(Value::as_object_mut)
            {
                us.remove("type");
            }
        }
        set_default(sts, "/spec/updateStrategy/type", json!("RollingUpdate"));
        set_default(sts, "/spec/updateStrategy/rollingUpdate", json!({}));
    }
    let rolling = sts.pointer("/spec/updateStrategy/type") == Some(&json!("RollingUpdate"));
    if rolling
        && sts
            .pointer("/spec/updateStrategy/rollingUpdate")
            .is_some_and(Value::is_object)
    {
        set_default(
            sts,
            "/spec/updateStrategy/rollingUpdate/partition",
            json!(0),
        );
    }
    set_default(
        sts,
        "/spec/persistentVolumeClaimRetentionPolicy/whenDeleted",
        json!("Retain"),
    );
    set_default(
        sts,
        "/spec/persistentVolumeClaimRetentionPolicy/whenScaled",
        json!("Retain"),
    );
    set_default(sts, "/spec/replicas", json!(1));
    set_default(sts, "/spec/revisionHistoryLimit", json!(10));
    if let Some(claims) = sts
        .pointer_mut("/spec/volumeClaimTemplates")
        .and_then(Value::as_array_mut)
    {
        for c in claims.iter_mut().filter(|c| c.is_object()) {
            set_default(c, "/spec/volumeMode", json!("Filesystem"));
            set_default(c, "/status/phase", json!("Pending"));
        }
    }
}

/// Pods of DaemonSets, StatefulSets and ReplicationControllers restart always.
pub fn restart_always(obj: &Value, causes: &mut Vec<Cause>) {
    let restart = obj
        .pointer("/spec/template/spec/restartPolicy")
        .and_then(Value::as_str)
        .unwrap_or("");
    if restart != "Always" {
        causes.push(Cause::unsupported(
            "spec.template.spec.restartPolicy",
            restart,
            &["Always"],
        ));
    }
}

/// `ValidateDaemonSetSpec`.
pub fn validate_daemonset(ds: &Value, causes: &mut Vec<Cause>) {
    selector_selects_template(ds, "daemonset", causes);
    restart_always(ds, causes);
    non_negative(ds, "spec.minReadySeconds", causes);
    non_negative(ds, "spec.revisionHistoryLimit", causes);
    one_of(
        ds,
        "spec.updateStrategy.type",
        &["RollingUpdate", "OnDelete"],
        causes,
    );
    if ds.pointer("/spec/updateStrategy/type") == Some(&json!("RollingUpdate")) {
        let ru = ds.pointer("/spec/updateStrategy/rollingUpdate");
        let zero = |v: Option<&Value>| match v {
            None | Some(Value::Null) => true,
            Some(Value::Number(n)) => n.as_i64() == Some(0),
            Some(Value::String(s)) => s == "0" || s == "0%",
            _ => false,
        };
        let unavailable = ru.and_then(|r| r.get("maxUnavailable"));
        let surge = ru.and_then(|r| r.get("maxSurge"));
        if zero(unavailable) && zero(surge) {
            causes.push(Cause::invalid(
                "spec.updateStrategy.rollingUpdate.maxUnavailable",
                unavailable.unwrap_or(&json!(0)),
                "may not be 0 when `maxSurge` is 0",
            ));
        }
    }
}

/// `ValidateDaemonSetUpdate`: the selector never changes.
pub fn validate_daemonset_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    immutable(old, new, "spec.selector", causes);
}

/// `ValidateStatefulSetSpec`.
pub fn validate_statefulset(sts: &Value, causes: &mut Vec<Cause>) {
    one_of(
        sts,
        "spec.podManagementPolicy",
        &["OrderedReady", "Parallel"],
        causes,
    );
    one_of(
        sts,
        "spec.updateStrategy.type",
        &["RollingUpdate", "OnDelete"],
        causes,
    );
    if sts.pointer("/spec/updateStrategy/type") == Some(&json!("OnDelete"))
        && sts
            .pointer("/spec/updateStrategy/rollingUpdate")
            .is_some_and(|r| !r.is_null())
    {
        causes.push(Cause::invalid(
            "spec.updateStrategy.rollingUpdate",
            sts.pointer("/spec/updateStrategy/rollingUpdate")
                .unwrap_or(&Value::Null),
            "only allowed for updateStrategy 'RollingUpdate'",
        ));
    }
    non_negative(sts, "spec.updateStrategy.rollingUpdate.partition", causes);
    for f in ["whenDeleted", "whenScaled"] {
        one_of(
            sts,
            &format!("spec.persistentVolumeClaimRetentionPolicy.{f}"),
            &["Retain", "Delete"],
            causes,
        );
    }
    non_negative(sts, "spec.replicas", causes);
    non_negative(sts, "spec.minReadySeconds", causes);
    non_negative(sts, "spec.revisionHistoryLimit", causes);
    non_negative(sts, "spec.ordinals.start", causes);
    selector_selects_template(sts, "statefulset", causes);
    restart_always(sts, causes);
}

/// The spec fields of a StatefulSet an update may change (`ValidateStatefulSetUpdate`).
const STATEFULSET_MUTABLE: &[&str] = &[
    "replicas",
    "ordinals",
    "template",
    "updateStrategy",
    "persistentVolumeClaimRetentionPolicy",
    "minReadySeconds",
    "revisionHistoryLimit",
];

/// `ValidateStatefulSetUpdate`: everything but the fields above is fixed at creation.
pub fn validate_statefulset_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let fixed = |s: &Value| {
        let mut spec = s.get("spec").cloned().unwrap_or(json!({}));
        if let Some(m) = spec.as_object_mut() {
            for f in STATEFULSET_MUTABLE {
                m.remove(*f);
            }
            m.retain(|_, v| !v.is_null());
        }
        spec
    };
    if fixed(old) != fixed(new) {
        causes.push(Cause::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

/// `ValidateControllerRevision`.
pub fn validate_controller_revision(cr: &Value, causes: &mut Vec<Cause>) {
    if cr.get("data").is_none_or(Value::is_null) {
        causes.push(Cause {
            reason: "FieldValueRequired",
            field: "data".into(),
            message: "Required value: data is mandatory".into(),
        });
    }
    non_negative(cr, "revision", causes);
}

/// `ValidateControllerRevisionUpdate`: the data never changes.
pub fn validate_controller_revision_update(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    immutable(old, new, "data", causes);
}

/// `SetDefaults_ReplicationController`: a selector and labels from the template's labels,
/// one replica.
pub fn default_replication_controller(rc: &mut Value) {
    if let Some(tl) = rc
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object)
        .cloned()
    {
        let empty = |v: Option<&Value>| v.and_then(Value::as_object).is_none_or(|m| m.is_empty());
        if empty(rc.pointer("/spec/selector")) {
            if let Some(spec) = rc.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("selector".into(), Value::Object(tl.clone()));
            }
        }
        if empty(rc.pointer("/metadata/labels")) {
            if let Some(m) = rc.get_mut("metadata").and_then(Value::as_object_mut) {
                m.insert("labels".into(), Value::Object(tl));
            }
        }
    }
    set_default(rc, "/spec/replicas", json!(1));
}

/// `ValidateReplicationControllerSpec`: a non-empty selector that selects the template.
pub fn validate_replication_controller(rc: &Value, causes: &mut Vec<Cause>) {
    let selector = rc.pointer("/spec/selector").and_then(Value::as_object);
    if selector.is_none_or(|s| s.is_empty()) {
        causes.push(Cause::required("spec.selector"));
    }
    non_negative(rc, "spec.replicas", causes);
    non_negative(rc, "spec.minReadySeconds", causes);
    if rc.pointer("/spec/template").is_none_or(Value::is_null) {
        causes.push(Cause::required("spec.template"));
        return;
    }
    let labels = rc
        .pointer("/spec/template/metadata/labels")
        .and_then(Value::as_object);
    if let Some(sel) = selector.filter(|s| !s.is_empty()) {
        if !sel
            .iter()
            .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
        {
            causes.push(Cause::invalid(
                "spec.template.metadata.labels",
                &json!(labels.cloned().unwrap_or_default()),
                "`selector` does not match template `labels`",
            ));
        }
    }
    restart_always(rc, causes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered(causes: &[Cause]) -> Vec<String> {
        causes
            .iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    fn controller(labels: Value) -> Value {
        json!({"metadata": {"name": "x"}, "spec": {"selector": {"matchLabels": {"app": "x"}},
            "template": {"metadata": {"labels": labels},
                "spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}}}})
    }

    #[test]
    fn daemonset_defaults_and_template_generation() {
        let mut ds = controller(json!({"app": "x"}));
        default_daemonset(&mut ds);
        assert_eq!(
            ds["spec"]["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
        );
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);
        let mut on_delete = json!({"spec": {"updateStrategy": {"type": "OnDelete"}}});
        default_daemonset(&mut on_delete);
        assert!(on_delete["spec"]["updateStrategy"]
            .get("rollingUpdate")
            .is_none());

        daemonset_template_generation(None, &mut ds);
        assert_eq!(
            ds["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION],
            "1"
        );
        let mut same = ds.clone();
        daemonset_template_generation(Some(&ds), &mut same);
        assert_eq!(
            same["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION],
            "1"
        );
        let mut changed = ds.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("j");
        daemonset_template_generation(Some(&ds), &mut changed);
        assert_eq!(
            changed["metadata"]["annotations"][TEMPLATE_GENERATION_ANNOTATION],
            "2"
        );
    }

    #[test]
    fn daemonset_validation() {
        let mut ds = controller(json!({"app": "x"}));
        default_daemonset(&mut ds);
        let mut causes = Vec::new();
        validate_daemonset(&ds, &mut causes);
        assert!(causes.is_empty(), "{:?}", rendered(&causes));

        let mut bad = controller(json!({"app": "y"}));
        bad["spec"]["template"]["spec"]["restartPolicy"] = json!("Never");
        bad["spec"]["updateStrategy"] =
            json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 0}});
        validate_daemonset(&bad, &mut causes);
        assert_eq!(
            rendered(&causes),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"y\"}: `selector` does not match template `labels`",
                "spec.template.spec.restartPolicy: Unsupported value: \"Never\": supported values: \"Always\"",
                "spec.updateStrategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0",
            ]
        );
        let mut causes = Vec::new();
        let mut empty = controller(json!({}));
        empty["spec"]["selector"] = json!({});
        validate_daemonset(&empty, &mut causes);
        assert_eq!(
            rendered(&causes)[0],
            "spec.selector: Invalid value: {}: empty selector is invalid for daemonset"
        );
        let mut causes = Vec::new();
        let mut moved = ds.clone();
        moved["spec"]["selector"] = json!({"matchLabels": {"app": "z"}});
        validate_daemonset_update(&ds, &moved, &mut causes);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.selector");
    }

    #[test]
    fn statefulset_defaults() {
        let mut sts = controller(json!({"app": "x"}));
        sts["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"}, "spec": {}}]);
        default_statefulset(&mut sts);
        let spec = &sts["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(spec["podManagementPolicy"], "OrderedReady");
        assert_eq!(
            spec["updateStrategy"],
            json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
        );
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"],
            json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
        );
        assert_eq!(spec["revisionHistoryLimit"], 10);
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["volumeMode"],
            "Filesystem"
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["status"]["phase"],
            "Pending"
        );
        // An explicit RollingUpdate without parameters gets no partition (kube's defaulter).
        let mut explicit = json!({"spec": {"updateStrategy": {"type": "RollingUpdate"}}});
        default_statefulset(&mut explicit);
        assert!(explicit["spec"]["updateStrategy"]
            .get("rollingUpdate")
            .is_none());
        let mut causes = Vec::new();
        validate_statefulset(&sts, &mut causes);
        assert!(causes.is_empty(), "{:?}", rendered(&causes));
    }

    #[test]
    fn statefulset_updates_change_only_some_fields() {
        let mut old = controller(json!({"app": "x"}));
        old["spec"]["serviceName"] = json!("web");
        default_statefulset(&mut old);
        let mut new = old.clone();
        new["spec"]["replicas"] = json!(3);
        new["spec"]["template"]["spec"]["containers"][0]["image"] = json!("j");
        new["spec"]["updateStrategy"] = json!({"type": "OnDelete"});
        let mut causes = Vec::new();
        validate_statefulset_update(&old, &new, &mut causes);
        assert!(causes.is_empty(), "{:?}", rendered(&causes));
        new["spec"]["serviceName"] = json!("other");
        validate_statefulset_update(&old, &new, &mut causes);
        assert_eq!(
            rendered(&causes),
            vec!["spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"]
        );
    }

    #[test]
    fn controller_revisions_need_data_that_never_changes() {
        let mut causes = Vec::new();
        validate_controller_revision(&json!({"revision": -1}), &mut causes);
        assert_eq!(
            rendered(&causes),
            vec![
                "data: Required value: data is mandatory",
                "revision: Invalid value: -1: must be greater than or equal to 0",
            ]
        );
        let mut causes = Vec::new();
        validate_controller_revision_update(
            &json!({"data": {"a": 1}, "revision": 1}),
            &json!({"data": {"a": 2}, "revision": 2}),
            &mut causes,
        );
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "data");
    }

    #[test]
    fn replication_controller_defaults_from_the_template() {
        let mut rc = json!({"metadata": {"name": "x"}, "spec": {"template": {
            "metadata": {"labels": {"app": "x"}},
            "spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "i"}]}}}});
        default_replication_controller(&mut rc);
        assert_eq!(rc["spec"]["selector"], json!({"app": "x"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "x"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        let mut causes = Vec::new();
        validate_replication_controller(&rc, &mut causes);
        assert!(causes.is_empty(), "{:?}", rendered(&causes));

        let mut kept = json!({"metadata": {"labels": {"own": "1"}}, "spec": {"replicas": 0,
            "selector": {"app": "y"}, "template": {"metadata": {"labels": {"app": "x"}},
            "spec": {"restartPolicy": "OnFailure"}}}});
        default_replication_controller(&mut kept);
        assert_eq!(kept["metadata"]["labels"], json!({"own": "1"}));
        assert_eq!(kept["spec"]["replicas"], 0);
        validate_replication_controller(&kept, &mut causes);
        assert_eq!(
            rendered(&causes),
            vec![
                "spec.template.metadata.labels: Invalid value: {\"app\":\"x\"}: `selector` does not match template `labels`",
                "spec.template.spec.restartPolicy: Unsupported value: \"OnFailure\": supported values: \"Always\"",
            ]
        );
        let mut causes = Vec::new();
        validate_replication_controller(&json!({"spec": {}}), &mut causes);
        assert_eq!(
            rendered(&causes),
            vec![
                "spec.selector: Required value",
                "spec.template: Required value"
            ]
        );
    }
}
