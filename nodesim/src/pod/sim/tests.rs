use std::net::Ipv4Addr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::*;
use crate::ipam::{Cidr, Ipam};
use crate::pod::observe::observe;

const HOST: Ipv4Addr = Ipv4Addr::new(172, 16, 0, 10);
const SEC: Duration = Duration::from_secs(1);

fn cfg() -> SimConfig {
    SimConfig {
        start_delay: Duration::from_millis(100),
        crash_loop_backoff: Duration::from_secs(10),
        max_pods: 110,
        pod_events: false,
    }
}

struct T {
    node: NodePods,
    t0: Instant,
}

impl T {
    fn new(cfg: SimConfig) -> T {
        Self::with_cidr(cfg, "10.128.0.0/24")
    }

    fn with_cidr(cfg: SimConfig, cidr: &str) -> T {
        let t0 = Instant::now();
        let clock = Clock {
            instant: t0,
            wall: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
        };
        T {
            node: NodePods::new(cfg, HOST, Ipam::new(Cidr::parse(cidr).unwrap()), clock),
            t0,
        }
    }

    fn at(&self, d: Duration) -> Instant {
        self.t0 + d
    }

    fn see(&mut self, pod: Value, at: Duration) {
        let pod = serde_json::from_value(pod).unwrap();
        let (_, o) = observe(&pod).unwrap();
        self.node.observe(o, self.at(at));
    }

    /// Advances to `at`, then takes the next write and reports it done.
    fn write(&mut self, at: Duration) -> Option<Write> {
        self.write_with(at, WriteOutcome::Done)
    }

    fn write_with(&mut self, at: Duration, outcome: WriteOutcome) -> Option<Write> {
        let now = self.at(at);
        self.node.advance(now);
        let w = self.node.next_write(now)?;
        self.node.write_done(&w, outcome, now);
        Some(w)
    }

    /// The status of a status write.
    fn status(&mut self, at: Duration) -> Value {
        match self.write(at).expect("a write is due").action {
            WriteAction::PatchStatus(v) => v["status"].clone(),
            WriteAction::Delete => panic!("expected a status patch, got a delete"),
        }
    }
}

fn pod(name: &str) -> Value {
    json!({
        "metadata": {"name": name, "namespace": "ns", "uid": format!("uid-{name}")},
        "spec": {"nodeName": "n", "containers": [{"name": "c", "image": "nginx:1.27"}]},
        "status": {"phase": "Pending"}
    })
}

