use super::*;

const NOW: i64 = 1_700_000_000; // 2023-11-14T22:13:20Z

fn ts(secs_ago: i64) -> String {
    format_rfc3339(NOW - secs_ago)
}

fn one(api_version: &str, kind: &str, obj: Value) -> Value {
    let t = table(api_version, kind, &[obj], IncludeObject::None, NOW);
    t["rows"][0]["cells"].clone()
}

fn col_names(t: &Value) -> Vec<(String, i64)> {
    t["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            (
                c["name"].as_str().unwrap_or_default().to_string(),
                c["priority"].as_i64().unwrap_or(-1),
            )
        })
        .collect()
}

#[test]
fn human_duration_matches_kube() {
    for (secs, want) in [
        (-2, "<invalid>"),
        (-1, "0s"),
        (0, "0s"),
        (5, "5s"),
        (119, "119s"),
        (120, "2m"),
        (123, "2m3s"),
        (599, "9m59s"),
        (600, "10m"),
        (3 * 3600 - 1, "179m"),
        (3 * 3600, "3h"),
        (3 * 3600 + 4 * 60, "3h4m"),
        (8 * 3600, "8h"),
        (47 * 3600 + 59 * 60, "47h"),
        (48 * 3600, "2d"),
        (51 * 3600, "2d3h"),
        (8 * 86400, "8d"),
        (729 * 86400, "729d"),
        (730 * 86400, "2y"),
        (733 * 86400, "2y3d"),
        (8 * 365 * 86400, "8y"),
        (20 * 365 * 86400, "20y"),
    ] {
        assert_eq!(human_duration(secs), want, "{secs}s");
    }
}

#[test]
fn include_object_parse() {
    assert_eq!(IncludeObject::parse("None"), Some(IncludeObject::None));
    assert_eq!(
        IncludeObject::parse("Metadata"),
        Some(IncludeObject::Metadata)
    );
    assert_eq!(IncludeObject::parse(""), Some(IncludeObject::Metadata));
    assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
    assert_eq!(IncludeObject::parse("object"), None);
}

