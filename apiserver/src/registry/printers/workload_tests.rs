//! Tables of the workload controllers' kinds against kube 1.32's printers.

use serde_json::{json, Value};

use super::{table, IncludeObject};
use crate::machinery::time::format_rfc3339;

const NOW: i64 = 1_700_000_000;

fn ts(secs_ago: i64) -> String {
    format_rfc3339(NOW - secs_ago)
}

fn rendered(api_version: &str, kind: &str, obj: Value) -> (Vec<String>, Value) {
    let t = table(api_version, kind, &[obj], IncludeObject::None, NOW);
    let names = t["columnDefinitions"]
        .as_array()
        .expect("columns")
        .iter()
        .map(|c| {
            let wide = if c["priority"] == 1 { " (wide)" } else { "" };
            format!("{}{wide}", c["name"].as_str().unwrap_or_default())
        })
        .collect();
    (names, t["rows"][0]["cells"].clone())
}

#[test]
fn jobs() {
    let job = json!({"metadata": {"name": "pi", "creationTimestamp": ts(300)},
        "spec": {"completions": 3, "parallelism": 1,
            "selector": {"matchLabels": {"batch.kubernetes.io/controller-uid": "u"}},
            "template": {"spec": {"containers": [{"name": "pi", "image": "perl"}]}}},
        "status": {"succeeded": 1, "startTime": ts(200)}});
    let (cols, cells) = rendered("batch/v1", "Job", job.clone());
    assert_eq!(
        cols,
        vec![
            "Name",
            "Status",
            "Completions",
            "Duration",
            "Age",
            "Containers (wide)",
            "Images (wide)",
            "Selector (wide)"
        ]
    );
    assert_eq!(
        cells,
        json!([
            "pi",
            "Running",
            "1/3",
            "3m20s",
            "5m",
            "pi",
            "perl",
            "batch.kubernetes.io/controller-uid=u"
        ])
    );
    let mut done = job.clone();
    done["status"] = json!({"succeeded": 3, "startTime": ts(200), "completionTime": ts(170),
        "conditions": [{"type": "Complete", "status": "True"}]});
    let (_, cells) = rendered("batch/v1", "Job", done);
    assert_eq!(cells[1], "Complete");
    assert_eq!(cells[2], "3/3");
    assert_eq!(cells[3], "30s");
    let mut open = job.clone();
    open["spec"] = json!({"parallelism": 4});
    open["status"] = json!({"conditions": [{"type": "Suspended", "status": "True"}]});
    let (_, cells) = rendered("batch/v1", "Job", open);
    assert_eq!(cells[1], "Suspended");
    assert_eq!(cells[2], "0/1 of 4");
    assert_eq!(cells[3], "");
    assert_eq!(cells[7], "<none>");
}

