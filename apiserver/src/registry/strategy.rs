//! What happens to an object between the request body and the store: decoding against the
//! Kubernetes 1.32 types (k8s-openapi), strict/warn/ignore of unknown fields, server-set
//! metadata (uid, creationTimestamp, generation, generateName), defaulting, and validation — the
//! parts of kube-apiserver's registry strategies that kubectl and controllers rely on.

use serde_json::{json, Value};

use crate::error::{ApiError, Cause};
use crate::machinery::meta::{self, meta, meta_mut, meta_str};
use crate::machinery::validation::{
    dns1035_label, dns1123_label, dns1123_subdomain, label_key_ok, label_value_ok,
};
use crate::registry::kinds::{apps, batch, endpointslice};
use crate::registry::ObjectRef;
use crate::resources::{ResourceInfo, Subresource};

/// `?fieldValidation=`: what to do with fields the type does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldValidation {
    Ignore,
    Warn,
    Strict,
}

impl FieldValidation {
    pub fn parse(s: Option<&str>) -> Result<Self, ApiError> {
        match s {
            None | Some("") | Some("Warn") => Ok(FieldValidation::Warn),
            Some("Strict") => Ok(FieldValidation::Strict),
            Some("Ignore") => Ok(FieldValidation::Ignore),
            Some(other) => Err(ApiError::bad_request(format!(
                "fieldValidation parameter unsupported: {other}"
            ))),
        }
    }
}

fn name_check(r: &ResourceInfo, name: &str) -> Option<String> {
    match r.plural {
        "namespaces" => dns1123_label(name),
        "services" => dns1035_label(name),
        _ => dns1123_subdomain(name),
    }
}

/// Decodes `obj` as the resource's Kubernetes type. Returns the object as the type sees it
/// (unknown fields gone, as kube-apiserver stores it) and the paths of the unknown fields.
pub fn decode_typed(r: &ResourceInfo, obj: &Value) -> Result<(Value, Vec<String>), ApiError> {
    use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coord, core::v1 as core};
    use k8s_openapi::api::{batch::v1 as batch, discovery::v1 as discovery};
    fn round<T: serde::de::DeserializeOwned + serde::Serialize>(
        r: &ResourceInfo,
        obj: &Value,
    ) -> Result<Value, ApiError> {
        let typed: T = serde_json::from_value(obj.clone()).map_err(|e| {
            ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: {e}",
                r.kind, r.version, r.kind
            ))
        })?;
        serde_json::to_value(typed).map_err(|e| ApiError::internal(e.to_string()))
    }
    let typed = match r.kind {
        "Namespace" => round::<core::Namespace>(r, obj)?,
        "Node" => round::<core::Node>(r, obj)?,
        "Pod" => round::<core::Pod>(r, obj)?,
        "Service" => round::<core::Service>(r, obj)?,
        "Endpoints" => round::<core::Endpoints>(r, obj)?,
        "ConfigMap" => round::<core::ConfigMap>(r, obj)?,
        "Secret" => round::<core::Secret>(r, obj)?,
        "Event" => round::<core::Event>(r, obj)?,
        "Deployment" => round::<apps::Deployment>(r, obj)?,
        "ReplicaSet" => round::<apps::ReplicaSet>(r, obj)?,
        "Lease" => round::<coord::Lease>(r, obj)?,
        "Job" => round::<batch::Job>(r, obj)?,
        "CronJob" => round::<batch::CronJob>(r, obj)?,
        "ServiceAccount" => round::<core::ServiceAccount>(r, obj)?,
        "EndpointSlice" => round::<discovery::EndpointSlice>(r, obj)?,
        "PodDisruptionBudget" => {
            round::<k8s_openapi::api::policy::v1::PodDisruptionBudget>(r, obj)?
        }
        "DaemonSet" => round::<apps::DaemonSet>(r, obj)?,
        "StatefulSet" => round::<apps::StatefulSet>(r, obj)?,
        "ControllerRevision" => round::<apps::ControllerRevision>(r, obj)?,
        "ReplicationController" => round::<core::ReplicationController>(r, obj)?,
        other => return Err(ApiError::internal(format!("no type for kind {other}"))),
    };
    let mut unknown = Vec::new();
    unknown_fields(obj, &typed, "", &mut unknown);
    Ok((typed, unknown))
}

