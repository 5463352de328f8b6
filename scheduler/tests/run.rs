//! The scheduler's I/O loop end to end, against a small in-process fake of the API server
//! (behind `kube::Client::new`): list/watch of nodes and pods with resource versions, the
//! `binding` and `status` subresources, and Events. No sockets.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response, StatusCode};
use kube::client::Body;
use mainstay_component::Leading;
use mainstay_scheduler::{run, SchedulerConfig};
use serde_json::{json, Value};

#[derive(Default)]
struct State {
    rv: u64,
    nodes: BTreeMap<String, Value>,
    pods: BTreeMap<String, Value>,
    /// (resource version, "nodes" | "pods", watch event type, object)
    log: Vec<(u64, &'static str, &'static str, Value)>,
    bindings: Vec<(String, String)>,
    status_patches: Vec<(String, Value)>,
    events: BTreeMap<String, Value>,
    requests: Vec<String>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<State>>);

impl Fake {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.lock().unwrap()
    }

    fn put(&self, resource: &'static str, mut obj: Value, kind: &'static str) {
        let mut s = self.state();
        s.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        let name = obj["metadata"]["name"].as_str().unwrap().to_string();
        let rv = s.rv;
        match resource {
            "nodes" => s.nodes.insert(name, obj.clone()),
            _ => s.pods.insert(name, obj.clone()),
        };
        s.log.push((rv, resource, kind, obj));
    }

    fn delete_pod(&self, name: &str) {
        let mut s = self.state();
        let Some(mut obj) = s.pods.remove(name) else {
            return;
        };
        s.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(s.rv.to_string());
        let rv = s.rv;
        s.log.push((rv, "pods", "DELETED", obj));
    }

    async fn handle(self, req: Request<Body>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let body = req.into_body().collect_bytes().await.unwrap_or_default();
        self.state()
            .requests
            .push(format!("{method} {path}?{query}"));
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method.as_str(), parts.as_slice()) {
            ("GET", ["api", "v1", resource @ ("nodes" | "pods")]) => {
                let resource: &'static str = if *resource == "nodes" {
                    "nodes"
                } else {
                    "pods"
                };
                if query.contains("watch=true") {
                    self.watch(resource, &query).await
                } else {
                    self.list(resource)
                }
            }
            ("POST", ["api", "v1", "namespaces", _ns, "pods", name, "binding"]) => {
                let binding: Value = serde_json::from_slice(&body).unwrap();
                let node = binding["target"]["name"].as_str().unwrap().to_string();
                assert_eq!(binding["target"]["kind"], "Node");
                assert_eq!(binding["metadata"]["name"], *name);
                let Some(mut pod) = self.state().pods.get(*name).cloned() else {
                    return status(404, "NotFound");
                };
                if pod["spec"]["nodeName"].is_string() {
                    return status(409, "Conflict");
                }
                pod["spec"]["nodeName"] = json!(node);
                self.state().bindings.push((name.to_string(), node));
                self.put("pods", pod, "MODIFIED");
                status(201, "Success")
            }
            ("PATCH", ["api", "v1", "namespaces", _ns, "pods", name, "status"]) => {
                let patch: Value = serde_json::from_slice(&body).unwrap();
                let pod = self.state().pods.get(*name).cloned();
                self.state().status_patches.push((name.to_string(), patch));
                match pod {
                    Some(p) => ok(200, &p),
                    None => status(404, "NotFound"),
                }
            }
            ("POST", ["api", "v1", "namespaces", _ns, "events"]) => {
                let mut ev: Value = serde_json::from_slice(&body).unwrap();
                ev["metadata"]["resourceVersion"] = json!("1");
                let name = ev["metadata"]["name"].as_str().unwrap_or("").to_string();
                self.state().events.insert(name, ev.clone());
                ok(201, &ev)
            }
            ("PATCH", ["api", "v1", "namespaces", _ns, "events", name]) => {
                match self.state().events.get(*name).cloned() {
                    Some(ev) => ok(200, &ev),
                    None => status(404, "NotFound"),
                }
            }
            _ => status(404, "NotFound"),
        }
    }

    fn list(&self, resource: &'static str) -> Response<Body> {
        let s = self.state();
        let (kind, items): (&str, Vec<Value>) = match resource {
            "nodes" => ("NodeList", s.nodes.values().cloned().collect()),
            _ => ("PodList", s.pods.values().cloned().collect()),
        };
        ok(
            200,
            &json!({"apiVersion": "v1", "kind": kind,
                    "metadata": {"resourceVersion": s.rv.to_string()}, "items": items}),
        )
    }

    /// Events after the requested version; with none, waits a little and ends the stream (the
    /// watcher then watches again from where it was).
    async fn watch(&self, resource: &'static str, query: &str) -> Response<Body> {
        let from: u64 = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("resourceVersion="))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        for _ in 0..2 {
            let lines: Vec<String> = self
                .state()
                .log
                .iter()
                .filter(|(rv, r, _, _)| *rv > from && *r == resource)
                .map(|(_, _, t, o)| json!({"type": t, "object": o}).to_string())
                .collect();
            if !lines.is_empty() {
                let mut body = lines.join("\n");
                body.push('\n');
                return Response::builder()
                    .status(200)
                    .body(Body::from(body.into_bytes()))
                    .unwrap();
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Response::builder().status(200).body(Body::empty()).unwrap()
    }
}

fn ok(code: u16, v: &Value) -> Response<Body> {
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap())
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(v).unwrap()))
        .unwrap()
}