#[test]
fn table_shape_and_row_objects() {
    let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "default", "creationTimestamp": ts(90), "uid": "u"},
            "status": {"phase": "Active"}});
    let t = table(
        "v1",
        "Namespace",
        std::slice::from_ref(&ns),
        IncludeObject::Metadata,
        NOW,
    );
    assert_eq!(t["kind"], "Table");
    assert_eq!(t["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(t["metadata"], json!({}));
    assert_eq!(
        t["columnDefinitions"][0],
        json!({"name": "Name", "type": "string", "format": "name", "description": D_NAME, "priority": 0})
    );
    assert_eq!(t["rows"][0]["cells"], json!(["default", "Active", "90s"]));
    assert_eq!(
        t["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                   "metadata": ns["metadata"].clone()})
    );
    assert!(t["rows"][0].get("conditions").is_none());
    let t = table(
        "v1",
        "Namespace",
        std::slice::from_ref(&ns),
        IncludeObject::Object,
        NOW,
    );
    assert_eq!(t["rows"][0]["object"], ns);
    let t = table("v1", "Namespace", &[ns], IncludeObject::None, NOW);
    assert_eq!(t["rows"][0]["object"], Value::Null);
    let t = table("v1", "Namespace", &[], IncludeObject::None, NOW);
    assert_eq!(t["rows"], json!([]));
}

#[test]
fn empty_objects_do_not_panic() {
    for (av, kind) in [
        ("v1", "Namespace"),
        ("v1", "Node"),
        ("v1", "Pod"),
        ("v1", "Service"),
        ("v1", "Endpoints"),
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Event"),
        ("apps/v1", "Deployment"),
        ("apps/v1", "ReplicaSet"),
        ("coordination.k8s.io/v1", "Lease"),
        ("v1", "ServiceAccount"),
    ] {
        for obj in [
            json!({}),
            json!(null),
            json!([1]),
            json!({"metadata": 5, "spec": "x", "status": []}),
        ] {
            let t = table(av, kind, &[obj], IncludeObject::Metadata, NOW);
            let cols = t["columnDefinitions"].as_array().map_or(0, Vec::len);
            let cells = t["rows"][0]["cells"].as_array().map_or(0, Vec::len);
            assert_eq!(cols, cells, "{kind}");
        }
    }
}

#[test]
fn default_table() {
    let t = table(
        "v1",
        "PodTemplate",
        &[json!({"metadata": {"name": "sa", "creationTimestamp": "2023-11-14T22:13:20Z"}})],
        IncludeObject::None,
        NOW,
    );
    assert_eq!(
        col_names(&t),
        vec![("Name".into(), 0), ("Created At".into(), 0)]
    );
    assert_eq!(t["columnDefinitions"][1]["type"], "date");
    assert_eq!(t["rows"][0]["cells"], json!(["sa", "2023-11-14T22:13:20Z"]));
    let cells = one("v1", "PodTemplate", json!({"metadata": {"name": "x"}}));
    assert_eq!(cells, json!(["x", "0001-01-01T00:00:00Z"]));
}

#[test]
fn namespace_and_unknown_age() {
    let cells = one("v1", "Namespace", json!({"metadata": {"name": "a"}}));
    assert_eq!(cells, json!(["a", "", "<unknown>"]));
    let cells = one(
        "v1",
        "Namespace",
        json!({"metadata": {"name": "a", "creationTimestamp": ts(-10)}}),
    );
    assert_eq!(cells[2], "<invalid>");
}

fn running_pod() -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default", "creationTimestamp": ts(3600)},
        "spec": {"nodeName": "node1", "containers": [{"name": "a"}, {"name": "b"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.1.0.5",
            "podIPs": [{"ip": "10.1.0.5"}],
            "conditions": [{"type": "Ready", "status": "True"}],
            "containerStatuses": [
                {"name": "a", "ready": true, "restartCount": 0, "state": {"running": {"startedAt": ts(3000)}}},
                {"name": "b", "ready": true, "restartCount": 2,
                 "state": {"running": {"startedAt": ts(300)}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": ts(300)}}}
            ]
        }
    })
}

#[test]
fn pod_columns_and_running_row() {
    let t = table("v1", "Pod", &[running_pod()], IncludeObject::None, NOW);
    assert_eq!(
        col_names(&t),
        vec![
            ("Name".into(), 0),
            ("Ready".into(), 0),
            ("Status".into(), 0),
            ("Restarts".into(), 0),
            ("Age".into(), 0),
            ("IP".into(), 1),
            ("Node".into(), 1),
            ("Nominated Node".into(), 1),
            ("Readiness Gates".into(), 1),
        ]
    );
    assert_eq!(t["columnDefinitions"][3]["type"], "string");
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "web",
            "2/2",
            "Running",
            "2 (5m ago)",
            "60m",
            "10.1.0.5",
            "node1",
            "<none>",
            "<none>"
        ])
    );
}

