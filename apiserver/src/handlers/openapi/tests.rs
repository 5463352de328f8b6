use super::*;

fn doc(path: &str) -> Value {
    let (bytes, _) = v3_document(path).expect("document served");
    serde_json::from_slice(&bytes).expect("valid json")
}

#[test]
fn every_group_version_has_a_document() {
    for (g, v) in group_versions() {
        build_document(g, v).expect("builds");
        assert!(v3_document(&doc_path(g, v)).is_some());
    }
    assert!(v3_document("apis/storage.k8s.io/v1").is_none());
    assert!(v3_document("../etc").is_none());
    let root = v3_root();
    let url = root["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .expect("url");
    let (_, hash) = v3_document("api/v1").expect("doc");
    assert_eq!(url, format!("/openapi/v3/api/v1?hash={hash}"));
    assert_eq!(hash.len(), 128);
}

#[test]
fn v2_protobuf_bytes() {
    let expected: Vec<u8> = [
        &[0x0a, 3][..],
        b"2.0",
        &[0x12, 21, 0x0a, 10],
        b"Kubernetes",
        &[0x12, 7],
        b"v1.32.0",
        &[0x42, 0],
    ]
    .concat();
    assert_eq!(v2_protobuf(), expected.as_slice());
    let mut long = Vec::new();
    pb_varint(&mut long, 300);
    assert_eq!(long, [0xac, 0x02]);
    assert_eq!(v2_json()["swagger"], "2.0");
}

#[test]
fn names_and_ids() {
    assert_eq!(op_prefix("", "v1"), "CoreV1");
    assert_eq!(op_prefix("apps", "v1"), "AppsV1");
    assert_eq!(op_prefix("coordination.k8s.io", "v1"), "CoordinationV1");
    assert_eq!(
        op_prefix("rbac.authorization.k8s.io", "v1"),
        "RbacAuthorizationV1"
    );
    assert_eq!(tag("coordination.k8s.io", "v1"), "coordination_v1");
    assert_eq!(
        schema_name("coordination.k8s.io", "v1", "Lease"),
        "io.k8s.api.coordination.v1.Lease"
    );
}

/// Mirrors `supportsQueryParamV3` in cli-runtime: the first PATCH operation tagged with the
/// GVK must list `fieldValidation` by name. Map order is random in Go, so all must.
#[test]
fn every_patch_for_a_kind_accepts_field_validation() {
    for r in RESOURCES {
        let d = doc(&doc_path(r.group, r.version));
        let mut found = 0;
        for (path, item) in d["paths"].as_object().expect("paths") {
            let Some(patch) = item.get("patch") else {
                continue;
            };
            let gvk = &patch["x-kubernetes-group-version-kind"];
            if gvk["group"] != r.group || gvk["version"] != r.version || gvk["kind"] != r.kind {
                continue;
            }
            found += 1;
            let names: Vec<&str> = patch["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| p["name"].as_str())
                .collect();
            assert!(names.contains(&"fieldValidation"), "{path}");
        }
        assert!(found >= 1, "{}", r.kind);
    }
}

#[test]
fn pod_paths_and_operation_ids() {
    let d = doc("api/v1");
    let p = &d["paths"];
    assert_eq!(
        p["/api/v1/namespaces/{namespace}/pods"]["get"]["operationId"],
        "listCoreV1NamespacedPod"
    );
    assert_eq!(
        p["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]["operationId"],
        "patchCoreV1NamespacedPod"
    );
    assert_eq!(
        p["/api/v1/namespaces/{namespace}/pods/{name}/status"]["put"]["operationId"],
        "replaceCoreV1NamespacedPodStatus"
    );
    let binding = &p["/api/v1/namespaces/{namespace}/pods/{name}/binding"]["post"];
    assert_eq!(binding["operationId"], "createCoreV1NamespacedPodBinding");
    assert_eq!(
        binding["x-kubernetes-group-version-kind"]["kind"],
        "Binding"
    );
    assert_eq!(
        p["/api/v1/pods"]["get"]["operationId"],
        "listCoreV1PodForAllNamespaces"
    );
    assert_eq!(
        p["/api/v1/nodes/{name}"]["delete"]["operationId"],
        "deleteCoreV1Node"
    );
    assert_eq!(
        p["/api/v1/watch/namespaces/{namespace}/pods"]["get"]["x-kubernetes-action"],
        "watchlist"
    );
    assert!(p.get("/api/v1/nodes/{name}/binding").is_none());
    let eviction = &p["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"];
    assert_eq!(eviction["operationId"], "createCoreV1NamespacedPodEviction");
    assert_eq!(
        eviction["x-kubernetes-group-version-kind"],
        json!({"group": "policy", "version": "v1", "kind": "Eviction"})
    );
    let d = doc("apis/policy/v1");
    assert_eq!(
        d["paths"]["/apis/policy/v1/namespaces/{namespace}/poddisruptionbudgets/{name}/status"]
            ["put"]["operationId"],
        "replacePolicyV1NamespacedPodDisruptionBudgetStatus"
    );
    let d = doc("apis/apps/v1");
    let scale =
        &d["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]["patch"];
    assert_eq!(scale["operationId"], "patchAppsV1NamespacedDeploymentScale");
    assert_eq!(
        scale["x-kubernetes-group-version-kind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
    assert!(d["components"]["schemas"]["io.k8s.api.autoscaling.v1.Scale"].is_object());
}

#[test]
fn every_ref_resolves() {
    fn refs<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r);
                }
                m.values().for_each(|c| refs(c, out));
            }
            Value::Array(a) => a.iter().for_each(|c| refs(c, out)),
            _ => {}
        }
    }
    for (g, v) in group_versions() {
        let d = doc(&doc_path(g, v));
        let mut out = Vec::new();
        refs(&d, &mut out);
        assert!(!out.is_empty());
        for r in out {
            let name = r.strip_prefix("#/components/schemas/").expect("local ref");
            assert!(
                d["components"]["schemas"][name].is_object(),
                "{name} in {g}/{v}"
            );
        }
    }
}

#[test]
fn kinds_carry_gvk_and_lists_exist() {
    for r in RESOURCES {
        let d = doc(&doc_path(r.group, r.version));
        let s = &d["components"]["schemas"];
        let kind = &s[schema_name(r.group, r.version, r.kind)];
        assert_eq!(
            kind["x-kubernetes-group-version-kind"],
            gvk_list(&[(r.group, r.version, r.kind)])
        );
        let list = &s[schema_name(r.group, r.version, &format!("{}List", r.kind))];
        assert_eq!(
            list["x-kubernetes-group-version-kind"][0]["kind"],
            format!("{}List", r.kind)
        );
    }
}

fn row(ty: &'static str, field: &str) -> &'static Field {
    schema::field(ty, field).expect("a schema row")
}

#[test]
fn extension_specs_expand() {
    assert_eq!(
        list_extensions(row("io.k8s.api.core.v1.Container", "ports")),
        vec![
            ("x-kubernetes-list-type", json!("map")),
            (
                "x-kubernetes-list-map-keys",
                json!(["containerPort", "protocol"])
            ),
            ("x-kubernetes-patch-strategy", json!("merge")),
            ("x-kubernetes-patch-merge-key", json!("containerPort")),
        ]
    );
    assert_eq!(
        list_extensions(row("io.k8s.api.apps.v1.DeploymentSpec", "strategy")),
        vec![("x-kubernetes-patch-strategy", json!("retainKeys"))]
    );
    assert_eq!(
        list_extensions(row("io.k8s.api.core.v1.NodeSpec", "podCIDRs")),
        vec![
            ("x-kubernetes-list-type", json!("set")),
            ("x-kubernetes-patch-strategy", json!("merge")),
        ]
    );
    assert!(list_extensions(row("io.k8s.api.core.v1.PodTemplateSpec", "spec")).is_empty());
}

#[test]
fn strategic_merge_metadata_present() {
    let d = doc("api/v1");
    let s = &d["components"]["schemas"];
    let containers = &s["io.k8s.api.core.v1.PodSpec"]["properties"]["containers"];
    assert_eq!(containers["x-kubernetes-patch-merge-key"], "name");
    assert_eq!(containers["x-kubernetes-patch-strategy"], "merge");
    assert_eq!(containers["x-kubernetes-list-type"], "map");
    assert_eq!(containers["x-kubernetes-list-map-keys"], json!(["name"]));
    let ports = &s["io.k8s.api.core.v1.Container"]["properties"]["ports"];
    assert_eq!(
        ports["x-kubernetes-list-map-keys"],
        json!(["containerPort", "protocol"])
    );
    // Every table entry must name a real property of a schema in some document: a typo
    // would silently drop the extension.
    let mut all = Map::new();
    for (g, v) in group_versions() {
        if let Value::Object(m) = doc(&doc_path(g, v))["components"]["schemas"].clone() {
            all.extend(m);
        }
    }
    for f in schema::FIELDS {
        for owner in schema::types_with_rows_of(f.owner) {
            assert!(
                all[owner]["properties"][f.name].is_object(),
                "{owner}.{}",
                f.name
            );
        }
    }
    for (name, _) in schema::ATOMIC_TYPES {
        assert!(all[*name].is_object(), "{name}");
    }
}

#[test]
fn metadata_is_optional_except_on_core_events() {
    let d = doc("api/v1");
    let s = &d["components"]["schemas"];
    assert!(s["io.k8s.api.core.v1.Pod"].get("required").is_none());
    assert_eq!(
        s["io.k8s.api.core.v1.Binding"]["required"],
        json!(["target"])
    );
    assert_eq!(
        s["io.k8s.api.core.v1.Event"]["required"],
        json!(["involvedObject", "metadata"])
    );
    assert_eq!(
        s["io.k8s.api.core.v1.Container"]["required"],
        json!(["name"])
    );
}

#[test]
fn refs_with_siblings_are_wrapped() {
    let d = doc("api/v1");
    let md = &d["components"]["schemas"]["io.k8s.api.core.v1.Pod"]["properties"]["metadata"];
    assert!(md.get("$ref").is_none());
    assert_eq!(
        md["allOf"][0]["$ref"],
        "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    );
}