fn status(code: u16, reason: &str) -> Response<Body> {
    let status = if code < 300 { "Success" } else { "Failure" };
    ok(
        code,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": status,
                "reason": reason, "message": reason, "code": code}),
    )
}

fn node(name: &str, cpu: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Node",
           "metadata": {"name": name, "uid": format!("uid-{name}"),
                        "labels": {"kubernetes.io/hostname": name}},
           "spec": {},
           "status": {"allocatable": {"cpu": cpu, "memory": "8Gi", "pods": "110"}}})
}

fn pod(name: &str, cpu: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
           "spec": {"containers": [{"name": "c", "image": "x",
                                    "resources": {"requests": {"cpu": cpu}}}]},
           "status": {"phase": "Pending"}})
}

async fn wait_for(fake: &Fake, what: &str, f: impl Fn(&State) -> bool) {
    for _ in 0..500 {
        if f(&fake.state()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = fake.state();
    panic!(
        "timed out waiting for {what}: bindings {:?}, status patches {:?}, events {:?}",
        s.bindings,
        s.status_patches,
        s.events
            .values()
            .map(|e| (&e["reason"], &e["message"]))
            .collect::<Vec<_>>()
    );
}

fn events_with(s: &State, reason: &str) -> Vec<(String, String)> {
    s.events
        .values()
        .filter(|e| e["reason"] == reason)
        .map(|e| {
            (
                e["involvedObject"]["name"]
                    .as_str()
                    .unwrap_or("")
                    .to_string(),
                e["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binds_what_fits_reports_what_does_not_and_retries_when_room_frees() {
    let fake = Fake::default();
    fake.put("nodes", node("big", "4"), "ADDED");
    fake.put("nodes", node("small", "1"), "ADDED");
    // a and b fit "big" only one at a time; c fits nowhere.
    fake.put("pods", pod("a", "3"), "ADDED");
    fake.put("pods", pod("b", "3"), "ADDED");
    fake.put("pods", pod("c", "8"), "ADDED");
    let leading = Leading::always();
    let task = tokio::spawn(run(
        client_for(&fake),
        SchedulerConfig::default(),
        leading.clone(),
    ));

    wait_for(&fake, "one binding and two failures", |s| {
        s.bindings.len() == 1 && s.status_patches.len() >= 2
    })
    .await;
    let (first, node) = fake.state().bindings[0].clone();
    assert_eq!(node, "big");
    assert!(first == "a" || first == "b", "{first}");
    let other = if first == "a" { "b" } else { "a" };
    {
        let s = fake.state();
        let msg = "0/2 nodes are available: 2 Insufficient cpu.";
        for (name, patch) in &s.status_patches {
            assert!(name == other || name == "c", "{name}");
            let cond = &patch["status"]["conditions"][0];
            assert_eq!(cond["type"], "PodScheduled");
            assert_eq!(cond["status"], "False");
            assert_eq!(cond["reason"], "Unschedulable");
            assert_eq!(cond["message"], msg);
        }
    }
    wait_for(&fake, "the Scheduled event", |s| {
        events_with(s, "Scheduled")
            == [(
                first.clone(),
                format!("Successfully assigned default/{first} to big"),
            )]
    })
    .await;
    wait_for(&fake, "FailedScheduling events", |s| {
        let mut got = events_with(s, "FailedScheduling");
        got.sort();
        got.dedup();
        got.len() == 2
            && got
                .iter()
                .all(|(_, m)| m == "0/2 nodes are available: 2 Insufficient cpu.")
    })
    .await;

    // The bound pod goes away: the pod waiting for cpu is retried (after its 1 s backoff) and
    // bound; "c" still fits nowhere.
    fake.delete_pod(&first);
    wait_for(&fake, "the second binding", |s| s.bindings.len() == 2).await;
    assert_eq!(
        fake.state().bindings[1],
        (other.to_string(), "big".to_string())
    );
    assert!(fake.state().bindings.iter().all(|(p, _)| p != "c"));

    leading.end();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run returns when leadership ends")
        .unwrap()
        .unwrap();
}

fn client_for(fake: &Fake) -> kube::Client {
    let service = tower::service_fn({
        let fake = fake.clone();
        move |req| {
            let fake = fake.clone();
            async move { Ok::<_, Infallible>(fake.handle(req).await) }
        }
    });
    kube::Client::new(service, "default")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaves_other_schedulers_pods_alone() {
    let fake = Fake::default();
    fake.put("nodes", node("n", "4"), "ADDED");
    let mut theirs = pod("theirs", "1");
    theirs["spec"]["schedulerName"] = json!("other-scheduler");
    fake.put("pods", theirs, "ADDED");
    fake.put("pods", pod("mine", "1"), "ADDED");
    let leading = Leading::always();
    let task = tokio::spawn(run(
        client_for(&fake),
        SchedulerConfig::default(),
        leading.clone(),
    ));
    wait_for(&fake, "our pod bound", |s| !s.bindings.is_empty()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        fake.state().bindings,
        [("mine".to_string(), "n".to_string())]
    );
    leading.end();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("run returns when leadership ends")
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_nothing_without_leadership() {
    let fake = Fake::default();
    fake.put("nodes", node("n", "4"), "ADDED");
    fake.put("pods", pod("p", "1"), "ADDED");
    // A term that is already over.
    let leading = Leading::until(tokio::time::Instant::now());
    tokio::time::timeout(
        Duration::from_secs(5),
        run(client_for(&fake), SchedulerConfig::default(), leading),
    )
    .await
    .expect("run returns at once")
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let s = fake.state();
    assert!(s.bindings.is_empty() && s.status_patches.is_empty() && s.events.is_empty());
}