#[test]
fn pod_status_reasons() {
    // Pending, unscheduled.
    let cells = one(
        "v1",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Pending"}}),
    );
    assert_eq!(
        cells,
        json!([
            "p",
            "0/1",
            "Pending",
            "0",
            "<unknown>",
            "<none>",
            "<none>",
            "<none>",
            "<none>"
        ])
    );

    // ContainerCreating.
    let cells = one(
        "v1",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Pending", "containerStatuses": [
                       {"name": "a", "ready": false, "restartCount": 0,
                        "state": {"waiting": {"reason": "ContainerCreating"}}}]}}),
    );
    assert_eq!(cells[2], "ContainerCreating");

    // CrashLoopBackOff with restarts and age of last restart.
    let cells = one(
        "v1",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"name": "a", "ready": false, "restartCount": 5,
                        "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                        "lastState": {"terminated": {"exitCode": 1, "reason": "Error", "finishedAt": ts(42)}}}]}}),
    );
    assert_eq!(cells[1], "0/1");
    assert_eq!(cells[2], "CrashLoopBackOff");
    assert_eq!(cells[3], "5 (42s ago)");

    // Completed, with the Succeeded row condition.
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
               "status": {"phase": "Succeeded", "containerStatuses": [
                   {"name": "a", "ready": false, "restartCount": 0,
                    "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}});
    let t = table("v1", "Pod", &[pod], IncludeObject::None, NOW);
    assert_eq!(t["rows"][0]["cells"][2], "Completed");
    assert_eq!(
        t["rows"][0]["conditions"],
        json!([{"type": "Completed", "status": "True", "reason": "Succeeded",
                    "message": "The pod has completed successfully."}])
    );

    // Terminated without a reason.
    let cells = one(
        "v1",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Failed", "containerStatuses": [
                       {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}}),
    );
    assert_eq!(cells[2], "Signal:9");

    // Completed container beside a running one.
    let cells = one(
        "v1",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}, {"name": "b"}]},
                   "status": {"phase": "Running", "containerStatuses": [
                       {"name": "a", "ready": true, "state": {"running": {}}},
                       {"name": "b", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}),
    );
    assert_eq!(cells[2], "NotReady");
    assert_eq!(cells[1], "1/2");

    // Terminating.
    let mut pod = running_pod();
    pod["metadata"]["deletionTimestamp"] = json!(ts(1));
    assert_eq!(one("v1", "Pod", pod.clone())[2], "Terminating");
    pod["status"]["reason"] = json!("NodeLost");
    assert_eq!(one("v1", "Pod", pod)[2], "Unknown");

    // SchedulingGated.
    let cells = one(
        "v1",
        "Pod",
        json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "a"}]},
                   "status": {"phase": "Pending", "conditions": [
                       {"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}]}}),
    );
    assert_eq!(cells[2], "SchedulingGated");
}

#[test]
fn pod_init_containers() {
    let base = |statuses: Value| {
        json!({"metadata": {"name": "p"},
                   "spec": {"initContainers": [{"name": "i1"}, {"name": "i2"}],
                            "containers": [{"name": "a"}]},
                   "status": {"phase": "Pending", "initContainerStatuses": statuses,
                              "containerStatuses": [{"name": "a", "state": {"waiting": {"reason": "PodInitializing"}}}]}})
    };
    let cells = one(
        "v1",
        "Pod",
        base(json!([
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "state": {"running": {}}}
        ])),
    );
    assert_eq!(cells[2], "Init:1/2");
    let cells = one(
        "v1",
        "Pod",
        base(
            json!([{"name": "i1", "restartCount": 3, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]),
        ),
    );
    assert_eq!(cells[2], "Init:CrashLoopBackOff");
    assert_eq!(cells[3], "3");
    let cells = one(
        "v1",
        "Pod",
        base(json!([{"name": "i1", "state": {"terminated": {"exitCode": 2}}}])),
    );
    assert_eq!(cells[2], "Init:ExitCode:2");
    let cells = one(
        "v1",
        "Pod",
        base(json!([{"name": "i1", "state": {"terminated": {"exitCode": 1, "reason": "Error"}}}])),
    );
    assert_eq!(cells[2], "Init:Error");
    let cells = one(
        "v1",
        "Pod",
        base(json!([{"name": "i1", "state": {"waiting": {"reason": "PodInitializing"}}}])),
    );
    assert_eq!(cells[2], "Init:0/2");

    // A started sidecar (restartPolicy Always) counts as a container.
    let pod = json!({"metadata": {"name": "p"},
            "spec": {"initContainers": [{"name": "side", "restartPolicy": "Always"}],
                     "containers": [{"name": "a"}]},
            "status": {"phase": "Running",
                       "conditions": [{"type": "Initialized", "status": "True"}],
                       "initContainerStatuses": [{"name": "side", "started": true, "ready": true,
                                                  "restartCount": 1, "state": {"running": {}}}],
                       "containerStatuses": [{"name": "a", "ready": true, "restartCount": 1,
                                              "state": {"running": {}}}]}});
    let cells = one("v1", "Pod", pod);
    assert_eq!(cells[1], "2/2");
    assert_eq!(cells[2], "Running");
    assert_eq!(cells[3], "2");
}

#[test]
fn pod_readiness_gates_and_nominated() {
    let mut pod = running_pod();
    pod["spec"]["readinessGates"] = json!([{"conditionType": "x"}, {"conditionType": "y"}]);
    pod["status"]["conditions"] =
        json!([{"type": "x", "status": "True"}, {"type": "y", "status": "False"}]);
    pod["status"]["nominatedNodeName"] = json!("n2");
    let cells = one("v1", "Pod", pod);
    assert_eq!(cells[7], "n2");
    assert_eq!(cells[8], "1/2");
}

#[test]
fn node_rows() {
    let node = json!({
        "metadata": {"name": "n1", "creationTimestamp": ts(86400 * 3),
                     "labels": {"node-role.kubernetes.io/control-plane": "", "node-role.kubernetes.io/": "x",
                                "kubernetes.io/role": "worker"}},
        "spec": {"unschedulable": true},
        "status": {
            "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True"}],
            "addresses": [{"type": "InternalIP", "address": "192.168.1.2"}, {"type": "Hostname", "address": "n1"}],
            "nodeInfo": {"kubeletVersion": "v1.32.0", "osImage": "Debian", "kernelVersion": "6.1",
                         "containerRuntimeVersion": "containerd://1.7"}
        }
    });
    let t = table("v1", "Node", &[node], IncludeObject::None, NOW);
    assert_eq!(
        col_names(&t)
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>(),
        [
            "Name",
            "Status",
            "Roles",
            "Age",
            "Version",
            "Internal-IP",
            "External-IP",
            "OS-Image",
            "Kernel-Version",
            "Container-Runtime"
        ]
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "n1",
            "Ready,SchedulingDisabled",
            "control-plane,worker",
            "3d",
            "v1.32.0",
            "192.168.1.2",
            "<none>",
            "Debian",
            "6.1",
            "containerd://1.7"
        ])
    );
    let cells = one(
        "v1",
        "Node",
        json!({"metadata": {"name": "n"},
            "status": {"conditions": [{"type": "Ready", "status": "Unknown"}]}}),
    );
    assert_eq!(
        cells,
        json!([
            "n",
            "NotReady",
            "<none>",
            "<unknown>",
            "",
            "<none>",
            "<none>",
            "<unknown>",
            "<unknown>",
            "<unknown>"
        ])
    );
    assert_eq!(one("v1", "Node", json!({}))[1], "Unknown");
}