/// Paths present in `input` that the typed round trip dropped.
fn unknown_fields(input: &Value, typed: &Value, path: &str, out: &mut Vec<String>) {
    match (input, typed) {
        (Value::Object(i), Value::Object(t)) => {
            for (k, v) in i {
                let p = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                match t.get(k) {
                    Some(tv) => unknown_fields(v, tv, &p, out),
                    // A null input value decodes to "absent": not unknown.
                    None if v.is_null() => {}
                    None => out.push(p),
                }
            }
        }
        (Value::Array(i), Value::Array(t)) => {
            for (n, (iv, tv)) in i.iter().zip(t).enumerate() {
                unknown_fields(iv, tv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// Checks apiVersion/kind in the body against the URL's resource (filling them in when absent).
pub fn check_type(r: &ResourceInfo, obj: &mut Value) -> Result<(), ApiError> {
    if !obj.is_object() {
        return Err(ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: the body is not a JSON object",
            r.kind, r.version, r.kind
        )));
    }
    let want = r.api_version();
    match obj.get("apiVersion").and_then(Value::as_str) {
        None | Some("") => obj["apiVersion"] = json!(want),
        Some(v) if v == want => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({want})"
            )))
        }
    }
    match obj.get("kind").and_then(Value::as_str) {
        None | Some("") => obj["kind"] = json!(r.kind),
        Some(k) if k == r.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "{} in version {:?} cannot be handled as a {}: the kind in the data ({k}) does not match the expected kind ({})",
                r.kind, r.version, r.kind, r.kind
            )))
        }
    }
    Ok(())
}

/// Checks (or fills) metadata.namespace against the URL's namespace.
pub fn check_namespace(
    r: &ResourceInfo,
    obj: &mut Value,
    ns: Option<&str>,
) -> Result<(), ApiError> {
    let m = meta_mut(obj);
    if !r.namespaced {
        m.remove("namespace");
        return Ok(());
    }
    let Some(ns) = ns else {
        return Err(ApiError::bad_request(
            "the server could not find the requested resource (a namespaced object needs a namespace in the path)",
        ));
    };
    match m.get("namespace").and_then(Value::as_str) {
        None | Some("") => {
            m.insert("namespace".into(), json!(ns));
            Ok(())
        }
        Some(n) if n == ns => Ok(()),
        Some(_) => Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        )),
    }
}

