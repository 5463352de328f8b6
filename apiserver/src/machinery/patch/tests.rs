use super::*;
use serde_json::json;

fn smp(kind: (&str, &str), doc: Value, patch: Value) -> PResult<Value> {
    strategic_merge_patch(kind.0, kind.1, &doc, patch.to_string().as_bytes())
}
const POD: (&str, &str) = ("v1", "Pod");
const DEPLOY: (&str, &str) = ("apps/v1", "Deployment");

// ---------------- JSON patch ----------------

#[test]
fn json_patch_all_ops() {
    let doc = json!({"a": {"b": [1, 2, 3]}, "c/d": 1, "e~f": 2});
    let patch = json!([
        {"op": "add", "path": "/a/b/1", "value": 9},
        {"op": "add", "path": "/a/b/-", "value": 10},
        {"op": "remove", "path": "/a/b/0"},
        {"op": "replace", "path": "/c~1d", "value": "x"},
        {"op": "copy", "from": "/e~0f", "path": "/g"},
        {"op": "move", "from": "/g", "path": "/h"},
        {"op": "test", "path": "/h", "value": 2},
        {"op": "test", "path": "/missing", "value": null}
    ]);
    let out = json_patch(&doc, patch.to_string().as_bytes()).unwrap();
    assert_eq!(
        out,
        json!({"a": {"b": [9, 2, 3, 10]}, "c/d": "x", "e~f": 2, "h": 2})
    );
}

#[test]
fn json_patch_negative_index_and_lenient_replace() {
    let doc = json!({"l": [1, 2, 3]});
    let out = json_patch(
        &doc,
        br#"[{"op":"remove","path":"/l/-1"},{"op":"replace","path":"/new","value":1}]"#,
    )
    .unwrap();
    assert_eq!(out, json!({"l": [1, 2], "new": 1}));
}

#[test]
fn json_patch_failures_are_422() {
    let doc = json!({"a": 1, "l": [1]});
    for p in [
        r#"[{"op":"test","path":"/a","value":2}]"#,
        r#"[{"op":"remove","path":"/b"}]"#,
        r#"[{"op":"add","path":"/x/y","value":1}]"#,
        r#"[{"op":"add","path":"/l/5","value":1}]"#,
        r#"[{"op":"replace","path":"/l/3","value":1}]"#,
        r#"[{"op":"move","from":"/nope","path":"/a"}]"#,
        r#"[{"op":"copy","from":"/nope","path":"/a"}]"#,
        r#"[{"op":"frob","path":"/a"}]"#,
        r#"[{"path":"/a"}]"#,
        r#"[{"op":"add"}]"#,
        r#"[{"op":"add","path":""}]"#,
    ] {
        let e = json_patch(&doc, p.as_bytes()).unwrap_err();
        assert_eq!(e.status_code(), 422, "{p}: {e}");
        assert_eq!(e.reason(), "Invalid");
        assert_eq!(e.message(), GENERIC_422);
    }
}

#[test]
fn json_patch_malformed_is_400() {
    let doc = json!({});
    for p in ["{", "{}", "[1]", "\"x\"", ""] {
        let e = json_patch(&doc, p.as_bytes()).unwrap_err();
        assert_eq!(e.status_code(), 400, "{p}");
        assert!(e.is_bad_request());
    }
    assert_eq!(json_patch(&doc, b"null").unwrap(), doc);
}

#[test]
fn json_patch_too_many_ops() {
    let ops: Vec<Value> = (0..10001)
        .map(|_| json!({"op":"test","path":"/a","value":null}))
        .collect();
    let e = json_patch(&json!({}), Value::Array(ops).to_string().as_bytes()).unwrap_err();
    assert_eq!(e.status_code(), 413);
}

// ---------------- merge patch ----------------

