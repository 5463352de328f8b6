use super::fieldpath::Pe;
use super::*;
use serde_json::json;

const T1: &str = "2026-11-24T02:00:00Z";
const T2: &str = "2026-11-24T02:05:00Z";

fn opts<'a>(manager: &'a str, force: bool, now: &'a str) -> ApplyOptions<'a> {
    ApplyOptions {
        manager,
        force,
        now,
        subresource: None,
    }
}

fn deploy(replicas: i64, image: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": image,
                    "ports": [{"containerPort": 80}]}]}
            }
        }
    })
}

fn entries(obj: &Value) -> Vec<Value> {
    obj["metadata"]["managedFields"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn entry<'a>(list: &'a [Value], manager: &str) -> &'a Value {
    list.iter()
        .find(|e| e["manager"] == manager)
        .unwrap_or_else(|| panic!("no entry for {manager} in {list:?}"))
}

fn apply(current: Option<&Value>, applied: &Value, o: &ApplyOptions) -> Result<Value, ApplyError> {
    server_side_apply("apps/v1", "Deployment", current, applied, o)
}

#[test]
fn create_by_apply_writes_kube_fields_v1() {
    let out = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
    let list = entries(&out);
    assert_eq!(list.len(), 1);
    assert_eq!(
        list[0],
        json!({
            "manager": "kubectl", "operation": "Apply", "apiVersion": "apps/v1",
            "time": T1, "fieldsType": "FieldsV1",
            "fieldsV1": {
                "f:metadata": {"f:labels": {"f:app": {}}},
                "f:spec": {
                    "f:replicas": {},
                    "f:selector": {},
                    "f:template": {
                        "f:metadata": {"f:labels": {"f:app": {}}},
                        "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                            ".": {}, "f:image": {}, "f:name": {},
                            "f:ports": {"k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                                ".": {}, "f:containerPort": {}
                            }}
                        }}}
                    }
                }
            }
        })
    );
    // The key text is kube's, in kube's key order.
    assert_eq!(
        Pe::Key(vec![
            ("containerPort".into(), json!(80)),
            ("protocol".into(), json!("TCP"))
        ])
        .fields_v1_key(),
        r#"k:{"containerPort":80,"protocol":"TCP"}"#
    );
}

#[test]
fn reapply_unchanged_is_a_no_op() {
    let first = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
    let second = apply(
        Some(&first),
        &deploy(3, "nginx:1"),
        &opts("kubectl", false, T2),
    )
    .unwrap();
    assert_eq!(first, second);
}