fn job_pod(name: &str, policy: &str, run: &str, code: &str) -> Value {
    let mut p = pod(name);
    p["metadata"]["ownerReferences"] =
        json!([{"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "j"}]);
    p["metadata"]["annotations"] =
        json!({"mainstay.io/run-seconds": run, "mainstay.io/exit-code": code});
    p["spec"]["restartPolicy"] = json!(policy);
    p
}

fn deleting(mut p: Value, grace: i64) -> Value {
    p["metadata"]["deletionTimestamp"] = json!("2023-11-14T22:13:20Z");
    p["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
    p
}

fn cond<'a>(status: &'a Value, t: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t)
        .unwrap_or_else(|| panic!("no {t} condition in {status}"))
}

fn wall(secs_after_t0: f64) -> String {
    let t = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap()
        + chrono::Duration::milliseconds((secs_after_t0 * 1000.0) as i64);
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[test]
fn a_pod_goes_through_container_creating_to_running_and_ready() {
    let mut t = T::new(cfg());
    t.see(pod("a"), Duration::ZERO);
    let s = t.status(Duration::ZERO);
    assert_eq!(s["phase"], "Pending");
    assert_eq!(s["hostIP"], "172.16.0.10");
    assert_eq!(s["hostIPs"][0]["ip"], "172.16.0.10");
    assert!(s.get("podIP").is_none());
    assert_eq!(s["startTime"], wall(0.0));
    assert_eq!(s["qosClass"], "BestEffort");
    let c = &s["containerStatuses"][0];
    assert_eq!(c["state"]["waiting"]["reason"], "ContainerCreating");
    assert_eq!(c["ready"], false);
    assert_eq!(c["started"], false);
    assert_eq!(cond(&s, "PodScheduled")["status"], "True");
    assert_eq!(cond(&s, "Initialized")["status"], "True");
    assert_eq!(cond(&s, "PodReadyToStartContainers")["status"], "False");
    assert_eq!(cond(&s, "ContainersReady")["status"], "False");
    assert_eq!(cond(&s, "ContainersReady")["reason"], "ContainersNotReady");
    assert_eq!(
        cond(&s, "Ready")["message"],
        "containers with unready status: [c]"
    );
    // Nothing more until the start delay has passed.
    assert!(t.write(Duration::from_millis(99)).is_none());
    assert_eq!(
        t.node.next_wakeup(t.at(Duration::from_millis(99))),
        Some(t.at(Duration::from_millis(100)))
    );

    let s = t.status(Duration::from_millis(100));
    assert_eq!(s["phase"], "Running");
    assert_eq!(s["podIP"], "10.128.0.2");
    assert_eq!(s["podIPs"][0]["ip"], "10.128.0.2");
    let c = &s["containerStatuses"][0];
    assert_eq!(c["name"], "c");
    assert_eq!(c["image"], "nginx:1.27");
    assert!(c["imageID"].as_str().unwrap().starts_with("nginx@sha256:"));
    assert!(c["containerID"]
        .as_str()
        .unwrap()
        .starts_with("mainstay://"));
    assert_eq!(c["started"], true);
    assert_eq!(c["ready"], true);
    assert_eq!(c["restartCount"], 0);
    assert!(c["state"]["running"]["startedAt"].is_string());
    for t in [
        "PodReadyToStartContainers",
        "Initialized",
        "ContainersReady",
        "Ready",
    ] {
        assert_eq!(cond(&s, t)["status"], "True", "{t}");
        // The False state's reason and message are removed by the merge, not kept.
        let c = cond(&s, t).as_object().unwrap();
        assert_eq!(c.get("reason"), Some(&Value::Null), "{t}");
        assert_eq!(c.get("message"), Some(&Value::Null), "{t}");
    }
    // Steady state: no more writes, no timers.
    assert!(t.write(Duration::from_secs(100)).is_none());
    assert_eq!(t.node.next_wakeup(t.at(Duration::from_secs(100))), None);
    assert_eq!(t.node.ips_in_use(), 1);
}

#[test]
fn changes_before_a_write_are_folded_into_it() {
    let mut t = T::new(SimConfig {
        start_delay: Duration::ZERO,
        ..cfg()
    });
    t.see(pod("a"), Duration::ZERO);
    // The status is built when sent: already Running, one write instead of two.
    let s = t.status(Duration::ZERO);
    assert_eq!(s["phase"], "Running");
    assert!(t.write(Duration::from_secs(1)).is_none());
}

#[test]
fn readiness_waits_for_the_probe_initial_delay() {
    let mut t = T::new(cfg());
    let mut p = pod("a");
    p["spec"]["containers"] = json!([
        {"name": "slow", "image": "x", "readinessProbe": {"initialDelaySeconds": 5, "tcpSocket": {"port": 1}}},
        {"name": "fast", "image": "y"}]);
    t.see(p, Duration::ZERO);
    t.status(Duration::ZERO);
    let s = t.status(Duration::from_millis(100));
    assert_eq!(s["containerStatuses"][0]["ready"], false);
    assert_eq!(s["containerStatuses"][1]["ready"], true);
    assert_eq!(cond(&s, "Ready")["status"], "False");
    assert_eq!(
        cond(&s, "Ready")["message"],
        "containers with unready status: [slow]"
    );
    let ready_at = Duration::from_millis(5100);
    assert_eq!(
        t.node.next_wakeup(t.at(Duration::from_millis(100))),
        Some(t.at(ready_at))
    );
    assert!(t.write(Duration::from_millis(5099)).is_none());
    let s = t.status(ready_at);
    assert_eq!(s["containerStatuses"][0]["ready"], true);
    assert_eq!(cond(&s, "Ready")["status"], "True");
    assert_eq!(cond(&s, "Ready")["lastTransitionTime"], wall(5.1));
}

#[test]
fn job_pods_end_succeeded_or_failed_under_restart_policy_never() {
    let mut t = T::new(cfg());
    t.see(job_pod("ok", "Never", "1", "0"), Duration::ZERO);
    t.see(job_pod("bad", "Never", "2", "3"), Duration::ZERO);
    t.write(Duration::ZERO);
    t.write(Duration::ZERO);
    t.write(Duration::from_millis(100));
    t.write(Duration::from_millis(100));
    assert_eq!(t.node.ips_in_use(), 2);

    let s = t.status(Duration::from_millis(1100));
    assert_eq!(s["phase"], "Succeeded");
    let term = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 0);
    assert_eq!(term["reason"], "Completed");
    assert_eq!(s["containerStatuses"][0]["ready"], false);
    assert_eq!(cond(&s, "Ready")["reason"], "PodCompleted");
    assert_eq!(cond(&s, "PodReadyToStartContainers")["status"], "False");
    // The pod IP stays in the status, but the address is free again.
    assert!(s["podIP"].as_str().unwrap().starts_with("10.128.0."));
    assert_eq!(t.node.ips_in_use(), 1);

    let s = t.status(Duration::from_millis(2100));
    assert_eq!(s["phase"], "Failed");
    let term = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 3);
    assert_eq!(term["reason"], "Error");
    assert_eq!(t.node.ips_in_use(), 0);
    // Finished pods stay until deleted, and nothing more is written.
    assert!(t.write(Duration::from_secs(60)).is_none());
    assert_eq!(t.node.len(), 2);
}

#[test]
fn on_failure_restarts_with_crash_loop_backoff() {
    let mut t = T::new(cfg());
    t.see(job_pod("a", "OnFailure", "1", "3"), Duration::ZERO);
    t.write(Duration::ZERO);
    t.write(Duration::from_millis(100));
    // Exits at 1.1 s: waiting in CrashLoopBackOff for 10 s, still Running.
    let s = t.status(Duration::from_millis(1100));
    assert_eq!(s["phase"], "Running");
    let c = &s["containerStatuses"][0];
    assert_eq!(c["state"]["waiting"]["reason"], "CrashLoopBackOff");
    assert_eq!(
        c["state"]["waiting"]["message"],
        "back-off 10s restarting failed container=c pod=a_ns(uid-a)"
    );
    assert_eq!(c["lastState"]["terminated"]["exitCode"], 3);
    assert_eq!(c["restartCount"], 0);
    assert_eq!(cond(&s, "Ready")["status"], "False");
    // Restarted at 11.1 s.
    assert!(t.write(Duration::from_millis(11_099)).is_none());
    let s = t.status(Duration::from_millis(11_100));
    let c = &s["containerStatuses"][0];
    assert_eq!(c["restartCount"], 1);
    assert!(c["state"]["running"].is_object());
    assert_ne!(
        c["containerID"],
        c["lastState"]["terminated"]["containerID"]
    );
    // Exits again at 12.1 s; the second backoff is 20 s.
    let s = t.status(Duration::from_millis(12_100));
    assert_eq!(
        s["containerStatuses"][0]["state"]["waiting"]["message"],
        "back-off 20s restarting failed container=c pod=a_ns(uid-a)"
    );
    // OnFailure with exit code 0 completes instead.
    let mut t = T::new(cfg());
    t.see(job_pod("b", "OnFailure", "1", "0"), Duration::ZERO);
    t.write(Duration::ZERO);
    t.write(Duration::from_millis(100));
    assert_eq!(t.status(Duration::from_millis(1100))["phase"], "Succeeded");
}

#[test]
fn restart_policy_always_restarts_even_after_exit_zero() {
    let mut t = T::new(cfg());
    let mut p = pod("a");
    p["metadata"]["annotations"] = json!({"mainstay.io/run-seconds": "1"});
    t.see(p, Duration::ZERO);
    t.write(Duration::ZERO);
    t.write(Duration::from_millis(100));
    let s = t.status(Duration::from_millis(1100));
    assert_eq!(s["phase"], "Running");
    assert_eq!(
        s["containerStatuses"][0]["lastState"]["terminated"]["reason"],
        "Completed"
    );
    assert_eq!(
        s["containerStatuses"][0]["state"]["waiting"]["reason"],
        "CrashLoopBackOff"
    );
}

#[test]
fn deletion_stops_containers_writes_the_final_status_then_deletes() {
    let mut t = T::new(cfg());
    t.see(pod("a"), Duration::ZERO);
    t.write(Duration::ZERO);
    t.write(Duration::from_millis(100));
    t.see(deleting(pod("a"), 30), Duration::from_secs(5));
    let s = t.status(Duration::from_secs(5));
    assert_eq!(s["phase"], "Succeeded");
    let term = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["exitCode"], 0);
    assert_eq!(term["finishedAt"], wall(5.0));
    let w = t.write(Duration::from_secs(5)).unwrap();
    assert_eq!(w.action, WriteAction::Delete);
    assert_eq!(&*w.key.uid, "uid-a");
    // Deleted once: the watch's later events do not cause another delete.
    t.see(deleting(pod("a"), 30), Duration::from_secs(6));
    assert!(t.write(Duration::from_secs(6)).is_none());
    assert_eq!(t.node.ips_in_use(), 0);
    t.node.forget("uid-a");
    assert!(t.node.is_empty());
}