#[test]
fn cronjobs() {
    let cj = json!({"metadata": {"name": "hello", "creationTimestamp": ts(600)},
        "spec": {"schedule": "*/1 * * * *", "suspend": false,
            "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "busybox"}]}}}}},
        "status": {"active": [{"name": "hello-1"}], "lastScheduleTime": ts(30)}});
    let (cols, cells) = rendered("batch/v1", "CronJob", cj);
    assert_eq!(
        cols,
        vec![
            "Name",
            "Schedule",
            "Timezone",
            "Suspend",
            "Active",
            "Last Schedule",
            "Age",
            "Containers (wide)",
            "Images (wide)",
            "Selector (wide)"
        ]
    );
    assert_eq!(
        cells,
        json!([
            "hello",
            "*/1 * * * *",
            "<none>",
            "False",
            1,
            "30s",
            "10m",
            "c",
            "busybox",
            "<none>"
        ])
    );
    let bare =
        json!({"metadata": {"name": "x"}, "spec": {"schedule": "@hourly", "timeZone": "Etc/UTC"}});
    let (_, cells) = rendered("batch/v1", "CronJob", bare);
    assert_eq!(cells[2], "Etc/UTC");
    assert_eq!(cells[3], "<unset>");
    assert_eq!(cells[5], "<none>");
}

#[test]
fn daemonsets_statefulsets_and_revisions() {
    let ds = json!({"metadata": {"name": "fluentd", "creationTimestamp": ts(60)},
        "spec": {"selector": {"matchLabels": {"app": "f"}},
            "template": {"spec": {"nodeSelector": {"disk": "ssd"}, "containers": [{"name": "f", "image": "fluentd"}]}}},
        "status": {"desiredNumberScheduled": 3, "currentNumberScheduled": 2, "numberReady": 1,
            "updatedNumberScheduled": 2, "numberAvailable": 1}});
    let (cols, cells) = rendered("apps/v1", "DaemonSet", ds);
    assert_eq!(
        cols,
        vec![
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Up-to-date",
            "Available",
            "Node Selector",
            "Age",
            "Containers (wide)",
            "Images (wide)",
            "Selector (wide)"
        ]
    );
    assert_eq!(
        cells,
        json!(["fluentd", 3, 2, 1, 2, 1, "disk=ssd", "60s", "f", "fluentd", "app=f"])
    );
    let sts = json!({"metadata": {"name": "web", "creationTimestamp": ts(60)},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"name": "n", "image": "nginx"}]}}},
        "status": {"readyReplicas": 2}});
    let (cols, cells) = rendered("apps/v1", "StatefulSet", sts);
    assert_eq!(
        cols,
        vec!["Name", "Ready", "Age", "Containers (wide)", "Images (wide)"]
    );
    assert_eq!(cells, json!(["web", "2/3", "60s", "n", "nginx"]));
    let cr = json!({"metadata": {"name": "web-5d4", "creationTimestamp": ts(60),
        "ownerReferences": [{"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "web", "uid": "u", "controller": true}]},
        "revision": 2, "data": {}});
    let (cols, cells) = rendered("apps/v1", "ControllerRevision", cr);
    assert_eq!(cols, vec!["Name", "Controller", "Revision", "Age"]);
    assert_eq!(cells, json!(["web-5d4", "statefulset.apps/web", 2, "60s"]));
    let orphan = json!({"metadata": {"name": "x"}, "revision": 1});
    let (_, cells) = rendered("apps/v1", "ControllerRevision", orphan);
    assert_eq!(cells[1], "<none>");
}

#[test]
fn replication_controllers_service_accounts_and_endpoint_slices() {
    let rc = json!({"metadata": {"name": "nginx", "creationTimestamp": ts(60)},
        "spec": {"replicas": 3, "selector": {"app": "nginx", "tier": "web"},
            "template": {"spec": {"containers": [{"name": "n", "image": "nginx"}]}}},
        "status": {"replicas": 3, "readyReplicas": 1}});
    let (cols, cells) = rendered("v1", "ReplicationController", rc);
    assert_eq!(
        cols,
        vec![
            "Name",
            "Desired",
            "Current",
            "Ready",
            "Age",
            "Containers (wide)",
            "Images (wide)",
            "Selector (wide)"
        ]
    );
    assert_eq!(
        cells,
        json!(["nginx", 3, 3, 1, "60s", "n", "nginx", "app=nginx,tier=web"])
    );

    let sa = json!({"metadata": {"name": "default", "creationTimestamp": ts(60)}});
    let (cols, cells) = rendered("v1", "ServiceAccount", sa);
    assert_eq!(cols, vec!["Name", "Secrets", "Age"]);
    assert_eq!(cells, json!(["default", 0, "60s"]));

    let es = json!({"metadata": {"name": "web-abc", "creationTimestamp": ts(60)},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1", "10.0.0.2"]}, {"addresses": ["10.0.0.3"]}, {"addresses": ["10.0.0.4"]}],
        "ports": [{"port": 80, "name": "http"}, {"name": "named"}, {}]});
    let (cols, cells) = rendered("discovery.k8s.io/v1", "EndpointSlice", es);
    assert_eq!(
        cols,
        vec!["Name", "AddressType", "Ports", "Endpoints", "Age"]
    );
    assert_eq!(
        cells,
        json!([
            "web-abc",
            "IPv4",
            "80,named,*",
            "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more...",
            "60s"
        ])
    );
    let empty = json!({"metadata": {"name": "e"}, "addressType": "FQDN"});
    let (_, cells) = rendered("discovery.k8s.io/v1", "EndpointSlice", empty);
    assert_eq!(cells[2], "<unset>");
    assert_eq!(cells[3], "<unset>");
}