#[test]
fn apply_removes_fields_it_stopped_setting() {
    let mut cfg = deploy(3, "nginx:1");
    cfg["metadata"]["labels"]["tier"] = json!("front");
    cfg["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "sidecar", "image": "busybox"}));
    let first = apply(None, &cfg, &opts("kubectl", false, T1)).unwrap();
    assert_eq!(
        first["spec"]["template"]["spec"]["containers"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let mut cfg2 = deploy(3, "nginx:1");
    cfg2["spec"].as_object_mut().unwrap().remove("replicas");
    let out = apply(Some(&first), &cfg2, &opts("kubectl", false, T2)).unwrap();
    assert!(out["spec"].get("replicas").is_none());
    assert!(out["metadata"]["labels"].get("tier").is_none());
    assert_eq!(out["metadata"]["labels"]["app"], "web");
    let containers = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1);
    assert_eq!(containers[0]["name"], "nginx");
    assert_eq!(entries(&out)[0]["time"], T2);
    assert!(entries(&out)[0]["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_none());
}

#[test]
fn field_kept_when_another_manager_owns_it() {
    let a = apply(None, &deploy(3, "nginx:1"), &opts("a", false, T1)).unwrap();
    let b = apply(Some(&a), &deploy(3, "nginx:1"), &opts("b", false, T1)).unwrap();
    assert_eq!(entries(&b).len(), 2, "shared ownership of equal values");
    let mut cfg = deploy(3, "nginx:1");
    cfg["spec"].as_object_mut().unwrap().remove("replicas");
    let out = apply(Some(&b), &cfg, &opts("a", false, T2)).unwrap();
    assert_eq!(out["spec"]["replicas"], 3);
}

#[test]
fn conflict_between_two_appliers_and_force() {
    let a = apply(None, &deploy(3, "nginx:1"), &opts("a", false, T1)).unwrap();
    let err = apply(Some(&a), &deploy(5, "nginx:1"), &opts("b", false, T2)).unwrap_err();
    assert_eq!(
        err.message(),
        r#"Apply failed with 1 conflict: conflict with "a": .spec.replicas"#
    );
    let err = apply(Some(&a), &deploy(5, "nginx:2"), &opts("b", false, T2)).unwrap_err();
    assert_eq!(
            err.message(),
            "Apply failed with 2 conflicts: conflicts with \"a\":\n- .spec.replicas\n- .spec.template.spec.containers[name=\"nginx\"].image"
        );
    let out = apply(Some(&a), &deploy(5, "nginx:1"), &opts("b", true, T2)).unwrap();
    assert_eq!(out["spec"]["replicas"], 5);
    let list = entries(&out);
    assert!(entry(&list, "a")["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_none());
    assert!(entry(&list, "b")["fieldsV1"]["f:spec"]
        .get("f:replicas")
        .is_some());
    // The loser no longer conflicts: b owns replicas now.
    let err = apply(Some(&out), &deploy(3, "nginx:1"), &opts("a", false, T2)).unwrap_err();
    assert_eq!(
        err.message(),
        r#"Apply failed with 1 conflict: conflict with "b": .spec.replicas"#
    );
}

#[test]
fn scale_update_then_apply_conflicts() {
    let a = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
    let mut scaled = a.clone();
    scaled["spec"]["replicas"] = json!(10);
    let o = ApplyOptions {
        manager: "kubectl",
        force: false,
        now: T2,
        subresource: Some("scale"),
    };
    record_update("apps/v1", "Deployment", Some(&a), &mut scaled, &o);
    let list = entries(&scaled);
    let upd = list.iter().find(|e| e["operation"] == "Update").unwrap();
    assert_eq!(
        upd,
        &json!({"manager": "kubectl", "operation": "Update", "apiVersion": "apps/v1",
                "time": T2, "fieldsType": "FieldsV1",
                "fieldsV1": {"f:spec": {"f:replicas": {}}}, "subresource": "scale"})
    );
    let err = apply(
        Some(&scaled),
        &deploy(3, "nginx:1"),
        &opts("kubectl", false, T2),
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        r#"Apply failed with 1 conflict: conflict with "kubectl" with subresource "scale" using apps/v1: .spec.replicas"#
    );
    match err {
        ApplyError::Conflict { conflicts } => assert_eq!(conflicts[0].field, ".spec.replicas"),
        other => panic!("{other:?}"),
    }
    // Applying the scaled value is no conflict (equal value).
    assert!(apply(
        Some(&scaled),
        &deploy(10, "nginx:1"),
        &opts("kubectl", false, T2)
    )
    .is_ok());
}

#[test]
fn record_update_on_create_matches_kube_shape() {
    let mut obj = deploy(3, "nginx:1");
    obj["metadata"]["uid"] = json!("u1");
    obj["metadata"]["resourceVersion"] = json!("5");
    obj["spec"]["strategy"] =
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%"}});
    obj["status"] = json!({"replicas": 0});
    record_update(
        "apps/v1",
        "Deployment",
        None,
        &mut obj,
        &opts("kubectl-create", false, T1),
    );
    let list = entries(&obj);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["operation"], "Update");
    assert_eq!(
        list[0]["fieldsV1"],
        json!({
            "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:selector": {},
                "f:strategy": {"f:rollingUpdate": {".": {}, "f:maxSurge": {}}, "f:type": {}},
                "f:template": {
                    "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                    "f:spec": {"f:containers": {"k:{\"name\":\"nginx\"}": {
                        ".": {}, "f:image": {}, "f:name": {},
                        "f:ports": {".": {}, "k:{\"containerPort\":80,\"protocol\":\"TCP\"}": {
                            ".": {}, "f:containerPort": {}
                        }}
                    }}}
                }
            }
        })
    );
}

#[test]
fn record_update_takes_fields_from_appliers_and_keeps_others() {
    let a = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
    let mut edited = a.clone();
    edited["spec"]["template"]["spec"]["containers"][0]["image"] = json!("nginx:2");
    record_update(
        "apps/v1",
        "Deployment",
        Some(&a),
        &mut edited,
        &opts("kubectl-edit", false, T2),
    );
    let list = entries(&edited);
    assert_eq!(list[0]["manager"], "kubectl", "Apply sorts before Update");
    let c = &list[0]["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"]
        ["k:{\"name\":\"nginx\"}"];
    assert!(c.get("f:image").is_none());
    assert!(c.get("f:name").is_some());
    assert_eq!(list[1]["manager"], "kubectl-edit");
    // An update that changes nothing adds no entry.
    let mut same = edited.clone();
    record_update(
        "apps/v1",
        "Deployment",
        Some(&edited),
        &mut same,
        &opts("other", false, T2),
    );
    assert_eq!(same, edited);
    // The status of the main resource is nobody's there.
    let mut st = edited.clone();
    st["status"] = json!({"replicas": 3});
    record_update(
        "apps/v1",
        "Deployment",
        Some(&edited),
        &mut st,
        &opts("ctrl", false, T2),
    );
    assert!(entries(&st).iter().all(|e| e["manager"] != "ctrl"));
    // Reset by sending an empty list.
    let mut reset = edited.clone();
    reset["metadata"]["managedFields"] = json!([]);
    record_update(
        "apps/v1",
        "Deployment",
        Some(&edited),
        &mut reset,
        &opts("x", false, T2),
    );
    assert!(reset["metadata"].get("managedFields").is_none());
}

#[test]
fn list_map_merge_across_managers() {
    let a = apply(None, &deploy(3, "nginx:1"), &opts("a", false, T1)).unwrap();
    let b_cfg = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"template": {"spec": {"containers": [
            {"name": "sidecar", "image": "envoy"},
            {"name": "nginx", "env": [{"name": "A", "value": "1"}]}
        ]}}}
    });
    let out = apply(Some(&a), &b_cfg, &opts("b", false, T2)).unwrap();
    let cs = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2);
    assert_eq!(cs[0]["name"], "sidecar");
    assert_eq!(cs[1]["name"], "nginx");
    assert_eq!(cs[1]["image"], "nginx:1");
    assert_eq!(cs[1]["env"][0]["value"], "1");
    assert_eq!(out["spec"]["replicas"], 3);
    let list = entries(&out);
    let bc = &entry(&list, "b")["fieldsV1"]["f:spec"]["f:template"]["f:spec"]["f:containers"];
    assert!(bc["k:{\"name\":\"nginx\"}"]["f:env"]["k:{\"name\":\"A\"}"]
        .get("f:value")
        .is_some());
    // a stops applying nginx: b still owns the element, so it stays, without a's image.
    let a_cfg = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}}
    });
    let out2 = apply(Some(&out), &a_cfg, &opts("a", false, T2)).unwrap();
    let cs = out2["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(cs.len(), 2);
    assert!(cs[1].get("image").is_none());
    assert_eq!(cs[1]["env"][0]["name"], "A");
}

