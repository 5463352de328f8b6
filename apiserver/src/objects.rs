//! What happens to an object between the request body and the store: decoding against the
//! Kubernetes 1.32 types (k8s-openapi), strict/warn/ignore of unknown fields, server-set
//! metadata (uid, creationTimestamp, generation, generateName), defaulting, and validation — the
//! parts of kube-apiserver's registry strategies that kubectl and controllers rely on.

use std::time::{SystemTime, UNIX_EPOCH};

use rand::Rng;
use serde_json::{json, Map, Value};

use crate::error::{ApiError, Cause};
use crate::resources::ResourceInfo;

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

/// RFC 3339 at second precision in UTC, as metav1.Time serializes.
pub fn rfc3339(t: SystemTime) -> String {
    let secs = t
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as i64;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

pub fn now() -> String {
    rfc3339(SystemTime::now())
}

/// A random v4 UUID (the object's uid).
pub fn new_uid() -> String {
    let mut b: [u8; 16] = rand::rng().random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// generateName's suffix: 5 characters from kube's alphabet (no vowels, no look-alikes).
pub fn name_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let mut rng = rand::rng();
    (0..5)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect()
}

pub fn meta(obj: &Value) -> Option<&Map<String, Value>> {
    obj.get("metadata").and_then(Value::as_object)
}

pub fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    meta(obj)
        .and_then(|m| m.get(field))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

pub fn meta_mut(obj: &mut Value) -> &mut Map<String, Value> {
    if !obj.get("metadata").is_some_and(Value::is_object) {
        obj["metadata"] = json!({});
    }
    match obj.get_mut("metadata") {
        Some(Value::Object(m)) => m,
        _ => unreachable!("metadata was just made an object"),
    }
}

/// DNS-1123 subdomain (most names): lowercase alphanumerics, '-' and '.', at most 253.
pub fn dns1123_subdomain(name: &str) -> Option<String> {
    if name.len() > 253 {
        return Some("must be no more than 253 characters".into());
    }
    let ok = !name.is_empty()
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    (!ok).then(|| "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')".into())
}

/// DNS-1123 label (namespaces, services): like a subdomain part, at most 63.
pub fn dns1123_label(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-');
    (!ok).then(|| "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')".into())
}

/// DNS-1035 label (service names): must start with a letter.
pub fn dns1035_label(name: &str) -> Option<String> {
    if name.len() > 63 {
        return Some("must be no more than 63 characters".into());
    }
    let ok = name.bytes().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-')
        && !name.ends_with('-');
    (!ok).then(|| "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')".into())
}

fn name_check(r: &ResourceInfo, name: &str) -> Option<String> {
    match r.plural {
        "namespaces" => dns1123_label(name),
        "services" => dns1035_label(name),
        _ => dns1123_subdomain(name),
    }
}

/// The path segment rule every name must meet (it is part of a URL and a key).
pub fn path_segment_ok(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/') && !name.contains('%')
}

/// Qualified-name check for label keys (`prefix/name`).
fn label_key_ok(k: &str) -> bool {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    let name_ok = !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
        && name
            .bytes()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .bytes()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    name_ok && prefix.is_none_or(|p| dns1123_subdomain(p).is_none())
}

fn label_value_ok(v: &str) -> bool {
    v.is_empty()
        || (v.len() <= 63
            && v.bytes()
                .all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(&c))
            && v.bytes().next().is_some_and(|c| c.is_ascii_alphanumeric())
            && v.bytes().last().is_some_and(|c| c.is_ascii_alphanumeric()))
}

/// Decodes `obj` as the resource's Kubernetes type. Returns the object as the type sees it
/// (unknown fields gone, as kube-apiserver stores it) and the paths of the unknown fields.
pub fn decode_typed(r: &ResourceInfo, obj: &Value) -> Result<(Value, Vec<String>), ApiError> {
    use k8s_openapi::api::{apps::v1 as apps, coordination::v1 as coord, core::v1 as core};
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
        _ => {}
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
        "Namespace" => {
            set_default(obj, "/spec/finalizers", json!(["kubernetes"]));
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
    matches!(r.kind, "Deployment" | "ReplicaSet")
}

/// The status a newly created object starts with (its status subresource owns it afterwards).
pub fn initial_status(r: &ResourceInfo, obj: &mut Value) {
    match r.kind {
        "Pod" => {
            let qos = pod_qos(obj);
            obj["status"] = json!({"phase": "Pending", "qosClass": qos});
        }
        "Deployment" | "ReplicaSet" => obj["status"] = json!({}),
        "Service" => obj["status"] = json!({"loadBalancer": {}}),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::find;

    #[test]
    fn timestamps_are_rfc3339() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        assert_eq!(rfc3339(t), "2026-11-18T11:06:40Z");
    }

    #[test]
    fn uids_look_like_uuids() {
        let u = new_uid();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
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
}