#[test]
fn merge_patch_rfc7386_examples() {
    let doc = json!({"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
                         "tags": ["example", "sample"], "content": "This will be unchanged"});
    let patch = json!({"title": "Hello!", "phoneNumber": "+01-123-456-7890",
                           "author": {"familyName": null}, "tags": ["example"]});
    let out = merge_patch(&doc, patch.to_string().as_bytes()).unwrap();
    assert_eq!(
        out,
        json!({"title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
                   "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"})
    );
    // Nested objects replacing scalars lose their nulls.
    let out = merge_patch(&json!({"a": 1}), br#"{"a":{"b":null,"c":1}}"#).unwrap();
    assert_eq!(out, json!({"a": {"c": 1}}));
}

#[test]
fn merge_patch_errors() {
    for p in ["null", "1", "\"s\"", "{", ""] {
        let e = merge_patch(&json!({}), p.as_bytes()).unwrap_err();
        assert_eq!(e.status_code(), 400, "{p}");
        assert_eq!(e.message(), BAD_JSON_PATCH);
    }
    assert_eq!(
        merge_patch(&json!({}), b"[]").unwrap_err().status_code(),
        422
    );
}

// ---------------- strategic merge patch ----------------

fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "labels": {"a": "1", "b": "2"}, "finalizers": ["x", "y"]},
        "spec": {
            "containers": [
                {"name": "c1", "image": "i1", "ports": [{"containerPort": 80, "protocol": "TCP"}],
                 "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]},
                {"name": "c2", "image": "i2"}
            ],
            "tolerations": [{"key": "k1"}, {"key": "k2"}],
            "volumes": [{"name": "v1", "emptyDir": {}}]
        }
    })
}

#[test]
fn smp_merge_key_update_add_delete() {
    let out = smp(
        POD,
        pod(),
        json!({"spec": {"containers": [
            {"name": "c1", "image": "new"},
            {"name": "c3", "image": "i3"},
            {"name": "c2", "$patch": "delete"}
        ]}}),
    )
    .unwrap();
    let cs = &out["spec"]["containers"];
    assert_eq!(cs.as_array().unwrap().len(), 2);
    assert_eq!(cs[0]["name"], "c1");
    assert_eq!(cs[0]["image"], "new");
    // untouched fields of a merged element survive
    assert_eq!(cs[0]["ports"][0]["containerPort"], 80);
    assert_eq!(cs[1], json!({"name": "c3", "image": "i3"}));
}

#[test]
fn smp_nested_lists_by_key() {
    let out = smp(
        POD,
        pod(),
        json!({"spec": {"containers": [{"name": "c1",
                "env": [{"name": "B", "value": "20"}, {"name": "C", "value": "3"}],
                "ports": [{"containerPort": 443}]}]}}),
    )
    .unwrap();
    let c1 = &out["spec"]["containers"][0];
    assert_eq!(
        c1["env"],
        json!([{"name": "A", "value": "1"}, {"name": "B", "value": "20"}, {"name": "C", "value": "3"}])
    );
    // As in Go's mergeSortedSlice: a new patch item is placed before a server-only item
    // whose position cannot be compared with it.
    assert_eq!(
        c1["ports"],
        json!([{"containerPort": 443}, {"containerPort": 80, "protocol": "TCP"}])
    );
}

#[test]
fn smp_list_without_key_is_replaced_and_null_deletes() {
    let out = smp(
        POD,
        pod(),
        json!({"metadata": {"labels": {"a": null, "c": "3"}},
                   "spec": {"tolerations": [{"key": "k3"}]}}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"b": "2", "c": "3"}));
    assert_eq!(out["spec"]["tolerations"], json!([{"key": "k3"}]));
}

#[test]
fn smp_deployment_template_pod_spec() {
    let doc = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"replicas": 1, "template": {"metadata": {"labels": {"app": "x"}},
                "spec": {"containers": [{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:1"}]}}}});
    let out = smp(
            DEPLOY,
            doc,
            json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "b", "image": "b:2"}]}}}}),
        )
        .unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "a", "image": "a:1"}, {"name": "b", "image": "b:2"}])
    );
    assert_eq!(out["spec"]["template"]["metadata"]["labels"]["app"], "x");
}