#[test]
fn sets_and_service_ports() {
    let svc = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "s", "finalizers": ["x/y"]},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "UDP"}, {"port": 80}]}
    });
    let out = server_side_apply("v1", "Service", None, &svc, &opts("m", false, T1)).unwrap();
    let f = &entries(&out)[0]["fieldsV1"];
    assert_eq!(f["f:metadata"]["f:finalizers"], json!({"v:\"x/y\"": {}}));
    assert_eq!(f["f:spec"]["f:selector"], json!({}));
    let ports = f["f:spec"]["f:ports"].as_object().unwrap();
    assert!(ports.contains_key(r#"k:{"port":80,"protocol":"TCP"}"#));
    assert!(ports.contains_key(r#"k:{"port":80,"protocol":"UDP"}"#));
}

#[test]
fn bad_input_is_invalid_not_panic() {
    let o = opts("m", false, T1);
    let cases = [
        json!("string"),
        json!([1, 2]),
        json!({"kind": "Deployment", "metadata": {"name": "x"}}),
        json!({"apiVersion": "apps/v1", "metadata": {"name": "x"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment"}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": 5}}),
        json!({"apiVersion": "v1", "kind": "Deployment", "metadata": {"name": "x"}}),
        json!({"apiVersion": "apps/v1", "kind": "Pod", "metadata": {"name": "x"}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x", "managedFields": []}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                "spec": {"template": {"spec": {"containers": "nope"}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                "spec": {"template": {"spec": {"containers": [{"image": "a"}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                "spec": {"template": {"spec": {"containers": [{"name": "a"}, {"name": "a"}]}}}}),
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "x"},
                "spec": {"template": {"spec": {"containers": [3]}}}}),
    ];
    for c in &cases {
        match apply(None, c, &o) {
            Err(ApplyError::Invalid(msg)) => assert!(!msg.is_empty()),
            other => panic!("{c}: {other:?}"),
        }
    }
    match apply(None, &cases[11], &o) {
        Err(e) => assert_eq!(
            e.message(),
            r#"failed to create typed patch object (/x; apps/v1, Kind=Deployment): .spec.template.spec.containers: duplicate entries for key [name="a"]"#
        ),
        Ok(v) => panic!("{v}"),
    }
    // Garbage in the stored object: no panic either.
    let weird = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "managedFields": [{"operation": "Bogus"}], "labels": 7},
            "spec": {"template": {"spec": {"containers": [1, {"x": 2}, {"name": "nginx"}]}}}});
    let forced = opts("m", true, T1);
    let out = apply(Some(&weird), &deploy(1, "n"), &forced).unwrap();
    assert_eq!(out["spec"]["replicas"], 1);
    let mut w2 = weird.clone();
    record_update("apps/v1", "Deployment", Some(&deploy(1, "n")), &mut w2, &o);
    let mut scalar = json!(5);
    record_update("apps/v1", "Deployment", None, &mut scalar, &o);
}

