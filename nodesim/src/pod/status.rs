//! A simulated pod's `status` as kubelet's `generateAPIPodStatus` would write it: phase,
//! conditions with their transition times, container and init container statuses, host and
//! pod IPs, start time and QoS class. No I/O; time is passed in.

use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting,
    ContainerStatus, HostIP, PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::observe::ContainerLite;
use super::state::{Clock, Exit, Flip, PodSim, State, EXIT_KILLED};
use crate::ids;

/// The strategic merge patch for `pods/<name>/status`. `metadata.uid` rides along as kubelet
/// sends it, as a precondition on API servers that check it.
///
/// A condition without a reason or message says so with `null`: conditions merge by type, so
/// a field left out would keep the value of the condition's previous state (kubelet's
/// two-way merge patch has the same nulls).
pub(crate) fn patch(p: &PodSim, host_ip: Ipv4Addr, clock: &Clock, now: Instant) -> Value {
    let mut status = serde_json::to_value(render(p, host_ip, clock, now)).unwrap_or_default();
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for c in conditions.iter_mut().filter_map(Value::as_object_mut) {
            for field in ["reason", "message"] {
                c.entry(field).or_insert(Value::Null);
            }
        }
    }
    json!({
        "metadata": {"uid": &*p.key.uid},
        "status": status,
    })
}

pub(crate) fn phase(p: &PodSim) -> &'static str {
    match p.state {
        State::Rejected { .. } => "Failed",
        State::Creating { .. } => "Pending",
        State::Running { .. } | State::BackOff { .. } | State::Killing { .. } => "Running",
        State::Terminated { exit_code: 0, .. } => "Succeeded",
        State::Terminated { .. } => "Failed",
    }
}

pub(crate) fn render(p: &PodSim, host_ip: Ipv4Addr, clock: &Clock, now: Instant) -> PodStatus {
    let time = |i: Instant| Time(clock.wall(i));
    let phase = phase(p);
    let mut status = PodStatus {
        phase: Some(phase.to_string()),
        host_ip: Some(host_ip.to_string()),
        host_ips: Some(vec![HostIP {
            ip: host_ip.to_string(),
        }]),
        start_time: Some(time(p.acknowledged)),
        qos_class: Some(p.spec.qos.as_str().to_string()),
        ..PodStatus::default()
    };
    if let State::Rejected { reason, message } = &p.state {
        status.reason = Some(reason.to_string());
        status.message = Some(message.to_string());
        return status;
    }
    if let Some(ip) = p.ip {
        status.pod_ip = Some(ip.to_string());
        status.pod_ips = Some(vec![PodIP { ip: ip.to_string() }]);
    }
    status.conditions = Some(conditions(p, phase, now, &time));
    status.container_statuses = Some(
        p.spec
            .containers
            .iter()
            .map(|c| container_status(p, c, now, &time))
            .collect(),
    );
    if !p.spec.init_containers.is_empty() {
        status.init_container_statuses = Some(
            p.spec
                .init_containers
                .iter()
                .map(|c| init_container_status(p, c, now, &time))
                .collect(),
        );
    }
    status
}