#[test]
fn service_rows() {
    let svc = json!({"metadata": {"name": "kubernetes", "creationTimestamp": ts(600)},
            "spec": {"type": "ClusterIP", "clusterIP": "10.96.0.1", "clusterIPs": ["10.96.0.1"],
                     "ports": [{"port": 443, "protocol": "TCP", "targetPort": 6443}],
                     "selector": {"b": "2", "a": "1"}}});
    assert_eq!(
        one("v1", "Service", svc),
        json!([
            "kubernetes",
            "ClusterIP",
            "10.96.0.1",
            "<none>",
            "443/TCP",
            "10m",
            "a=1,b=2"
        ])
    );
    let np = json!({"metadata": {"name": "np"},
            "spec": {"type": "NodePort", "clusterIPs": ["10.96.0.9"], "externalIPs": ["1.2.3.4"],
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"}, {"port": 53, "protocol": "UDP"}]}});
    let cells = one("v1", "Service", np);
    assert_eq!(cells[3], "1.2.3.4");
    assert_eq!(cells[4], "80:30080/TCP,53/UDP");
    assert_eq!(cells[6], "<none>");
    let lb = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer", "clusterIP": "None"},
            "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "a.example.com"}, {"ip": "1.1.1.1"}]}}});
    let cells = one("v1", "Service", lb);
    assert_eq!(cells[2], "None");
    assert_eq!(cells[3], "1.1.1.1,5.6.7.8,a.example.com");
    assert_eq!(cells[4], "<none>");
    let pending = json!({"metadata": {"name": "lb"}, "spec": {"type": "LoadBalancer"}});
    assert_eq!(one("v1", "Service", pending)[3], "<pending>");
    let ext = json!({"metadata": {"name": "e"}, "spec": {"type": "ExternalName", "externalName": "db.example.com"}});
    let cells = one("v1", "Service", ext);
    assert_eq!(cells[2], "<none>");
    assert_eq!(cells[3], "db.example.com");
}

#[test]
fn endpoints_rows() {
    let ep = json!({"metadata": {"name": "e"}, "subsets": [
        {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]}
    ]});
    assert_eq!(
        one("v1", "Endpoints", ep)[1],
        "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 1 more..."
    );
    let ep = json!({"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 80}]}]});
    assert_eq!(one("v1", "Endpoints", ep)[1], "[fd00::1]:80");
    let ep = json!({"metadata": {"name": "e"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}]}]});
    assert_eq!(one("v1", "Endpoints", ep)[1], "10.0.0.1");
    assert_eq!(
        one("v1", "Endpoints", json!({"metadata": {"name": "e"}}))[1],
        "<none>"
    );
}

#[test]
fn configmap_secret_lease_rows() {
    let cm = json!({"metadata": {"name": "c", "creationTimestamp": ts(5)},
            "data": {"a": "1", "b": "2"}, "binaryData": {"c": "AA=="}});
    assert_eq!(one("v1", "ConfigMap", cm), json!(["c", 3, "5s"]));
    let s = json!({"metadata": {"name": "s", "creationTimestamp": ts(123)}, "type": "Opaque", "data": {"k": "dg=="}});
    let t = table("v1", "Secret", &[s], IncludeObject::None, NOW);
    assert_eq!(
        col_names(&t)
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>(),
        ["Name", "Type", "Data", "Age"]
    );
    assert_eq!(t["rows"][0]["cells"], json!(["s", "Opaque", 1, "2m3s"]));
    let l = json!({"metadata": {"name": "l", "creationTimestamp": ts(86400 * 10)}, "spec": {"holderIdentity": "me"}});
    assert_eq!(
        one("coordination.k8s.io/v1", "Lease", l),
        json!(["l", "me", "10d"])
    );
    assert_eq!(
        one(
            "coordination.k8s.io/v1",
            "Lease",
            json!({"metadata": {"name": "l"}})
        )[1],
        ""
    );
}

#[test]
fn event_rows() {
    let ev = json!({"metadata": {"name": "p.123", "namespace": "default"},
            "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{a}"},
            "reason": "Pulled", "message": "  Pulled image  \n", "type": "Normal",
            "source": {"component": "kubelet", "host": "node1"},
            "firstTimestamp": ts(600), "lastTimestamp": ts(30), "count": 3});
    let t = table("v1", "Event", &[ev], IncludeObject::None, NOW);
    assert_eq!(
        col_names(&t),
        vec![
            ("Last Seen".into(), 0),
            ("Type".into(), 0),
            ("Reason".into(), 0),
            ("Object".into(), 0),
            ("Subobject".into(), 1),
            ("Source".into(), 1),
            ("Message".into(), 0),
            ("First Seen".into(), 1),
            ("Count".into(), 1),
            ("Name".into(), 1),
        ]
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "30s",
            "Normal",
            "Pulled",
            "pod/p",
            "spec.containers{a}",
            "kubelet, node1",
            "Pulled image",
            "10m",
            3,
            "p.123"
        ])
    );
    // New-style event: eventTime, series, reportingController.
    let ev = json!({"metadata": {"name": "e"}, "involvedObject": {"kind": "Node"},
            "eventTime": "2023-11-14T22:12:20.000000Z", "reportingComponent": "sched",
            "reportingInstance": "sched-1",
            "series": {"count": 4, "lastObservedTime": "2023-11-14T22:13:10.500000Z"}});
    let cells = one("v1", "Event", ev);
    assert_eq!(cells[0], "10s");
    assert_eq!(cells[3], "node");
    assert_eq!(cells[5], "sched, sched-1");
    assert_eq!(cells[7], "60s");
    assert_eq!(cells[8], 4);
    let cells = one("v1", "Event", json!({"metadata": {"name": "e"}}));
    assert_eq!(cells[0], "<unknown>");
    assert_eq!(cells[8], 1);

    // events.k8s.io/v1 field names.
    let ev = json!({"metadata": {"name": "e2"}, "regarding": {"kind": "Pod", "name": "p"},
            "note": "hello", "reason": "Scheduled", "type": "Normal",
            "reportingController": "default-scheduler", "eventTime": "2023-11-14T22:13:00.000000Z",
            "deprecatedCount": 2});
    assert_eq!(
        one("events.k8s.io/v1", "Event", ev),
        json!([
            "20s",
            "Normal",
            "Scheduled",
            "pod/p",
            "",
            "default-scheduler",
            "hello",
            "20s",
            2,
            "e2"
        ])
    );
}