#[test]
fn fields_v1_round_trip_and_iterate_order() {
    let v = json!({"f:metadata": {"f:labels": {".": {}, "f:a": {}}},
            "f:spec": {"f:containers": {"k:{\"name\":\"n\"}": {".": {}, "f:image": {}}},
                "f:podCIDRs": {"v:\"10.0.0.0/24\"": {}}}});
    let set = fields_v1_to_set(&v).unwrap();
    assert_eq!(set_to_fields_v1(&set), v);
    let mut paths: Vec<&Path> = set.iter().collect();
    paths.sort_by(|a, b| iterate_order(a, b));
    let shown: Vec<String> = paths.iter().map(|p| path_string(p)).collect();
    assert_eq!(
        shown,
        vec![
            ".metadata.labels",
            ".metadata.labels.a",
            ".spec.containers[name=\"n\"]",
            ".spec.containers[name=\"n\"].image",
            ".spec.podCIDRs[=\"10.0.0.0/24\"]",
        ]
    );
}

#[test]
fn version_or_kind_mismatch_message() {
    let mut cfg = deploy(1, "n");
    cfg["apiVersion"] = json!("apps/v1beta1");
    let err = apply(None, &cfg, &opts("m", false, T1)).unwrap_err();
    assert_eq!(
        err.message(),
        "invalid object type: apps/v1beta1, Kind=Deployment"
    );
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}});
    let err = server_side_apply("v1", "Service", None, &pod, &opts("m", false, T1)).unwrap_err();
    assert_eq!(err.message(), "invalid object type: /v1, Kind=Pod");
}