fn conditions(
    p: &PodSim,
    phase: &str,
    now: Instant,
    time: &dyn Fn(Instant) -> Time,
) -> Vec<PodCondition> {
    let cond = |type_: &str, f: Flip, reason: Option<&str>, message: Option<String>| PodCondition {
        type_: type_.to_string(),
        status: if f.on { "True" } else { "False" }.to_string(),
        last_transition_time: Some(time(f.since)),
        last_probe_time: None,
        reason: reason.map(str::to_string),
        message,
    };
    let succeeded = phase == "Succeeded";
    let list = |names: Vec<&str>| format!("[{}]", names.join(" "));

    let initialized = if p.initialized.on {
        cond(
            "Initialized",
            p.initialized,
            succeeded.then_some("PodCompleted"),
            None,
        )
    } else {
        let pending = p
            .spec
            .init_containers
            .iter()
            .filter(|c| !c.sidecar)
            .map(|c| &*c.name)
            .collect();
        cond(
            "Initialized",
            p.initialized,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: {}",
                list(pending)
            )),
        )
    };
    let (not_ready_reason, not_ready_message) = if succeeded {
        (Some("PodCompleted"), None)
    } else {
        let sidecars = p.spec.init_containers.iter().filter(|c| c.sidecar);
        let unready = p
            .spec
            .containers
            .iter()
            .chain(sidecars)
            .filter(|c| !p.container_ready(c.ready_after, now))
            .map(|c| &*c.name)
            .collect();
        (
            Some("ContainersNotReady"),
            Some(format!("containers with unready status: {}", list(unready))),
        )
    };
    let containers_ready = if p.containers_ready.on {
        cond("ContainersReady", p.containers_ready, None, None)
    } else {
        cond(
            "ContainersReady",
            p.containers_ready,
            not_ready_reason,
            not_ready_message.clone(),
        )
    };
    let ready = if p.ready.on {
        cond("Ready", p.ready, None, None)
    } else if !p.containers_ready.on {
        cond("Ready", p.ready, not_ready_reason, not_ready_message)
    } else {
        cond(
            "Ready",
            p.ready,
            Some("ReadinessGatesNotReady"),
            p.gates.as_deref().map(str::to_string),
        )
    };
    let mut out = vec![
        cond("PodReadyToStartContainers", p.sandbox_ready, None, None),
        initialized,
        ready,
        containers_ready,
    ];
    if p.add_pod_scheduled {
        out.push(cond(
            "PodScheduled",
            Flip {
                on: true,
                since: p.acknowledged,
            },
            None,
            None,
        ));
    }
    out
}

/// `mainstay://<64 hex>`: one ID per pod, container and restart.
pub(crate) fn container_id(p: &PodSim, name: &str, restart: u32) -> String {
    format!(
        "mainstay://{}",
        ids::hex(
            &[
                p.key.uid.as_bytes(),
                name.as_bytes(),
                &restart.to_le_bytes()
            ],
            64
        )
    )
}

/// `<repository>@sha256:<64 hex>`, or the image itself when it is already pinned by digest.
pub(crate) fn image_id(image: &str) -> String {
    if image.contains('@') {
        return image.to_string();
    }
    let repo = match (image.rfind(':'), image.rfind('/')) {
        (Some(colon), slash) if slash.is_none_or(|s| colon > s) => &image[..colon],
        _ => image,
    };
    format!(
        "{repo}@sha256:{}",
        ids::hex(&[b"image", image.as_bytes()], 64)
    )
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.to_string()),
            message,
        }),
        ..ContainerState::default()
    }
}

fn terminated(
    code: i32,
    started: Option<Time>,
    finished: Time,
    container_id: Option<String>,
) -> ContainerState {
    let reason = if started.is_none() {
        "ContainerStatusUnknown"
    } else if code == 0 {
        "Completed"
    } else {
        "Error"
    };
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: code,
            reason: Some(reason.to_string()),
            message: started.is_none().then(|| {
                "The container could not be located when the pod was terminated".to_string()
            }),
            started_at: started,
            finished_at: Some(finished),
            container_id,
            signal: None,
        }),
        ..ContainerState::default()
    }
}

fn running(since: Time) -> ContainerState {
    ContainerState {
        running: Some(ContainerStateRunning {
            started_at: Some(since),
        }),
        ..ContainerState::default()
    }
}

/// Go's `time.Duration` text for whole seconds: `10s`, `1m20s`, `5m0s`.
fn go_duration(d: std::time::Duration) -> String {
    let s = d.as_secs();
    if s < 60 {
        format!("{s}s")
    } else {
        format!("{}m{}s", s / 60, s % 60)
    }
}