/// Validation of metadata common to every kind.
pub fn validate_meta(r: &ResourceInfo, obj: &Value, causes: &mut Vec<Cause>) {
    let Some(m) = meta(obj) else {
        causes.push(Cause::required("metadata.name"));
        return;
    };
    match m.get("name").and_then(Value::as_str) {
        None | Some("") => causes.push(Cause {
            reason: "FieldValueRequired",
            field: "metadata.name".into(),
            message: "Required value: name or generateName is required".into(),
        }),
        Some(name) => {
            if let Some(why) = name_check(r, name) {
                causes.push(Cause::invalid("metadata.name", &json!(name), &why));
            }
        }
    }
    if let Some(labels) = m.get("labels").and_then(Value::as_object) {
        for (k, v) in labels {
            if !label_key_ok(k) {
                causes.push(Cause::invalid("metadata.labels", &json!(k), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"));
            }
            match v.as_str() {
                Some(s) if label_value_ok(s) => {}
                _ => causes.push(Cause::invalid("metadata.labels", v, "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')")),
            }
        }
    }
    // kube's ValidateOwnerReferences: at most one owner is the controller.
    let controllers: Vec<String> = m
        .get("ownerReferences")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|o| o.get("controller").and_then(Value::as_bool) == Some(true))
        .map(|o| {
            format!(
                "{}/{}",
                o.get("kind").and_then(Value::as_str).unwrap_or(""),
                o.get("name").and_then(Value::as_str).unwrap_or("")
            )
        })
        .collect();
    if controllers.len() > 1 {
        causes.push(Cause::invalid(
            "metadata.ownerReferences",
            m.get("ownerReferences").unwrap_or(&Value::Null),
            &format!(
                "Only one reference can have Controller set to true. Found \"true\" in references for {} and {}",
                controllers[0], controllers[1]
            ),
        ));
    }
    if let Some(ann) = m.get("annotations").and_then(Value::as_object) {
        for k in ann.keys() {
            if !label_key_ok(k) {
                causes.push(Cause::invalid("metadata.annotations", &json!(k), "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"));
            }
        }
        let total: usize = ann
            .iter()
            .map(|(k, v)| k.len() + v.as_str().map_or(0, str::len))
            .sum();
        if total > 256 * 1024 {
            causes.push(Cause {
                reason: "FieldValueTooLong",
                field: "metadata.annotations".into(),
                message: "Too long: must have at most 262144 bytes".into(),
            });
        }
    }
}

/// Kind-specific validation (the checks kubectl users meet most; not all of kube's).
pub fn validate_kind(r: &ResourceInfo, obj: &Value, causes: &mut Vec<Cause>) {
    match r.kind {
        "Pod" => validate_pod_spec(obj.get("spec"), "spec", causes),
        "Deployment" | "ReplicaSet" => {
            let spec = obj.get("spec");
            let selector = spec.and_then(|s| s.get("selector"));
            if selector.is_none() {
                causes.push(Cause::required("spec.selector"));
            }
            let tpl_labels = spec
                .and_then(|s| s.pointer("/template/metadata/labels"))
                .and_then(Value::as_object);
            if let Some(ml) = selector
                .and_then(|s| s.get("matchLabels"))
                .and_then(Value::as_object)
            {
                let matches = ml
                    .iter()
                    .all(|(k, v)| tpl_labels.and_then(|t| t.get(k)) == Some(v));
                if !matches {
                    causes.push(Cause::invalid(
                        "spec.template.metadata.labels",
                        &json!(tpl_labels.cloned().unwrap_or_default()),
                        "`selector` does not match template `labels`",
                    ));
                }
            }
            if let Some(n) = spec.and_then(|s| s.get("replicas")).and_then(Value::as_i64) {
                if n < 0 {
                    causes.push(Cause::invalid(
                        "spec.replicas",
                        &json!(n),
                        "must be greater than or equal to 0",
                    ));
                }
            }
            validate_pod_spec(
                spec.and_then(|s| s.pointer("/template/spec")),
                "spec.template.spec",
                causes,
            );
        }
        "Service" => {
            let ports = obj.pointer("/spec/ports").and_then(Value::as_array);
            let headless = obj.pointer("/spec/clusterIP").and_then(Value::as_str) == Some("None");
            let external_name =
                obj.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName");
            if ports.is_none_or(|p| p.is_empty()) && !headless && !external_name {
                causes.push(Cause::required("spec.ports"));
            }
            for (i, p) in ports.into_iter().flatten().enumerate() {
                match p.get("port").and_then(Value::as_i64) {
                    Some(n) if (1..=65535).contains(&n) => {}
                    Some(n) => causes.push(Cause::invalid(
                        format!("spec.ports[{i}].port"),
                        &json!(n),
                        "must be between 1 and 65535, inclusive",
                    )),
                    None => causes.push(Cause::required(format!("spec.ports[{i}].port"))),
                }
            }
            if let Some(t) = obj.pointer("/spec/type").and_then(Value::as_str) {
                let allowed = ["ClusterIP", "NodePort", "LoadBalancer", "ExternalName"];
                if !allowed.contains(&t) {
                    causes.push(Cause::unsupported("spec.type", t, &allowed));
                }
            }
        }
        "ConfigMap" | "Secret" => {
            for field in ["data", "binaryData", "stringData"] {
                if let Some(d) = obj.get(field).and_then(Value::as_object) {
                    for k in d.keys() {
                        let ok = !k.is_empty()
                            && k.len() <= 253
                            && k.bytes()
                                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c));
                        if !ok {
                            causes.push(Cause::invalid(
                                field,
                                &json!(k),
                                "a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')",
                            ));
                        }
                    }
                }
            }
        }
        "Job" => {
            batch::validate_job(obj, causes);
            validate_pod_spec(
                obj.pointer("/spec/template/spec"),
                "spec.template.spec",
                causes,
            );
        }
        "CronJob" => {
            batch::validate_cronjob(obj, causes);
            validate_pod_spec(
                obj.pointer("/spec/jobTemplate/spec/template/spec"),
                "spec.jobTemplate.spec.template.spec",
                causes,
            );
        }
        "EndpointSlice" => endpointslice::validate_endpoint_slice(obj, causes),
        "PodDisruptionBudget" => crate::registry::kinds::pdb::validate(obj, causes),
        "DaemonSet" | "StatefulSet" | "ReplicationController" => {
            match r.kind {
                "DaemonSet" => apps::validate_daemonset(obj, causes),
                "StatefulSet" => apps::validate_statefulset(obj, causes),
                _ => apps::validate_replication_controller(obj, causes),
            }
            if let Some(spec) = obj.pointer("/spec/template/spec") {
                validate_pod_spec(Some(spec), "spec.template.spec", causes);
            }
        }
        "ControllerRevision" => apps::validate_controller_revision(obj, causes),
        _ => {}
    }
}