#[test]
fn slow_termination_is_capped_by_the_grace_period() {
    // Stops in 5 s within a 30 s grace period: exit 0.
    let mut t = T::new(cfg());
    let mut p = pod("a");
    p["metadata"]["annotations"] = json!({"mainstay.io/termination-seconds": "5"});
    t.see(p.clone(), Duration::ZERO);
    t.write(Duration::ZERO);
    t.write(Duration::from_millis(100));
    t.see(deleting(p.clone(), 30), Duration::from_secs(1));
    // Still running (and still ready) while it stops.
    assert!(t.write(Duration::from_millis(5999)).is_none());
    let s = t.status(Duration::from_secs(6));
    assert_eq!(s["phase"], "Succeeded");
    assert_eq!(
        t.write(Duration::from_secs(6)).unwrap().action,
        WriteAction::Delete
    );

    // Needs 60 s with a 30 s grace period: killed at 30 s, exit 137, Failed.
    let mut t = T::new(cfg());
    p["metadata"]["annotations"] = json!({"mainstay.io/termination-seconds": "60"});
    t.see(p.clone(), Duration::ZERO);
    t.write(Duration::ZERO);
    t.write(Duration::from_millis(100));
    t.see(deleting(p.clone(), 30), Duration::from_secs(1));
    assert!(t.write(Duration::from_secs(30)).is_none());
    let s = t.status(Duration::from_secs(31));
    assert_eq!(s["phase"], "Failed");
    assert_eq!(
        s["containerStatuses"][0]["state"]["terminated"]["exitCode"],
        137
    );
    // A forced deletion (grace 0) cuts a stop short.
    let mut t = T::new(cfg());
    t.see(p.clone(), Duration::ZERO);
    t.write(Duration::ZERO);
    t.write(Duration::from_millis(100));
    t.see(deleting(p.clone(), 30), Duration::from_secs(1));
    t.see(deleting(p, 0), Duration::from_secs(2));
    assert_eq!(t.status(Duration::from_secs(2))["phase"], "Failed");
}