#[test]
fn smp_primitive_merge_list_finalizers() {
    let out = smp(POD, pod(), json!({"metadata": {"finalizers": ["y", "z"]}})).unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["x", "y", "z"]));
    let out = smp(
        POD,
        pod(),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["y"]));
    // Deleting from a missing list is a no-op and leaves no directive behind.
    let out = smp(
        POD,
        json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
    )
    .unwrap();
    assert_eq!(out, json!({"metadata": {}}));
}

#[test]
fn smp_patch_replace_directive() {
    // On a list: the rest of the patch list becomes the list.
    let out = smp(
        POD,
        pod(),
        json!({"spec": {"containers": [{"name": "only", "image": "o"}, {"$patch": "replace"}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "only", "image": "o"}])
    );
    // On a map: the map becomes the patch.
    let out = smp(
        POD,
        pod(),
        json!({"metadata": {"labels": {"$patch": "replace", "z": "9"}}}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({"z": "9"}));
}

#[test]
fn smp_patch_delete_directive_on_map() {
    let out = smp(
        POD,
        pod(),
        json!({"metadata": {"labels": {"$patch": "delete"}}}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["labels"], json!({}));
}

#[test]
fn smp_patch_merge_directive_is_rejected_like_kube() {
    let e = smp(
        POD,
        pod(),
        json!({"metadata": {"labels": {"$patch": "merge"}}}),
    )
    .unwrap_err();
    assert_eq!(e.status_code(), 500);
    assert_eq!(
        e.message(),
        "unknown patch type: merge in map: map[$patch:merge]"
    );
    let e = smp(
        POD,
        pod(),
        json!({"spec": {"containers": [{"$patch": "merge"}]}}),
    )
    .unwrap_err();
    assert_eq!(
        e.message(),
        "merging lists cannot yet be specified in the patch"
    );
}

#[test]
fn smp_retain_keys() {
    let doc = json!({"spec": {"strategy": {"type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1}}}});
    let out = smp(
        DEPLOY,
        doc.clone(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}}),
    )
    .unwrap();
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
    let e = smp(
        DEPLOY,
        doc.clone(),
        json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}}),
    )
    .unwrap_err();
    assert_eq!(e.status_code(), 400);
    let e = smp(
        DEPLOY,
        doc,
        json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
    )
    .unwrap_err();
    assert_eq!(e.status_code(), 400);
    assert_eq!(e.message(), ERR_BAD_RETAIN_KEYS);
}

#[test]
fn smp_set_element_order() {
    // kubectl apply sends the full desired order plus the changed items.
    let out = smp(
        POD,
        pod(),
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "c2"}, {"name": "c1"}],
            "containers": [{"name": "c1", "image": "x"}]
        }}),
    )
    .unwrap();
    let cs = out["spec"]["containers"].as_array().unwrap();
    assert_eq!(cs[0]["name"], "c2");
    assert_eq!(cs[1]["name"], "c1");
    assert_eq!(cs[1]["image"], "x");
    assert!(out["spec"]
        .as_object()
        .unwrap()
        .keys()
        .all(|k| !k.starts_with('$')));

    // Primitive list order, directive only.
    let out = smp(
        POD,
        pod(),
        json!({"metadata": {"$setElementOrder/finalizers": ["y", "x"]}}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["y", "x"]));
}

