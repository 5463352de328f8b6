//! Discovery documents (`/api`, `/apis`, `/api/v1`, `/apis/<group>[/<version>]` and aggregated
//! discovery v2), derived from [`RESOURCES`] and shaped as kube-apiserver 1.32 serves them, so that
//! kubectl and client-go build their REST mappings from them unchanged.
//!
//! Every document is built once and kept both as a [`Value`] and as serialized bytes: discovery is
//! requested by every kubectl invocation that misses its cache, and the documents never change.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::resources::{group_versions, ResourceInfo, Subresource, RESOURCES};

/// Content-Type of the aggregated discovery v2 response (and the media type clients ask for).
pub const AGGREGATED_CONTENT_TYPE: &str =
    "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList";

/// The address `GET /api` advertises when [`set_server_address`] was never called.
pub const DEFAULT_SERVER_ADDRESS: &str = "127.0.0.1:6443";

static SERVER_ADDRESS: OnceLock<String> = OnceLock::new();

/// Sets, once at startup, the `host:port` `GET /api` advertises to clients; later calls are
/// ignored (returns false) so the document cannot change under running clients.
#[allow(dead_code)] // unused since the apiserver modules became private; to use or delete
pub fn set_server_address(address: &str) -> bool {
    SERVER_ADDRESS.set(address.to_string()).is_ok()
}

/// `GET /api`: the legacy group's versions. kube-apiserver reports, for clients from anywhere
/// (`0.0.0.0/0`), the address it advertises: the one given to [`set_server_address`].
pub fn api_versions() -> Value {
    api_versions_at(
        SERVER_ADDRESS
            .get()
            .map(String::as_str)
            .unwrap_or(DEFAULT_SERVER_ADDRESS),
    )
}

/// [`api_versions`] advertising `server_address`.
pub fn api_versions_at(server_address: &str) -> Value {
    json!({
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [
            {"clientCIDR": "0.0.0.0/0", "serverAddress": server_address}
        ]
    })
}

/// Non-core groups, in discovery order, each with its served versions.
fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for (group, version) in group_versions() {
        if group.is_empty() {
            continue;
        }
        match out.iter_mut().find(|(g, _)| *g == group) {
            Some((_, versions)) => versions.push(version),
            None => out.push((group, vec![version])),
        }
    }
    out
}

/// One `APIGroup` as it appears inside `APIGroupList` (no kind/apiVersion there).
fn group_body(group: &str, versions: &[&str]) -> Value {
    let gvs: Vec<Value> = versions
        .iter()
        .map(|v| json!({"groupVersion": format!("{group}/{v}"), "version": v}))
        .collect();
    // The first listed version is the preferred one (kube orders by priority, preferred first).
    let preferred = gvs.first().cloned().unwrap_or(Value::Null);
    json!({"name": group, "versions": gvs, "preferredVersion": preferred})
}

/// `GET /apis`: the non-core groups.
pub fn api_group_list() -> Value {
    static DOC: OnceLock<Value> = OnceLock::new();
    DOC.get_or_init(|| {
        let groups: Vec<Value> = groups().iter().map(|(g, vs)| group_body(g, vs)).collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    })
    .clone()
}

/// `GET /apis/<group>`; `None` for a group not served (kube answers 404).
pub fn api_group(group: &str) -> Option<Value> {
    let (g, vs) = groups().into_iter().find(|(g, _)| *g == group)?;
    let mut body = group_body(g, &vs);
    if let Value::Object(map) = &mut body {
        map.insert("kind".into(), json!("APIGroup"));
        map.insert("apiVersion".into(), json!("v1"));
    }
    Some(body)
}