/// What a create does before defaults and validation, beyond the metadata every kind gets
/// (kube's `PrepareForCreate` steps): a Job's generated selector (it needs the new uid), a
/// DaemonSet's first template generation.
pub fn prepare_for_create(r: &ResourceInfo, obj: &mut Value) {
    match r.kind {
        "Job" => batch::generate_selector(obj),
        "DaemonSet" => apps::daemonset_template_generation(None, obj),
        _ => {}
    }
}

/// What an update does to the defaulted, validated object (kube's `PrepareForUpdate` steps
/// beyond [`carry_over`]): a DaemonSet's template generation follows its template, compared
/// with defaults applied so that a client leaving defaults out changes nothing.
pub fn prepare_for_update(t: &ObjectRef, old: &Value, new: &mut Value, status_write: bool) {
    if t.r.kind == "DaemonSet" && !status_write {
        apps::daemonset_template_generation(Some(old), new);
    }
}

/// Kind-specific checks of an update against the stored object (kube's `ValidateUpdate`):
/// the fields a write may not change.
pub fn validate_update(t: &ObjectRef, old: &Value, new: &Value) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    match t.r.kind {
        "Job" => batch::validate_job_update(old, new, &mut causes),
        "EndpointSlice" => endpointslice::validate_endpoint_slice_update(old, new, &mut causes),
        "DaemonSet" => apps::validate_daemonset_update(old, new, &mut causes),
        "StatefulSet" => apps::validate_statefulset_update(old, new, &mut causes),
        "ControllerRevision" => apps::validate_controller_revision_update(old, new, &mut causes),
        _ => {}
    }
    if causes.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid(t.r, t.name(), causes))
    }
}

fn validate_pod_spec(spec: Option<&Value>, at: &str, causes: &mut Vec<Cause>) {
    let Some(spec) = spec else {
        causes.push(Cause::required(format!("{at}.containers")));
        return;
    };
    let containers = spec.get("containers").and_then(Value::as_array);
    if containers.is_none_or(|c| c.is_empty()) {
        causes.push(Cause::required(format!("{at}.containers")));
    }
    let mut seen = Vec::new();
    for (i, c) in containers.into_iter().flatten().enumerate() {
        match c.get("name").and_then(Value::as_str) {
            None | Some("") => causes.push(Cause::required(format!("{at}.containers[{i}].name"))),
            Some(n) => {
                if let Some(why) = dns1123_label(n) {
                    causes.push(Cause::invalid(
                        format!("{at}.containers[{i}].name"),
                        &json!(n),
                        &why,
                    ));
                }
                if seen.contains(&n) {
                    causes.push(Cause::duplicate(
                        format!("{at}.containers[{i}].name"),
                        &json!(n),
                    ));
                }
                seen.push(n);
            }
        }
        if c.get("image")
            .and_then(Value::as_str)
            .is_none_or(str::is_empty)
        {
            causes.push(Cause::required(format!("{at}.containers[{i}].image")));
        }
    }
    if let Some(p) = spec.get("restartPolicy").and_then(Value::as_str) {
        let allowed = ["Always", "OnFailure", "Never"];
        if !allowed.contains(&p) {
            causes.push(Cause::unsupported(
                format!("{at}.restartPolicy"),
                p,
                &allowed,
            ));
        }
    }
}

fn set_default(obj: &mut Value, pointer: &str, value: Value) {
    let mut parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    let Some(last) = parts.pop() else { return };
    let mut cur = obj;
    for p in parts {
        if !cur.get(p).is_some_and(Value::is_object) {
            if cur.get(p).is_some() {
                return; // not an object: leave it for validation to report
            }
            cur[p] = json!({});
        }
        cur = &mut cur[p];
    }
    if cur.get(last).is_none_or(Value::is_null) {
        cur[last] = value;
    }
}

fn default_pod_spec(spec: &mut Value) {
    for (field, value) in [
        ("restartPolicy", json!("Always")),
        ("terminationGracePeriodSeconds", json!(30)),
        ("dnsPolicy", json!("ClusterFirst")),
        ("securityContext", json!({})),
        ("schedulerName", json!("default-scheduler")),
    ] {
        set_default(spec, &format!("/{field}"), value);
    }
    for list in ["containers", "initContainers"] {
        if let Some(cs) = spec.get_mut(list).and_then(Value::as_array_mut) {
            for c in cs {
                if !c.is_object() {
                    continue;
                }
                let image = c.get("image").and_then(Value::as_str).unwrap_or("");
                let tag_latest = !image.contains('@')
                    && image
                        .rsplit('/')
                        .next()
                        .is_none_or(|last| !last.contains(':') || last.ends_with(":latest"));
                let pull = if tag_latest { "Always" } else { "IfNotPresent" };
                set_default(c, "/imagePullPolicy", json!(pull));
                set_default(c, "/terminationMessagePath", json!("/dev/termination-log"));
                set_default(c, "/terminationMessagePolicy", json!("File"));
                set_default(c, "/resources", json!({}));
                if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
                    for p in ports {
                        if p.is_object() {
                            set_default(p, "/protocol", json!("TCP"));
                        }
                    }
                }
            }
        }
    }
}