#[test]
fn deployment_and_replicaset_rows() {
    let d = json!({"metadata": {"name": "web", "creationTimestamp": ts(7200)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"}, {"name": "side", "image": "busybox"}]}}},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
    let t = table("apps/v1", "Deployment", &[d], IncludeObject::None, NOW);
    assert_eq!(
        col_names(&t)
            .iter()
            .map(|c| c.0.as_str())
            .collect::<Vec<_>>(),
        [
            "Name",
            "Ready",
            "Up-to-date",
            "Available",
            "Age",
            "Containers",
            "Images",
            "Selector"
        ]
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "web",
            "2/3",
            3,
            2,
            "120m",
            "nginx,side",
            "nginx:1,busybox",
            "app=web"
        ])
    );
    let cells = one(
        "apps/v1",
        "Deployment",
        json!({"metadata": {"name": "d"}, "spec": {"replicas": 0}}),
    );
    assert_eq!(cells[1], "0/0");
    assert_eq!(cells[7], "");
    let bad = json!({"metadata": {"name": "d"}, "spec": {"selector": {"matchExpressions": [{"key": "a", "operator": "Nope"}]}}});
    assert_eq!(one("apps/v1", "Deployment", bad)[7], "<invalid>");

    let rs = json!({"metadata": {"name": "web-abc", "creationTimestamp": ts(60)},
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web", "pod-template-hash": "abc"}},
                     "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1"}]}}},
            "status": {"replicas": 3, "readyReplicas": 1}});
    let t = table("apps/v1", "ReplicaSet", &[rs], IncludeObject::None, NOW);
    assert_eq!(
        col_names(&t)
            .iter()
            .map(|c| (c.0.as_str(), c.1))
            .collect::<Vec<_>>(),
        [
            ("Name", 0),
            ("Desired", 0),
            ("Current", 0),
            ("Ready", 0),
            ("Age", 0),
            ("Containers", 1),
            ("Images", 1),
            ("Selector", 1)
        ]
    );
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "web-abc",
            3,
            3,
            1,
            "60s",
            "nginx",
            "nginx:1",
            "app=web,pod-template-hash=abc"
        ])
    );
    assert_eq!(one("apps/v1", "ReplicaSet", json!({}))[7], "<none>");
}

#[test]
fn poddisruptionbudget_rows() {
    let p = json!({"metadata": {"name": "web", "creationTimestamp": ts(30)},
        "spec": {"minAvailable": 2}, "status": {"disruptionsAllowed": 1}});
    let t = table(
        "policy/v1",
        "PodDisruptionBudget",
        &[p],
        IncludeObject::None,
        NOW,
    );
    assert_eq!(
        col_names(&t),
        [
            ("Name".to_string(), 0),
            ("Min Available".to_string(), 0),
            ("Max Unavailable".to_string(), 0),
            ("Allowed Disruptions".to_string(), 0),
            ("Age".to_string(), 0)
        ]
    );
    assert_eq!(t["rows"][0]["cells"], json!(["web", "2", "N/A", 1, "30s"]));
    let q = json!({"metadata": {"name": "q"}, "spec": {"maxUnavailable": "25%"}});
    assert_eq!(
        one("policy/v1", "PodDisruptionBudget", q),
        json!(["q", "N/A", "25%", 0, "<unknown>"])
    );
}