#[test]
fn untracked_object_gets_before_first_apply() {
    let mut live = deploy(3, "nginx:1");
    live["metadata"]["uid"] = json!("u1");
    let err = apply(Some(&live), &deploy(4, "nginx:1"), &opts("helm", false, T2)).unwrap_err();
    assert_eq!(
        err.message(),
        r#"Apply failed with 1 conflict: conflict with "before-first-apply" using apps/v1: .spec.replicas"#
    );
    let out = apply(Some(&live), &deploy(3, "nginx:1"), &opts("helm", false, T2)).unwrap();
    let list = entries(&out);
    assert_eq!(list.len(), 2);
    assert_eq!(entry(&list, "before-first-apply")["operation"], "Update");
    assert_eq!(out["metadata"]["uid"], "u1");
    // An update of an untracked existing object stays untracked.
    let mut upd = live.clone();
    upd["spec"]["replicas"] = json!(9);
    record_update(
        "apps/v1",
        "Deployment",
        Some(&live),
        &mut upd,
        &opts("kubectl-edit", false, T2),
    );
    assert!(upd["metadata"].get("managedFields").is_none());
}

#[test]
fn kubectl_takes_over_client_side_apply_fields() {
    // kubectl apply (client-side) creates with the annotation, via an ordinary create.
    let mut created = deploy(3, "nginx:1");
    let last = go_json(&created);
    created["metadata"]["annotations"] = json!({ LAST_APPLIED: format!("{last}\n") });
    record_update(
        "apps/v1",
        "Deployment",
        None,
        &mut created,
        &opts("kubectl-client-side-apply", false, T1),
    );
    // Someone else's manager would conflict ...
    let err = apply(
        Some(&created),
        &deploy(3, "nginx:2"),
        &opts("other", false, T2),
    )
    .unwrap_err();
    assert!(err
        .message()
        .contains(r#""kubectl-client-side-apply" using apps/v1"#));
    // ... kubectl --server-side takes over what the annotation recorded unchanged.
    let out = apply(
        Some(&created),
        &deploy(3, "nginx:2"),
        &opts("kubectl", false, T2),
    )
    .unwrap();
    let c = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(c["image"], "nginx:2");
    let ann = out["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .unwrap();
    let parsed: Value = serde_json::from_str(ann).unwrap();
    assert_eq!(parsed, deploy(3, "nginx:2"));
    assert!(ann.ends_with('\n'));
    // A field changed since the last client-side apply still conflicts.
    let mut scaled = created.clone();
    scaled["spec"]["replicas"] = json!(7);
    record_update(
        "apps/v1",
        "Deployment",
        Some(&created),
        &mut scaled,
        &opts("kubectl-scale", false, T2),
    );
    let err = apply(
        Some(&scaled),
        &deploy(3, "nginx:1"),
        &opts("kubectl", false, T2),
    )
    .unwrap_err();
    assert_eq!(
        err.message(),
        r#"Apply failed with 1 conflict: conflict with "kubectl-scale" using apps/v1: .spec.replicas"#
    );
}

#[test]
fn noop_apply_by_new_sharer_keeps_times() {
    let a = apply(None, &deploy(3, "nginx:1"), &opts("a", false, T1)).unwrap();
    let b = apply(Some(&a), &deploy(3, "nginx:1"), &opts("b", false, T2)).unwrap();
    let list = entries(&b);
    assert_eq!(entry(&list, "a")["time"], T1);
    assert!(entry(&list, "b").get("time").is_none());
}

#[test]
fn update_managers_are_capped() {
    let mut obj =
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {}});
    record_update(
        "v1",
        "ConfigMap",
        None,
        &mut obj,
        &opts("creator", false, "2026-11-24T01:00:00Z"),
    );
    for i in 0..12 {
        let old = obj.clone();
        obj["data"][format!("k{i}")] = json!("v");
        let now = format!("2026-11-24T01:{:02}:00Z", i + 1);
        let m = format!("m{i:02}");
        record_update(
            "v1",
            "ConfigMap",
            Some(&old),
            &mut obj,
            &opts(&m, false, &now),
        );
    }
    let list = entries(&obj);
    assert_eq!(list.len(), 10);
    let ancient = entry(&list, "ancient-changes");
    let owned = ancient["fieldsV1"]["f:data"].as_object().unwrap();
    assert!(owned.contains_key("f:k0") && owned.contains_key("f:k1"));
    assert_eq!(list.iter().filter(|e| e["manager"] == "m00").count(), 0);
}

#[test]
fn status_subresource_owns_status_only() {
    let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
            "spec": {"containers": [{"name": "c", "image": "i"}]}});
    let mut created = pod.clone();
    record_update("v1", "Pod", None, &mut created, &opts("kubectl", false, T1));
    let mut with_status = created.clone();
    with_status["status"] =
        json!({"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]});
    let o = ApplyOptions {
        manager: "kubelet",
        force: false,
        now: T2,
        subresource: Some("status"),
    };
    record_update("v1", "Pod", Some(&created), &mut with_status, &o);
    let list = entries(&with_status);
    let k = entry(&list, "kubelet");
    assert_eq!(k["subresource"], "status");
    assert_eq!(
        k["fieldsV1"],
        json!({"f:status": {"f:conditions": {".": {}, "k:{\"type\":\"Ready\"}": {".": {}, "f:status": {}, "f:type": {}}}, "f:phase": {}}})
    );
    // Applying status through the main resource changes nothing there.
    let cfg = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "status": {"phase": "Failed"}});
    let out =
        server_side_apply("v1", "Pod", Some(&with_status), &cfg, &opts("x", false, T2)).unwrap();
    assert_eq!(out["status"]["phase"], "Running");
}