/// kube-apiserver's `discovery.StorageVersionHash`: base64 of the first 8 bytes of
/// sha256("<group>/<version>/<kind>") of the storage version. Clients (the storage version
/// migrator) only compare it, but matching kube's value keeps caches comparable.
pub fn storage_version_hash(group: &str, version: &str, kind: &str) -> String {
    let digest = Sha256::digest(format!("{group}/{version}/{kind}").as_bytes());
    base64(&digest[..8])
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let idx = ((n >> (18 - 6 * i)) & 63) as usize;
                out.push(char::from(ALPHABET[idx]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// What one subresource looks like in discovery: its verbs and the kind its endpoint speaks.
pub struct SubresourceShape {
    pub verbs: &'static [&'static str],
    pub group: &'static str,
    pub version: &'static str,
    /// `None`: the parent resource's own kind (status).
    pub kind: Option<&'static str>,
}

/// kube-apiserver's verbs and kinds for the subresources we serve.
pub fn subresource_shape(sub: Subresource) -> SubresourceShape {
    match sub {
        Subresource::Status => SubresourceShape {
            verbs: &["get", "patch", "update"],
            group: "",
            version: "",
            kind: None,
        },
        Subresource::Scale => SubresourceShape {
            verbs: &["get", "patch", "update"],
            group: "autoscaling",
            version: "v1",
            kind: Some("Scale"),
        },
        Subresource::Binding => SubresourceShape {
            verbs: &["create"],
            group: "",
            version: "v1",
            kind: Some("Binding"),
        },
        Subresource::Eviction => SubresourceShape {
            verbs: &["create"],
            group: "policy",
            version: "v1",
            kind: Some("Eviction"),
        },
    }
}

/// (group, version, kind) a subresource of `r` responds with.
fn sub_gvk(r: &ResourceInfo, sub: Subresource) -> (&'static str, &'static str, &'static str) {
    let shape = subresource_shape(sub);
    match shape.kind {
        Some(kind) => (shape.group, shape.version, kind),
        None => (r.group, r.version, r.kind),
    }
}

fn resources_of<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceInfo> + 'a {
    RESOURCES
        .iter()
        .filter(move |r| r.group == group && r.version == version)
}

/// `GET /api/v1`, `GET /apis/<group>/<version>`: `None` when the group-version is not served.
pub fn api_resource_list(group: &str, version: &str) -> Option<Value> {
    static DOCS: OnceLock<BTreeMap<(String, String), Value>> = OnceLock::new();
    DOCS.get_or_init(|| {
        group_versions()
            .into_iter()
            .map(|(g, v)| ((g.to_string(), v.to_string()), build_resource_list(g, v)))
            .collect()
    })
    .get(&(group.to_string(), version.to_string()))
    .cloned()
}

fn build_resource_list(group: &str, version: &str) -> Value {
    // kube lists resources and subresources together, sorted by name ("pods" < "pods/binding").
    let mut entries: Vec<(String, Value)> = Vec::new();
    for r in resources_of(group, version) {
        let mut res = json!({
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": r.verbs(),
        });
        if let Value::Object(map) = &mut res {
            if !r.short_names.is_empty() {
                map.insert("shortNames".into(), json!(r.short_names));
            }
            if !r.categories.is_empty() {
                map.insert("categories".into(), json!(r.categories));
            }
            map.insert(
                "storageVersionHash".into(),
                json!(storage_version_hash(r.group, r.version, r.kind)),
            );
        }
        entries.push((r.plural.to_string(), res));
        for &sub in r.subresources {
            let shape = subresource_shape(sub);
            let name = format!("{}/{}", r.plural, sub.name());
            let (g, v, kind) = sub_gvk(r, sub);
            let mut res = json!({
                "name": name,
                "singularName": "",
                "namespaced": r.namespaced,
                "kind": kind,
                "verbs": shape.verbs,
            });
            // Only a subresource in another group-version names it (deployments/scale → autoscaling/v1).
            if (g, v) != (r.group, r.version) {
                if let Value::Object(map) = &mut res {
                    map.insert("group".into(), json!(g));
                    map.insert("version".into(), json!(v));
                }
            }
            entries.push((name, res));
        }
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let resources: Vec<Value> = entries.into_iter().map(|(_, v)| v).collect();
    let group_version = if group.is_empty() {
        version.to_string()
    } else {
        format!("{group}/{version}")
    };
    if group.is_empty() {
        // kube's /api/v1 carries no apiVersion; /apis/<g>/<v> does.
        json!({"kind": "APIResourceList", "groupVersion": group_version, "resources": resources})
    } else {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources})
    }
}