#[test]
fn a_pod_deleted_before_it_started_fails_with_unknown_containers() {
    let mut t = T::new(cfg());
    t.see(pod("a"), Duration::ZERO);
    t.see(deleting(pod("a"), 30), Duration::from_millis(50));
    let s = t.status(Duration::from_millis(50));
    assert_eq!(s["phase"], "Failed");
    let term = &s["containerStatuses"][0]["state"]["terminated"];
    assert_eq!(term["reason"], "ContainerStatusUnknown");
    assert_eq!(term["exitCode"], 137);
    assert_eq!(
        t.write(Duration::from_millis(50)).unwrap().action,
        WriteAction::Delete
    );
    assert_eq!(t.node.ips_in_use(), 0);
    // A pod first seen while being deleted goes the same way.
    let mut t = T::new(cfg());
    t.see(deleting(pod("b"), 30), Duration::ZERO);
    assert_eq!(t.status(Duration::ZERO)["phase"], "Failed");
    assert_eq!(t.write(Duration::ZERO).unwrap().action, WriteAction::Delete);
}

#[test]
fn admission_refuses_pods_beyond_max_pods() {
    let mut t = T::new(SimConfig {
        max_pods: 2,
        ..cfg()
    });
    for n in ["a", "b", "c"] {
        t.see(pod(n), Duration::ZERO);
    }
    let mut refused = None;
    while let Some(w) = t.write(Duration::ZERO) {
        if let WriteAction::PatchStatus(v) = w.action {
            if v["status"]["phase"] == "Failed" {
                refused = Some(v["status"].clone());
            }
        }
    }
    let s = refused.expect("the third pod is refused");
    assert_eq!(s["reason"], "OutOfpods");
    assert_eq!(
        s["message"],
        "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: 2, capacity: 2"
    );
    // Finished pods do not count: after one ends, another fits.
    t.see(deleting(pod("a"), 0), Duration::from_secs(1));
    while t.write(Duration::from_secs(1)).is_some() {}
    t.node.forget("uid-a");
    t.see(pod("d"), Duration::from_secs(2));
    assert_eq!(t.status(Duration::from_secs(2))["phase"], "Pending");
}