fn container_status(
    p: &PodSim,
    c: &ContainerLite,
    now: Instant,
    time: &dyn Fn(Instant) -> Time,
) -> ContainerStatus {
    // The exited run's container: the current restart's while backing off (the restart
    // count goes up when the container starts again), else the previous one's.
    let last_restart = match p.state {
        State::BackOff { .. } => p.restart_count,
        _ => p.restart_count.saturating_sub(1),
    };
    let last_state = |e: Option<Exit>| match e {
        Some(e) => terminated(
            e.code,
            Some(time(e.started)),
            time(e.finished),
            Some(container_id(p, &c.name, last_restart)),
        ),
        None => ContainerState::default(),
    };
    let has_init = p.spec.init_containers.iter().any(|i| !i.sidecar);
    let mut s = ContainerStatus {
        name: c.name.to_string(),
        image: c.image.to_string(),
        image_id: String::new(),
        restart_count: i32::try_from(p.restart_count).unwrap_or(i32::MAX),
        ready: false,
        started: Some(false),
        last_state: Some(last_state(p.last_exit)),
        ..ContainerStatus::default()
    };
    match p.state {
        State::Rejected { .. } => {}
        State::Creating { .. } => {
            let reason = if has_init {
                "PodInitializing"
            } else {
                "ContainerCreating"
            };
            s.state = Some(waiting(reason, None));
        }
        State::Running { since, .. } | State::Killing { since, .. } => {
            s.image_id = image_id(&c.image);
            s.container_id = Some(container_id(p, &c.name, p.restart_count));
            s.state = Some(running(time(since)));
            s.started = Some(true);
            s.ready = p.container_ready(c.ready_after, now);
        }
        State::BackOff { delay, .. } => {
            s.image_id = image_id(&c.image);
            s.container_id = Some(container_id(p, &c.name, p.restart_count));
            s.state = Some(waiting(
                "CrashLoopBackOff",
                Some(format!(
                    "back-off {} restarting failed container={} pod={}_{}({})",
                    go_duration(delay),
                    c.name,
                    p.key.name,
                    p.key.namespace,
                    p.key.uid
                )),
            ));
        }
        State::Terminated {
            started,
            finished,
            exit_code,
        } => {
            let id = started.map(|_| container_id(p, &c.name, p.restart_count));
            if started.is_some() {
                s.image_id = image_id(&c.image);
            }
            s.container_id = id.clone();
            s.state = Some(terminated(
                if started.is_some() {
                    exit_code
                } else {
                    EXIT_KILLED
                },
                started.map(time),
                time(finished),
                id,
            ));
        }
    }
    s
}

fn init_container_status(
    p: &PodSim,
    c: &ContainerLite,
    now: Instant,
    time: &dyn Fn(Instant) -> Time,
) -> ContainerStatus {
    let mut s = ContainerStatus {
        name: c.name.to_string(),
        image: c.image.to_string(),
        image_id: String::new(),
        restart_count: 0,
        ready: false,
        started: Some(false),
        last_state: Some(ContainerState::default()),
        ..ContainerStatus::default()
    };
    let Some(first) = p.first_started else {
        // Never ran: waiting, or (the pod ended first) unknown.
        s.state = Some(match p.state {
            State::Terminated { finished, .. } => {
                terminated(EXIT_KILLED, None, time(finished), None)
            }
            _ => waiting("PodInitializing", None),
        });
        return s;
    };
    let id = container_id(p, &c.name, 0);
    s.image_id = image_id(&c.image);
    s.container_id = Some(id.clone());
    if !c.sidecar {
        // Init containers "ran" in no time just before the containers started.
        s.state = Some(terminated(0, Some(time(first)), time(first), Some(id)));
        s.ready = true;
        return s;
    }
    match p.state {
        State::Terminated {
            finished,
            exit_code,
            ..
        } => {
            s.state = Some(terminated(
                exit_code,
                Some(time(first)),
                time(finished),
                Some(id),
            ));
        }
        _ => {
            s.state = Some(running(time(first)));
            s.started = Some(true);
            s.ready = p.container_ready(c.ready_after, now);
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_ids() {
        assert!(image_id("nginx:1.27").starts_with("nginx@sha256:"));
        assert!(image_id("registry:5000/app").starts_with("registry:5000/app@sha256:"));
        assert!(image_id("registry:5000/app:v1").starts_with("registry:5000/app@sha256:"));
        assert_eq!(image_id("nginx@sha256:abc"), "nginx@sha256:abc");
        assert_eq!(image_id("nginx:1").len(), "nginx@sha256:".len() + 64);
    }

    #[test]
    fn go_durations() {
        assert_eq!(go_duration(std::time::Duration::from_secs(10)), "10s");
        assert_eq!(go_duration(std::time::Duration::from_secs(80)), "1m20s");
        assert_eq!(go_duration(std::time::Duration::from_secs(300)), "5m0s");
    }
}