/// True when the Accept header asks for aggregated discovery v2. kubectl 1.32 sends
/// `application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,` then the v2beta1 form,
/// then plain `application/json`; we only speak v2, so any acceptable v2 entry wins.
pub fn wants_aggregated(accept: &str) -> bool {
    accept.split(',').any(|range| {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or("");
        if !media.eq_ignore_ascii_case("application/json") {
            return false;
        }
        let (mut g, mut v, mut as_, mut q_zero) = (false, false, false, false);
        for p in parts {
            let Some((k, val)) = p.split_once('=') else {
                continue;
            };
            let val = val.trim().trim_matches('"');
            match k.trim() {
                "g" => g = val == "apidiscovery.k8s.io",
                "v" => v = val == "v2",
                "as" => as_ = val == "APIGroupDiscoveryList",
                "q" => q_zero = val.parse::<f32>().map(|q| q <= 0.0).unwrap_or(false),
                _ => {}
            }
        }
        g && v && as_ && !q_zero
    })
}

fn gvk_json(group: &str, version: &str, kind: &str) -> Value {
    json!({"group": group, "version": version, "kind": kind})
}

fn aggregated_resource(r: &ResourceInfo) -> Value {
    let mut subs: Vec<(String, Value)> = r
        .subresources
        .iter()
        .map(|&sub| {
            let shape = subresource_shape(sub);
            let (g, v, kind) = sub_gvk(r, sub);
            (
                sub.name().to_string(),
                json!({
                    "subresource": sub.name(),
                    "responseKind": gvk_json(g, v, kind),
                    "verbs": shape.verbs,
                }),
            )
        })
        .collect();
    subs.sort_by(|a, b| a.0.cmp(&b.0));
    let mut res = json!({
        "resource": r.plural,
        "responseKind": gvk_json(r.group, r.version, r.kind),
        "scope": if r.namespaced { "Namespaced" } else { "Cluster" },
        "singularResource": r.singular,
        "verbs": r.verbs(),
    });
    if let Value::Object(map) = &mut res {
        if !r.short_names.is_empty() {
            map.insert("shortNames".into(), json!(r.short_names));
        }
        if !r.categories.is_empty() {
            map.insert("categories".into(), json!(r.categories));
        }
        if !subs.is_empty() {
            let subs: Vec<Value> = subs.into_iter().map(|(_, v)| v).collect();
            map.insert("subresources".into(), Value::Array(subs));
        }
    }
    res
}

fn build_aggregated(legacy: bool) -> Value {
    let mut items = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for (group, _) in group_versions() {
        if group.is_empty() != legacy || seen.contains(&group) {
            continue;
        }
        seen.push(group);
        let versions: Vec<Value> = group_versions()
            .into_iter()
            .filter(|(g, _)| *g == group)
            .map(|(_, version)| {
                let mut rs: Vec<&ResourceInfo> = resources_of(group, version).collect();
                rs.sort_by(|a, b| a.plural.cmp(b.plural));
                let resources: Vec<Value> = rs.into_iter().map(aggregated_resource).collect();
                json!({"version": version, "resources": resources, "freshness": "Current"})
            })
            .collect();
        // The core group's metadata has no name at all (kube omits the empty string).
        let metadata = if group.is_empty() {
            json!({"creationTimestamp": null})
        } else {
            json!({"name": group, "creationTimestamp": null})
        };
        items.push(json!({"metadata": metadata, "versions": versions}));
    }
    json!({
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    })
}