#[test]
fn failed_writes_retry_with_backoff_and_send_the_latest_state() {
    let mut t = T::new(cfg());
    t.see(pod("a"), Duration::ZERO);
    assert!(t.write_with(Duration::ZERO, WriteOutcome::Retry).is_some());
    // No write before the 200 ms retry, which is after the 100 ms start.
    assert!(t.write(Duration::from_millis(150)).is_none());
    let s = t.status(Duration::from_millis(200));
    assert_eq!(s["phase"], "Running");
    assert!(t.write(Duration::from_secs(10)).is_none());
}

#[test]
fn a_pod_gone_from_the_api_is_forgotten_and_its_ip_freed() {
    let mut t = T::new(cfg());
    t.see(pod("a"), Duration::ZERO);
    t.write(Duration::ZERO);
    assert!(t
        .write_with(Duration::from_millis(100), WriteOutcome::Gone)
        .is_some());
    assert!(t.node.is_empty());
    assert_eq!(t.node.ips_in_use(), 0);
}

#[test]
fn a_relist_drops_pods_that_were_not_listed_again() {
    let mut t = T::new(cfg());
    t.see(pod("a"), Duration::ZERO);
    t.see(pod("b"), Duration::ZERO);
    while t.write(Duration::from_millis(100)).is_some() {}
    assert_eq!(t.node.ips_in_use(), 2);
    t.node.resync_begin();
    t.see(pod("a"), Duration::from_secs(1));
    t.node.resync_done();
    assert_eq!(t.node.len(), 1);
    assert_eq!(t.node.ips_in_use(), 1);
    assert!(t.node.status_of("uid-a", t.at(SEC)).is_some());
}

#[test]
fn running_pods_are_taken_over_after_a_restart() {
    let mut t = T::new(cfg());
    let mut p = job_pod("a", "Never", "10", "0");
    p["status"] = json!({"phase": "Running", "podIP": "10.128.0.50",
        "containerStatuses": [{"name": "c", "image": "nginx:1.27", "imageID": "", "ready": true,
            "restartCount": 0, "state": {"running": {"startedAt": wall(-4.0)}}}]});
    t.see(p, Duration::ZERO);
    // One write to re-assert the status, keeping the IP and start time.
    let s = t.status(Duration::ZERO);
    assert_eq!(s["phase"], "Running");
    assert_eq!(s["podIP"], "10.128.0.50");
    assert_eq!(
        s["containerStatuses"][0]["state"]["running"]["startedAt"],
        wall(-4.0)
    );
    assert_eq!(t.node.ips_in_use(), 1);
    // It ran 4 s before the restart, so it exits 6 s after.
    assert!(t.write(Duration::from_millis(5900)).is_none());
    assert_eq!(t.status(Duration::from_secs(6))["phase"], "Succeeded");

    // A finished pod is left as it is; deleting it is a plain delete.
    let mut t = T::new(cfg());
    let mut p = pod("b");
    p["status"] = json!({"phase": "Succeeded"});
    t.see(p.clone(), Duration::ZERO);
    assert!(t.write(Duration::ZERO).is_none());
    t.see(deleting(p, 30), Duration::from_secs(1));
    assert_eq!(
        t.write(Duration::from_secs(1)).unwrap().action,
        WriteAction::Delete
    );
}

#[test]
fn readiness_gates_hold_ready_back() {
    let mut t = T::new(cfg());
    let mut p = pod("a");
    p["spec"]["readinessGates"] = json!([{"conditionType": "example.com/lb"}]);
    t.see(p.clone(), Duration::ZERO);
    t.write(Duration::ZERO);
    let s = t.status(Duration::from_millis(100));
    assert_eq!(cond(&s, "ContainersReady")["status"], "True");
    assert_eq!(cond(&s, "Ready")["status"], "False");
    assert_eq!(cond(&s, "Ready")["reason"], "ReadinessGatesNotReady");
    // The gate's condition turns True: Ready follows.
    p["status"]["conditions"] = json!([{"type": "example.com/lb", "status": "True"}]);
    t.see(p, Duration::from_secs(2));
    let s = t.status(Duration::from_secs(2));
    assert_eq!(cond(&s, "Ready")["status"], "True");
    assert_eq!(cond(&s, "Ready")["lastTransitionTime"], wall(2.0));
}