#[test]
fn smp_set_element_order_from_go_tests() {
    // strategicpatch TestStrategicMergePatch "add a new item with setElementOrder".
    let doc = json!({"spec": {"containers": [{"name": "a"}, {"name": "c"}]}});
    let out = smp(
        POD,
        doc,
        json!({"spec": {
            "$setElementOrder/containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}],
            "containers": [{"name": "b", "image": "b"}]
        }}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["containers"],
        json!([{"name": "a"}, {"name": "b", "image": "b"}, {"name": "c"}])
    );
    // Server-only items keep their place relative to the live order.
    let doc = json!({"metadata": {"finalizers": ["a", "b", "c", "d"]}});
    let out = smp(
        POD,
        doc,
        json!({"metadata": {"$setElementOrder/finalizers": ["d", "a"], "finalizers": ["d", "a"]}}),
    )
    .unwrap();
    assert_eq!(out["metadata"]["finalizers"], json!(["b", "c", "d", "a"]));
}

#[test]
fn smp_unknown_kind_plain_merge() {
    let doc = json!({"spec": {"list": [{"name": "a", "v": 1}], "m": {"x": 1}}});
    let out = smp(
        ("example.com/v1", "Widget"),
        doc,
        json!({"spec": {"list": [{"name": "b"}], "m": {"y": 2, "x": null}}}),
    )
    .unwrap();
    assert_eq!(
        out,
        json!({"spec": {"list": [{"name": "b"}], "m": {"y": 2}}})
    );
}

#[test]
fn smp_status_conditions_and_owner_refs() {
    let doc = json!({"metadata": {"ownerReferences": [{"uid": "1", "name": "a"}]},
            "status": {"conditions": [{"type": "Ready", "status": "False"},
                                      {"type": "Initialized", "status": "True"}]}});
    let out = smp(
        POD,
        doc,
        json!({"metadata": {"ownerReferences": [{"uid": "2", "name": "b"}]},
                   "status": {"conditions": [{"type": "Ready", "status": "True"}]}}),
    )
    .unwrap();
    assert_eq!(
        out["metadata"]["ownerReferences"].as_array().unwrap().len(),
        2
    );
    assert_eq!(
        out["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}, {"type": "Initialized", "status": "True"}])
    );
}

#[test]
fn smp_node_and_service_keys() {
    let node = json!({"status": {"addresses": [{"type": "InternalIP", "address": "1"}]},
                          "spec": {"podCIDRs": ["10.0.0.0/24"]}});
    let out = smp(
        ("v1", "Node"),
        node,
        json!({"status": {"addresses": [{"type": "Hostname", "address": "h"}]},
                   "spec": {"podCIDRs": ["10.0.1.0/24"]}}),
    )
    .unwrap();
    assert_eq!(out["status"]["addresses"].as_array().unwrap().len(), 2);
    assert_eq!(out["spec"]["podCIDRs"].as_array().unwrap().len(), 2);

    let svc = json!({"spec": {"ports": [{"port": 80, "targetPort": 8080}]}});
    let out = smp(
        ("v1", "Service"),
        svc,
        json!({"spec": {"ports": [{"port": 80, "targetPort": 9090}, {"port": 443}]}}),
    )
    .unwrap();
    assert_eq!(
        out["spec"]["ports"],
        json!([{"port": 80, "targetPort": 9090}, {"port": 443}])
    );
}

#[test]
fn smp_new_values_are_cleaned() {
    // A list created by the patch must not keep directive elements or nulls.
    let out = smp(
        POD,
        json!({"spec": {}}),
        json!({"spec": {"containers": [{"name": "a", "image": null},
                                           {"name": "b", "$patch": "delete"}]}}),
    )
    .unwrap();
    assert_eq!(out["spec"]["containers"], json!([{"name": "a"}]));
}

#[test]
fn smp_errors() {
    for p in ["[1]", "\"x\"", "{", "3"] {
        let e = strategic_merge_patch("v1", "Pod", &pod(), p.as_bytes()).unwrap_err();
        assert_eq!(e.status_code(), 400, "{p}");
    }
    assert_eq!(
        strategic_merge_patch("v1", "Pod", &pod(), b"null").unwrap(),
        pod()
    );
    // Element without its merge key.
    let e = smp(
        POD,
        pod(),
        json!({"spec": {"containers": [{"image": "x"}]}}),
    )
    .unwrap_err();
    assert_eq!(e.status_code(), 500);
    assert!(e
        .message()
        .contains("does not contain declared merge key: name"));
    // Lists of lists (only when the first element is a list, as in Go).
    let e = smp(
        POD,
        json!({"metadata": {}}),
        json!({"metadata": {"finalizers": [["x"]]}}),
    );
    assert_eq!(e.unwrap_err().status_code(), 422);
    let e = smp(POD, pod(), json!({"metadata": {"finalizers": [["x"]]}})).unwrap_err();
    assert_eq!(
        e.message(),
        "list element types are not identical: [[x y] [[x]]]"
    );
    // Bad $setElementOrder prefix.
    let e = smp(POD, pod(), json!({"spec": {"$setElementOrderX": []}})).unwrap_err();
    assert_eq!(e.status_code(), 400);
    // Bad $deleteFromPrimitiveList prefix.
    let e = smp(
        POD,
        pod(),
        json!({"metadata": {"$deleteFromPrimitiveListfinalizers": ["x"]}}),
    )
    .unwrap_err();
    assert_eq!(e.message(), ERR_BAD_PRIMITIVE_LIST);
    // Mixed element types.
    let e = smp(POD, pod(), json!({"metadata": {"finalizers": [1]}})).unwrap_err();
    assert_eq!(e.status_code(), 500);
}

#[test]
fn dedup_matches_go_order() {
    // Go: [a b a c] → s[2]=s[3] → [a b c]
    assert_eq!(
        deduplicate_scalars(vec![json!("a"), json!("b"), json!("a"), json!("c")]),
        vec![json!("a"), json!("b"), json!("c")]
    );
    assert_eq!(
        deduplicate_scalars(vec![json!(1), json!(1), json!(1)]),
        vec![json!(1)]
    );
}

#[test]
fn deep_nesting_does_not_panic() {
    let mut p = String::new();
    for _ in 0..200 {
        p.push_str("{\"a\":");
    }
    p.push('1');
    for _ in 0..200 {
        p.push('}');
    }
    assert!(strategic_merge_patch("v1", "Pod", &json!({}), p.as_bytes()).is_err());
    assert!(merge_patch(&json!({}), p.as_bytes()).is_err());
}

/// A patch body within the 3 MiB limit can hold tens of thousands of list items. Every lookup of
/// an item used to scan a list (merging by key, partitioning, and a sort whose key was itself a
/// scan), so such a patch cost O(n² log n): minutes of a worker's CPU for one request. Now each
/// list is indexed once; the bound below is a hundred times what the indexed merge takes here
/// and far below what the scanning one took.
#[test]
fn smp_of_large_lists_stays_near_linear() {
    const N: usize = 40_000;
    let env = |range: std::ops::Range<usize>, v: &str| -> Vec<Value> {
        range
            .map(|i| json!({"name": format!("E{i:06}"), "value": v}))
            .collect()
    };
    let finalizers = |range: std::ops::Range<usize>| -> Vec<Value> {
        range.map(|i| json!(format!("f{i:06}"))).collect()
    };
    let doc = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "finalizers": finalizers(0..N)},
        "spec": {"containers": [{"name": "c", "image": "i", "env": env(0..N, "old")}]}
    });
    // Half the items are new, half replace old ones; the order list names them all.
    let mut patch_env = env(N / 2..N + N / 2, "new");
    patch_env.reverse();
    let order: Vec<Value> = (0..N + N / 2)
        .rev()
        .map(|i| json!({"name": format!("E{i:06}")}))
        .collect();
    let patch = json!({
        "metadata": {"finalizers": finalizers(N / 2..N + N / 2)},
        "spec": {"containers": [{"name": "c", "env": patch_env, "$setElementOrder/env": order}]}
    });
    assert!(patch.to_string().len() < 3 << 20, "fits in a request body");
    let started = std::time::Instant::now();
    let out = smp(POD, doc, patch).unwrap();
    let took = started.elapsed();
    let env = out["spec"]["containers"][0]["env"].as_array().unwrap();
    assert_eq!(env.len(), N + N / 2);
    // In $setElementOrder's order (descending names); replaced and kept values as merged.
    assert_eq!(
        env[0],
        json!({"name": format!("E{:06}", N + N / 2 - 1), "value": "new"})
    );
    assert_eq!(
        env[env.len() - 1],
        json!({"name": "E000000", "value": "old"})
    );
    let fins = out["metadata"]["finalizers"].as_array().unwrap();
    assert_eq!(fins.len(), N + N / 2);
    println!("strategic merge patch of {N} + {N} list items: {took:?}");
    assert!(took < std::time::Duration::from_secs(10), "took {took:?}");
}