/// Aggregated discovery (`apidiscovery.k8s.io/v2` `APIGroupDiscoveryList`) for `/api`
/// (`legacy`) or `/apis`. Serve with Content-Type [`AGGREGATED_CONTENT_TYPE`].
pub fn aggregated(legacy: bool) -> Value {
    static DOCS: OnceLock<[Value; 2]> = OnceLock::new();
    let docs = DOCS.get_or_init(|| [build_aggregated(false), build_aggregated(true)]);
    docs[usize::from(legacy)].clone()
}

/// [`aggregated`], serialized once (the hot path: every uncached kubectl run asks for it).
#[allow(dead_code)] // unused since the apiserver modules became private; to use or delete
pub fn aggregated_bytes(legacy: bool) -> &'static [u8] {
    static BYTES: OnceLock<[Vec<u8>; 2]> = OnceLock::new();
    let b = BYTES.get_or_init(|| {
        [
            serde_json::to_vec(&aggregated(false)).unwrap_or_default(),
            serde_json::to_vec(&aggregated(true)).unwrap_or_default(),
        ]
    });
    &b[usize::from(legacy)]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn storage_version_hash_matches_kube() {
        // Values served by a real kube-apiserver 1.32.
        assert_eq!(storage_version_hash("", "v1", "Pod"), "xPOwRZ+Yhw8=");
        assert_eq!(
            storage_version_hash("apps", "v1", "Deployment"),
            "8aSe+NMegvE="
        );
    }

    #[test]
    fn base64_padding() {
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b""), "");
    }

    #[test]
    fn api_versions_shape() {
        let v = api_versions_at("10.0.0.1:6443");
        assert_eq!(v["kind"], "APIVersions");
        assert_eq!(v["versions"], json!(["v1"]));
        assert_eq!(
            v["serverAddressByClientCIDRs"][0]["serverAddress"],
            "10.0.0.1:6443"
        );
        assert_eq!(api_versions()["kind"], "APIVersions");
    }

    #[test]
    fn group_list_has_apps_and_coordination() {
        let v = api_group_list();
        let names: Vec<&str> = v["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|g| g["name"].as_str())
            .collect();
        assert_eq!(
            names,
            [
                "apps",
                "batch",
                "policy",
                "coordination.k8s.io",
                "discovery.k8s.io"
            ]
        );
        assert_eq!(
            v["groups"][0]["preferredVersion"],
            json!({"groupVersion": "apps/v1", "version": "v1"})
        );
        assert!(api_group("apps").is_some());
        assert_eq!(
            api_group("apps").map(|g| g["kind"].clone()),
            Some(json!("APIGroup"))
        );
        assert!(api_group("").is_none());
        assert!(api_group("batch").is_some());
        assert!(api_group("storage.k8s.io").is_none());
    }

    #[test]
    fn core_resource_list() {
        let v = api_resource_list("", "v1").expect("core served");
        assert_eq!(v["groupVersion"], "v1");
        assert!(v.get("apiVersion").is_none());
        let rs = v["resources"].as_array().expect("array");
        let names: Vec<&str> = rs.iter().filter_map(|r| r["name"].as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted);
        let pod = rs.iter().find(|r| r["name"] == "pods").expect("pods");
        assert_eq!(pod["shortNames"], json!(["po"]));
        assert_eq!(pod["categories"], json!(["all"]));
        assert_eq!(pod["singularName"], "pod");
        assert_eq!(pod["storageVersionHash"], "xPOwRZ+Yhw8=");
        let binding = rs
            .iter()
            .find(|r| r["name"] == "pods/binding")
            .expect("binding");
        assert_eq!(binding["kind"], "Binding");
        assert_eq!(binding["verbs"], json!(["create"]));
        assert!(binding.get("group").is_none());
        // kubectl drain looks for pods/eviction as policy/v1 Eviction.
        let eviction = rs
            .iter()
            .find(|r| r["name"] == "pods/eviction")
            .expect("eviction");
        assert_eq!(
            (&eviction["group"], &eviction["version"], &eviction["kind"]),
            (&json!("policy"), &json!("v1"), &json!("Eviction"))
        );
        assert_eq!(eviction["verbs"], json!(["create"]));
        let policy = api_resource_list("policy", "v1").expect("policy/v1 served");
        let pdb = &policy["resources"][0];
        assert_eq!(pdb["name"], "poddisruptionbudgets");
        assert_eq!(pdb["shortNames"], json!(["pdb"]));
        assert_eq!(
            policy["resources"][1]["name"],
            "poddisruptionbudgets/status"
        );
        let status = rs
            .iter()
            .find(|r| r["name"] == "pods/status")
            .expect("status");
        assert_eq!(status["kind"], "Pod");
        assert_eq!(status["verbs"], json!(["get", "patch", "update"]));
        let secret = rs.iter().find(|r| r["name"] == "secrets").expect("secrets");
        assert!(secret.get("shortNames").is_none());
        let ns = rs.iter().find(|r| r["name"] == "namespaces").expect("ns");
        assert_eq!(ns["namespaced"], false);
    }

    #[test]
    fn apps_scale_is_autoscaling() {
        let v = api_resource_list("apps", "v1").expect("apps served");
        assert_eq!(v["apiVersion"], "v1");
        assert_eq!(v["groupVersion"], "apps/v1");
        let scale = v["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["name"] == "deployments/scale")
            .expect("scale");
        assert_eq!(scale["group"], "autoscaling");
        assert_eq!(scale["version"], "v1");
        assert_eq!(scale["kind"], "Scale");
        assert!(api_resource_list("apps", "v2").is_none());
        assert!(api_resource_list("nope", "v1").is_none());
    }

    #[test]
    fn accept_negotiation() {
        let kubectl = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert!(wants_aggregated(kubectl));
        assert!(wants_aggregated(AGGREGATED_CONTENT_TYPE));
        assert!(!wants_aggregated("application/json"));
        assert!(!wants_aggregated(""));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
        ));
        assert!(!wants_aggregated(
            "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList;q=0"
        ));
        assert!(wants_aggregated(
            "application/json; g=apidiscovery.k8s.io; v=v2; as=APIGroupDiscoveryList"
        ));
    }

    #[test]
    fn aggregated_shapes() {
        let legacy = aggregated(true);
        assert_eq!(legacy["apiVersion"], "apidiscovery.k8s.io/v2");
        let items = legacy["items"].as_array().expect("items");
        assert_eq!(items.len(), 1);
        assert!(items[0]["metadata"].get("name").is_none());
        let pods = items[0]["versions"][0]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["resource"] == "pods")
            .expect("pods");
        assert_eq!(pods["scope"], "Namespaced");
        assert_eq!(pods["responseKind"], gvk_json("", "v1", "Pod"));
        let subs: Vec<&str> = pods["subresources"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s["subresource"].as_str())
            .collect();
        assert_eq!(subs, ["binding", "eviction", "status"]);

        let apis = aggregated(false);
        let groups: Vec<&str> = apis["items"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|i| i["metadata"]["name"].as_str())
            .collect();
        assert_eq!(
            groups,
            [
                "apps",
                "batch",
                "policy",
                "coordination.k8s.io",
                "discovery.k8s.io"
            ]
        );
        let deploy = apis["items"][0]["versions"][0]["resources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["resource"] == "deployments")
            .expect("deployments");
        let scale = deploy["subresources"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["subresource"] == "scale")
            .expect("scale");
        assert_eq!(
            scale["responseKind"],
            gvk_json("autoscaling", "v1", "Scale")
        );
        let bytes: Value = serde_json::from_slice(aggregated_bytes(false)).expect("json");
        assert_eq!(bytes, apis);
    }
}