#[test]
fn a_pod_ended_by_someone_else_is_not_overwritten() {
    let mut t = T::new(cfg());
    t.see(pod("a"), Duration::ZERO);
    t.write(Duration::ZERO);
    t.write(Duration::from_millis(100));
    let mut p = pod("a");
    p["status"] = json!({"phase": "Failed", "reason": "Evicted"});
    t.see(p, Duration::from_secs(1));
    assert!(t.write(Duration::from_secs(1)).is_none());
    assert_eq!(t.node.ips_in_use(), 0);
}

#[test]
fn a_full_pod_cidr_leaves_pods_in_container_creating() {
    let mut t = T::with_cidr(cfg(), "10.0.0.0/30");
    t.see(pod("a"), Duration::ZERO);
    t.see(pod("b"), Duration::ZERO);
    while t.write(Duration::from_millis(100)).is_some() {}
    let phases: Vec<String> = ["uid-a", "uid-b"]
        .iter()
        .map(|u| {
            t.node.status_of(u, t.at(SEC)).unwrap()["status"]["phase"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(phases.contains(&"Running".to_string()));
    assert!(phases.contains(&"Pending".to_string()));
    // When the first ends, the second gets its address on the next try.
    let first = if phases[0] == "Running" { "a" } else { "b" };
    let second = if first == "a" { "uid-b" } else { "uid-a" };
    t.see(deleting(pod(first), 0), Duration::from_secs(1));
    while t.write(Duration::from_secs(1)).is_some() {}
    while t.write(Duration::from_secs(11)).is_some() {}
    let s = t
        .node
        .status_of(second, t.at(Duration::from_secs(11)))
        .unwrap();
    assert_eq!(s["status"]["phase"], "Running");
}

#[test]
fn init_containers_and_sidecars() {
    let mut t = T::new(cfg());
    let mut p = pod("a");
    p["spec"]["initContainers"] = json!([{"name": "setup", "image": "busybox"},
        {"name": "proxy", "image": "envoy", "restartPolicy": "Always"}]);
    t.see(p, Duration::ZERO);
    let s = t.status(Duration::ZERO);
    assert_eq!(cond(&s, "Initialized")["status"], "False");
    assert_eq!(
        cond(&s, "Initialized")["message"],
        "containers with incomplete status: [setup]"
    );
    assert_eq!(
        s["containerStatuses"][0]["state"]["waiting"]["reason"],
        "PodInitializing"
    );
    let s = t.status(Duration::from_millis(100));
    assert_eq!(cond(&s, "Initialized")["status"], "True");
    let init = &s["initContainerStatuses"];
    assert_eq!(init[0]["state"]["terminated"]["reason"], "Completed");
    assert_eq!(init[0]["ready"], true);
    assert!(init[1]["state"]["running"].is_object());
    assert_eq!(init[1]["started"], true);
    assert_eq!(cond(&s, "Ready")["status"], "True");
}

#[test]
fn pod_events_when_enabled() {
    let mut t = T::new(SimConfig {
        pod_events: true,
        ..cfg()
    });
    t.see(pod("a"), Duration::ZERO);
    t.write(Duration::ZERO);
    t.write(Duration::from_millis(100));
    let reasons: Vec<&str> = t.node.take_events().iter().map(|e| e.reason).collect();
    assert_eq!(reasons, ["Pulled", "Created", "Started"]);
    t.see(deleting(pod("a"), 30), Duration::from_secs(1));
    let e = t.node.take_events();
    assert_eq!(e.len(), 1);
    assert_eq!(e[0].reason, "Killing");
    assert_eq!(e[0].message, "Stopping container c");
    assert_eq!(e[0].container.as_deref(), Some("c"));
    // Off by default.
    let mut t = T::new(cfg());
    t.see(pod("a"), Duration::ZERO);
    t.write(Duration::from_millis(100));
    assert!(t.node.take_events().is_empty());
}

#[test]
fn clock_maps_both_ways() {
    let t0 = Instant::now();
    let c = Clock {
        instant: t0,
        wall: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
    };
    assert_eq!(c.wall(t0 + SEC).timestamp(), 1_700_000_001);
    let w = DateTime::from_timestamp(1_700_000_005, 0).unwrap();
    assert_eq!(c.instant(w), t0 + 5 * SEC);
    let back = c.wall(c.instant(DateTime::from_timestamp(1_699_999_990, 0).unwrap()));
    // Either exact or clamped to the base when the platform cannot go that far back.
    assert!(back.timestamp() == 1_699_999_990 || back.timestamp() == 1_700_000_000);
}