/// Defaults as kube-apiserver's defaulters set them (the fields users see in `-o yaml`).
pub fn apply_defaults(r: &ResourceInfo, obj: &mut Value) {
    match r.kind {
        "Pod" => {
            if let Some(spec) = obj.get_mut("spec").filter(|s| s.is_object()) {
                default_pod_spec(spec);
                // SetDefaults_Pod (not SetDefaults_PodSpec): Pods only, never templates.
                set_default(spec, "/enableServiceLinks", json!(true));
            }
        }
        "Deployment" | "ReplicaSet" => {
            set_default(obj, "/spec/replicas", json!(1));
            if r.kind == "Deployment" {
                // SetDefaults_Deployment: type RollingUpdate, and a RollingUpdate strategy's
                // missing maxUnavailable/maxSurge become 25% each.
                set_default(obj, "/spec/strategy/type", json!("RollingUpdate"));
                if obj.pointer("/spec/strategy/type") == Some(&json!("RollingUpdate")) {
                    set_default(
                        obj,
                        "/spec/strategy/rollingUpdate/maxUnavailable",
                        json!("25%"),
                    );
                    set_default(obj, "/spec/strategy/rollingUpdate/maxSurge", json!("25%"));
                }
                set_default(obj, "/spec/revisionHistoryLimit", json!(10));
                set_default(obj, "/spec/progressDeadlineSeconds", json!(600));
            }
            if let Some(spec) = obj
                .pointer_mut("/spec/template/spec")
                .filter(|s| s.is_object())
            {
                default_pod_spec(spec);
            }
        }
        "Service" => {
            set_default(obj, "/spec/type", json!("ClusterIP"));
            set_default(obj, "/spec/sessionAffinity", json!("None"));
            set_default(obj, "/spec/internalTrafficPolicy", json!("Cluster"));
            set_default(obj, "/spec/ipFamilyPolicy", json!("SingleStack"));
            set_default(obj, "/spec/ipFamilies", json!(["IPv4"]));
            let typ = obj
                .pointer("/spec/type")
                .and_then(Value::as_str)
                .map(str::to_string);
            let typ = typ.as_deref();
            if matches!(typ, Some("NodePort" | "LoadBalancer")) {
                set_default(obj, "/spec/externalTrafficPolicy", json!("Cluster"));
            }
            if typ == Some("LoadBalancer") {
                set_default(obj, "/spec/allocateLoadBalancerNodePorts", json!(true));
            }
            if let Some(ports) = obj.pointer_mut("/spec/ports").and_then(Value::as_array_mut) {
                for p in ports {
                    if !p.is_object() {
                        continue;
                    }
                    set_default(p, "/protocol", json!("TCP"));
                    if let Some(port) = p.get("port").cloned() {
                        set_default(p, "/targetPort", port);
                    }
                }
            }
            set_default(obj, "/status/loadBalancer", json!({}));
        }
        "Secret" => {
            set_default(obj, "/type", json!("Opaque"));
            // stringData is write-only: merged into data (base64) and dropped, as kube does.
            if let Some(sd) = obj.get("stringData").and_then(Value::as_object).cloned() {
                use base64::Engine as _;
                for (k, v) in sd {
                    if let Some(s) = v.as_str() {
                        set_default(obj, "/data", json!({}));
                        obj["data"][k] = json!(base64::engine::general_purpose::STANDARD.encode(s));
                    }
                }
                if let Some(o) = obj.as_object_mut() {
                    o.remove("stringData");
                }
            }
        }
        "Node" => {
            // SetDefaults_NodeStatus: a status with capacity and no allocatable gets allocatable
            // = capacity (scheduler_perf's nodes, and simple registrations, rely on it).
            if let Some(capacity) = obj.pointer("/status/capacity").filter(|c| c.is_object()) {
                let capacity = capacity.clone();
                set_default(obj, "/status/allocatable", capacity);
            }
        }
        "Job" => {
            batch::default_job(obj);
            if let Some(spec) = obj
                .pointer_mut("/spec/template/spec")
                .filter(|s| s.is_object())
            {
                default_pod_spec(spec);
            }
        }
        "CronJob" => {
            batch::default_cronjob(obj);
            if let Some(spec) = obj
                .pointer_mut("/spec/jobTemplate/spec/template/spec")
                .filter(|s| s.is_object())
            {
                default_pod_spec(spec);
            }
        }
        "EndpointSlice" => endpointslice::default_endpoint_slice(obj),
        "DaemonSet" | "StatefulSet" | "ReplicationController" => {
            match r.kind {
                "DaemonSet" => apps::default_daemonset(obj),
                "StatefulSet" => apps::default_statefulset(obj),
                _ => apps::default_replication_controller(obj),
            }
            if let Some(spec) = obj
                .pointer_mut("/spec/template/spec")
                .filter(|s| s.is_object())
            {
                default_pod_spec(spec);
            }
        }
        "Namespace" => {
            // `kubernetes` joins spec.finalizers on create only (kinds::namespace): the
            // namespace controller's finalize takes it out for good.
            set_default(obj, "/status/phase", json!("Active"));
            let name = meta_str(obj, "name").unwrap_or("").to_string();
            let m = meta_mut(obj);
            if !m.get("labels").is_some_and(Value::is_object) {
                m.insert("labels".into(), json!({}));
            }
            if let Some(l) = m.get_mut("labels").and_then(Value::as_object_mut) {
                l.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
        _ => {}
    }
}

/// Whether the resource bumps metadata.generation when its spec changes.
pub fn tracks_generation(r: &ResourceInfo) -> bool {
    matches!(
        r.kind,
        "Deployment"
            | "ReplicaSet"
            | "Job"
            | "CronJob"
            | "EndpointSlice"
            | "DaemonSet"
            | "StatefulSet"
            | "ReplicationController"
            | "PodDisruptionBudget"
    )
}

/// The status a newly created object starts with (its status subresource owns it afterwards).
pub fn initial_status(r: &ResourceInfo, obj: &mut Value) {
    match r.kind {
        "Pod" => {
            let qos = pod_qos(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        "Deployment"
        | "ReplicaSet"
        | "Job"
        | "CronJob"
        | "DaemonSet"
        | "StatefulSet"
        | "ReplicationController" => obj["status"] = json!({}),
        "Service" => obj["status"] = json!({"loadBalancer": {}}),
        "Namespace" => crate::registry::kinds::namespace::prepare_for_create(obj),
        "PodDisruptionBudget" => obj["status"] = crate::registry::kinds::pdb::initial_status(),
        _ => {}
    }
}

fn pod_qos(pod: &Value) -> &'static str {
    let cs: Vec<&Value> = ["containers", "initContainers"]
        .iter()
        .filter_map(|l| pod.pointer(&format!("/spec/{l}")).and_then(Value::as_array))
        .flatten()
        .collect();
    let mut any = false;
    let mut all_guaranteed = true;
    for c in cs {
        let req = c.pointer("/resources/requests").and_then(Value::as_object);
        let lim = c.pointer("/resources/limits").and_then(Value::as_object);
        if req.is_some_and(|m| !m.is_empty()) || lim.is_some_and(|m| !m.is_empty()) {
            any = true;
        }
        let guaranteed = ["cpu", "memory"].iter().all(|res| {
            let l = lim.and_then(|m| m.get(*res));
            let r = req.and_then(|m| m.get(*res)).or(l);
            l.is_some() && r == l
        });
        all_guaranteed &= guaranteed;
    }
    if !any {
        "BestEffort"
    } else if all_guaranteed {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// Server-owned fields an update keeps from the stored object.
/// kube's ValidateObjectMetaUpdate for the uid: an update may leave it out (the stored one is
/// kept) but not change it, so a client can use it as a precondition (controllers adopting or
/// releasing a pod do).
pub fn check_uid_unchanged(t: &ObjectRef, old: &Value, new: &Value) -> Result<(), ApiError> {
    let stored = old.pointer("/metadata/uid").and_then(Value::as_str);
    match new.pointer("/metadata/uid") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(u)) if u.is_empty() || Some(u.as_str()) == stored => Ok(()),
        Some(other) => Err(ApiError::invalid(
            t.r,
            t.name(),
            vec![Cause::invalid("metadata.uid", other, "field is immutable")],
        )),
    }
}

pub fn carry_over(t: &ObjectRef, old: &Value, new: &mut Value, status_write: bool) {
    let old_meta = meta::meta(old).cloned().unwrap_or_default();
    if status_write {
        // The status subresource changes only .status (kube's ResetObjectMetaForStatus keeps
        // labels, annotations, finalizers, owners from the stored object too) — except that a
        // Deployment's status write may change its annotations: kube's deployment status
        // strategy resets only spec and labels, and the deployment controller sets
        // `deployment.kubernetes.io/revision` through UpdateStatus.
        let status = new.get("status").cloned();
        let annotations = new.pointer("/metadata/annotations").cloned();
        *new = old.clone();
        match status {
            Some(s) => new["status"] = s,
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
        if t.r.kind == "Deployment" {
            let m = meta::meta_mut(new);
            match annotations {
                Some(a) => {
                    m.insert("annotations".into(), a);
                }
                None => {
                    m.remove("annotations");
                }
            }
        }
        return;
    }
    let m = meta::meta_mut(new);
    for k in [
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ] {
        match old_meta.get(k) {
            Some(v) => {
                m.insert(k.into(), v.clone());
            }
            None => {
                m.remove(k);
            }
        }
    }
    if t.r.has(Subresource::Status) && t.r.plural != "namespaces" {
        match old.get("status") {
            Some(s) => new["status"] = s.clone(),
            None => {
                if let Some(o) = new.as_object_mut() {
                    o.remove("status");
                }
            }
        }
    }
    if t.r.is_service() {
        crate::registry::kinds::service::keep_allocated_values(old, new);
    }
    if t.r.plural == "namespaces" {
        // Its status and spec.finalizers (or, through `finalize`, all but spec.finalizers).
        crate::registry::kinds::namespace::carry_over(t, old, new);
    }
    // A Deployment's annotations count as its spec (kube's deployment strategy bumps the
    // generation for either: they once carried the rollback request).
    let annotations_changed = t.r.kind == "Deployment"
        && old.pointer("/metadata/annotations") != new.pointer("/metadata/annotations");
    if tracks_generation(t.r) && (old.get("spec") != new.get("spec") || annotations_changed) {
        let g = old_meta
            .get("generation")
            .and_then(Value::as_i64)
            .unwrap_or(0);
        meta::meta_mut(new).insert("generation".into(), json!(g + 1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    fn object_ref(group: &str, plural: &str, sub: Option<&str>) -> ObjectRef {
        ObjectRef {
            r: find(group, "v1", plural).unwrap(),
            namespace: Some("ns".into()),
            name: Some("x".into()),
            sub: sub.map(str::to_string),
        }
    }

    #[test]
    fn an_update_may_omit_the_uid_but_not_change_it() {
        let t = object_ref("", "pods", None);
        let old = json!({"metadata": {"name": "x", "uid": "u1"}});
        for ok in [
            json!({"metadata": {"name": "x"}}),
            json!({"metadata": {"uid": "u1"}}),
        ] {
            assert!(check_uid_unchanged(&t, &old, &ok).is_ok(), "{ok}");
        }
        let e = check_uid_unchanged(&t, &old, &json!({"metadata": {"uid": "u2"}})).unwrap_err();
        assert_eq!(e.code, 422);
        assert_eq!(
            e.message,
            "Pod \"x\" is invalid: metadata.uid: Invalid value: \"u2\": field is immutable"
        );
    }

    #[test]
    fn only_one_owner_is_the_controller() {
        let pods = find("", "v1", "pods").unwrap();
        let owner = |kind: &str, name: &str, controller: bool| json!({"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": name, "controller": controller});
        let pod = |owners: Value| json!({"metadata": {"name": "p", "ownerReferences": owners}});
        let mut causes = Vec::new();
        validate_meta(
            pods,
            &pod(json!([
                owner("ReplicaSet", "a", true),
                owner("ReplicaSet", "b", false)
            ])),
            &mut causes,
        );
        assert!(causes.is_empty(), "{causes:?}");
        validate_meta(
            pods,
            &pod(json!([
                owner("ReplicaSet", "a", true),
                owner("Deployment", "b", true)
            ])),
            &mut causes,
        );
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "metadata.ownerReferences");
        assert!(
            causes[0].message.ends_with("Only one reference can have Controller set to true. Found \"true\" in references for ReplicaSet/a and Deployment/b"),
            "{}",
            causes[0].message
        );
    }

    #[test]
    fn a_deployment_status_write_may_set_annotations_and_its_annotations_bump_generation() {
        let old = json!({"metadata": {"name": "x", "uid": "u", "generation": 3, "labels": {"a": "1"},
            "annotations": {"k": "v"}}, "spec": {"replicas": 1}, "status": {}});
        let sent = json!({"metadata": {"name": "x", "labels": {"a": "2"},
            "annotations": {"k": "v", "deployment.kubernetes.io/revision": "2"}},
            "spec": {"replicas": 9}, "status": {"observedGeneration": 3}});
        let mut new = sent.clone();
        carry_over(
            &object_ref("apps", "deployments", Some("status")),
            &old,
            &mut new,
            true,
        );
        assert_eq!(
            new["metadata"]["annotations"],
            sent["metadata"]["annotations"]
        );
        assert_eq!(new["metadata"]["labels"], old["metadata"]["labels"]);
        assert_eq!(new["spec"], old["spec"]);
        assert_eq!(new["status"], sent["status"]);
        assert_eq!(new["metadata"]["generation"], 3);
        // A ReplicaSet's status write keeps the stored annotations.
        let mut rs = sent.clone();
        carry_over(
            &object_ref("apps", "replicasets", Some("status")),
            &old,
            &mut rs,
            true,
        );
        assert_eq!(
            rs["metadata"]["annotations"],
            old["metadata"]["annotations"]
        );

        // An update that changes only a Deployment's annotations is a new generation; a
        // ReplicaSet's is not.
        let mut new =
            json!({"metadata": {"name": "x", "annotations": {"k": "w"}}, "spec": {"replicas": 1}});
        carry_over(
            &object_ref("apps", "deployments", None),
            &old,
            &mut new,
            false,
        );
        assert_eq!(new["metadata"]["generation"], 4);
        let mut new =
            json!({"metadata": {"name": "x", "annotations": {"k": "w"}}, "spec": {"replicas": 1}});
        carry_over(
            &object_ref("apps", "replicasets", None),
            &old,
            &mut new,
            false,
        );
        assert_eq!(new["metadata"]["generation"], 3);
    }

    #[test]
    fn unknown_fields_are_found_by_path() {
        let pods = find("", "v1", "pods").unwrap();
        let pod = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":[{"name":"c","image":"i","bogus":1}],"extra":true}});
        let (_, unknown) = decode_typed(pods, &pod).unwrap();
        assert_eq!(unknown, vec!["spec.containers[0].bogus", "spec.extra"]);
        let bad = json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"p"},
            "spec":{"containers":"nope"}});
        assert_eq!(decode_typed(pods, &bad).unwrap_err().code, 400);
    }

    #[test]
    fn pod_validation_names_fields() {
        let pods = find("", "v1", "pods").unwrap();
        let mut causes = Vec::new();
        let pod = json!({"metadata":{"name":"Bad_Name"},"spec":{"containers":[{"name":"c"}]}});
        validate_meta(pods, &pod, &mut causes);
        validate_kind(pods, &pod, &mut causes);
        let fields: Vec<&str> = causes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["metadata.name", "spec.containers[0].image"]);
    }

    #[test]
    fn defaults_fill_only_missing_fields() {
        let deploy = find("apps", "v1", "deployments").unwrap();
        let mut d = json!({"spec":{"replicas":3,"template":{"spec":{"containers":[{"name":"c","image":"nginx:1.25"}]}}}});
        apply_defaults(deploy, &mut d);
        assert_eq!(d["spec"]["replicas"], 3);
        assert_eq!(d["spec"]["revisionHistoryLimit"], 10);
        assert_eq!(
            d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"],
            "IfNotPresent"
        );
        let pods = find("", "v1", "pods").unwrap();
        let mut p = json!({"spec":{"containers":[{"name":"c","image":"nginx"}]}});
        apply_defaults(pods, &mut p);
        assert_eq!(p["spec"]["containers"][0]["imagePullPolicy"], "Always");
        initial_status(pods, &mut p);
        assert_eq!(p["status"]["qosClass"], "BestEffort");
    }

    #[test]
    fn a_node_status_without_allocatable_gets_its_capacity() {
        let nodes = find("", "v1", "nodes").unwrap();
        let mut n = json!({"status":{"capacity":{"cpu":"4","pods":"110"}}});
        apply_defaults(nodes, &mut n);
        assert_eq!(n["status"]["allocatable"], json!({"cpu":"4","pods":"110"}));
        let mut n = json!({"status":{"capacity":{"cpu":"4"},"allocatable":{"cpu":"3500m"}}});
        apply_defaults(nodes, &mut n);
        assert_eq!(n["status"]["allocatable"], json!({"cpu":"3500m"}));
        let mut n = json!({"spec":{}});
        apply_defaults(nodes, &mut n);
        assert!(n.get("status").is_none());
    }
}