#[test]
fn atomic_elements_and_maps() {
    let mut rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": "r", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment",
                "name": "web", "uid": "u-1", "controller": true}]},
            "spec": {"selector": {"matchLabels": {"a": "b"}},
                "template": {"spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "c",
                    "env": [{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}]}]}}}});
    record_update(
        "apps/v1",
        "ReplicaSet",
        None,
        &mut rs,
        &opts("kube-controller-manager", false, T1),
    );
    let f = &entries(&rs)[0]["fieldsV1"];
    assert_eq!(
        f["f:metadata"]["f:ownerReferences"],
        json!({".": {}, "k:{\"uid\":\"u-1\"}": {}})
    );
    let spec = &f["f:spec"]["f:template"]["f:spec"];
    assert_eq!(spec["f:nodeSelector"], json!({}));
    assert_eq!(
        spec["f:containers"]["k:{\"name\":\"c\"}"]["f:env"]["k:{\"name\":\"X\"}"],
        json!({".": {}, "f:name": {}, "f:valueFrom": {".": {}, "f:fieldRef": {}}})
    );
}

#[test]
fn status_apply_keeps_spec_and_labels() {
    let d = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
    let mut cfg = deploy(1, "other");
    cfg["metadata"]["labels"] = json!({"hijack": "yes"});
    cfg["status"] = json!({"replicas": 3, "conditions": [{"type": "Available", "status": "True"}]});
    let o = ApplyOptions {
        manager: "ctrl",
        force: false,
        now: T2,
        subresource: Some("status"),
    };
    let out = apply(Some(&d), &cfg, &o).unwrap();
    assert_eq!(out["spec"], d["spec"]);
    assert_eq!(out["metadata"]["labels"], d["metadata"]["labels"]);
    assert_eq!(out["status"]["conditions"][0]["type"], "Available");
    let list = entries(&out);
    let c = entry(&list, "ctrl");
    assert_eq!(c["subresource"], "status");
    assert!(c["fieldsV1"].get("f:spec").is_none());
    assert!(c["fieldsV1"]["f:status"].get("f:conditions").is_some());
}

#[test]
fn record_update_honours_managed_fields_in_body() {
    let a = apply(None, &deploy(3, "nginx:1"), &opts("kubectl", false, T1)).unwrap();
    let mut edited = a.clone();
    edited["metadata"]["managedFields"] = json!([{"manager": "someone", "operation": "Update",
            "apiVersion": "apps/v1", "time": T1, "fieldsType": "FieldsV1",
            "fieldsV1": {"f:spec": {"f:replicas": {}}}}]);
    record_update(
        "apps/v1",
        "Deployment",
        Some(&a),
        &mut edited,
        &opts("x", false, T2),
    );
    let list = entries(&edited);
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["manager"], "someone");
}
