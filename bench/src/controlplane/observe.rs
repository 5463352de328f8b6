//! A watch on the pods of one namespace (kube-rs's watcher, as a client-go informer) that
//! records, per pod, when it was first seen, when it was first seen bound to a node and when it
//! was first seen Running with every container started: the instants ClusterLoader2's pod
//! startup measurement takes from its own watch.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt as _;
use kube::Api;

use crate::controlplane::results::Errors;
use crate::Error;

/// When a pod was first seen in each state (the watch event's arrival here).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PodTimes {
    pub seen: Option<Instant>,
    pub bound: Option<Instant>,
    pub running: Option<Instant>,
}

/// Counts of pods seen so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub seen: usize,
    pub bound: usize,
    pub running: usize,
}

#[derive(Default)]
struct State {
    pods: HashMap<String, PodTimes>,
    counts: Counts,
    synced: bool,
    errors: Errors,
}

/// Records what `pod` shows at `now` into `times`; which counts it moved.
fn record(times: &mut PodTimes, pod: &Pod, now: Instant) -> Counts {
    let mut moved = Counts::default();
    if times.seen.is_none() {
        times.seen = Some(now);
        moved.seen = 1;
    }
    let bound = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !n.is_empty());
    if bound && times.bound.is_none() {
        times.bound = Some(now);
        moved.bound = 1;
    }
    if running(pod) && times.running.is_none() {
        times.running = Some(now);
        moved.running = 1;
    }
    moved
}

/// Phase Running and every container reported started (state `running`).
fn running(pod: &Pod) -> bool {
    let Some(status) = pod.status.as_ref() else {
        return false;
    };
    let containers = pod.spec.as_ref().map_or(0, |s| s.containers.len());
    status.phase.as_deref() == Some("Running")
        && status.container_statuses.as_ref().is_some_and(|cs| {
            cs.len() >= containers
                && cs
                    .iter()
                    .all(|c| c.state.as_ref().is_some_and(|s| s.running.is_some()))
        })
}

/// The watch and what it recorded. Dropping it stops the watch.
pub struct Observer {
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Starts watching the pods of `namespace` and waits for the watch's first list.
    pub async fn start(client: kube::Client, namespace: &str) -> Result<Observer, Error> {
        let state = Arc::new(Mutex::new(State::default()));
        let api: Api<Pod> = Api::namespaced(client, namespace);
        let task = {
            let state = state.clone();
            tokio::spawn(async move {
                let mut events = watcher::watcher(api, watcher::Config::default())
                    .default_backoff()
                    .boxed();
                while let Some(event) = events.next().await {
                    let now = Instant::now();
                    let mut s = state.lock().unwrap_or_else(|e| e.into_inner());
                    match event {
                        Ok(Event::Apply(pod) | Event::InitApply(pod)) => {
                            let name = pod.metadata.name.clone().unwrap_or_default();
                            let moved = record(s.pods.entry(name).or_default(), &pod, now);
                            s.counts.seen += moved.seen;
                            s.counts.bound += moved.bound;
                            s.counts.running += moved.running;
                        }
                        Ok(Event::InitDone) => s.synced = true,
                        Ok(Event::Init | Event::Delete(_)) => {}
                        Err(e) => s.errors.add(format!("pod watch: {e}")),
                    }
                }
            })
        };
        let observer = Observer { state, task };
        observer
            .wait(
                "the pod watch's first list",
                Duration::from_secs(30),
                |_| true,
            )
            .await?;
        Ok(observer)
    }

    pub fn counts(&self) -> Counts {
        self.lock().counts
    }

    /// Waits until the watch has listed and `done(counts)` holds; on timeout, an error saying
    /// how far it got.
    pub async fn wait(
        &self,
        what: &str,
        timeout: Duration,
        done: impl Fn(Counts) -> bool,
    ) -> Result<(), Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let (synced, counts) = {
                let s = self.lock();
                (s.synced, s.counts)
            };
            if synced && done(counts) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Error::Setup(format!(
                    "{what}: not within {timeout:?} (seen {}, bound {}, running {})",
                    counts.seen, counts.bound, counts.running
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// What was recorded, by pod name.
    pub fn times(&self) -> HashMap<String, PodTimes> {
        self.lock().pods.clone()
    }

    /// The watch's errors (it resumes after each).
    pub fn errors(&self) -> Errors {
        self.lock().errors.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(v: serde_json::Value) -> Pod {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn each_state_is_recorded_once_at_its_first_sighting() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let spec = json!({"containers": [{"name": "a"}, {"name": "b"}]});
        let created = pod(json!({"metadata": {"name": "p"}, "spec": spec}));
        let mut bound_spec = spec.clone();
        bound_spec["nodeName"] = json!("n1");
        let bound = pod(json!({"metadata": {"name": "p"}, "spec": bound_spec,
            "status": {"phase": "Pending"}}));
        let one_started = pod(json!({"metadata": {"name": "p"}, "spec": bound_spec,
            "status": {"phase": "Running", "containerStatuses": [
                {"name": "a", "image": "i", "imageID": "", "ready": true, "restartCount": 0,
                 "state": {"running": {}}},
                {"name": "b", "image": "i", "imageID": "", "ready": false, "restartCount": 0,
                 "state": {"waiting": {"reason": "ContainerCreating"}}}]}}));
        let mut all_started = one_started.clone();
        if let Some(cs) = all_started
            .status
            .as_mut()
            .and_then(|s| s.container_statuses.as_mut())
        {
            cs[1].state = serde_json::from_value(json!({"running": {}})).unwrap();
        }

        let mut t = PodTimes::default();
        assert_eq!(record(&mut t, &created, at(0)).seen, 1);
        assert_eq!(record(&mut t, &created, at(5)), Counts::default());
        assert_eq!(record(&mut t, &bound, at(10)).bound, 1);
        assert_eq!(record(&mut t, &one_started, at(20)), Counts::default());
        assert_eq!(record(&mut t, &all_started, at(30)).running, 1);
        assert_eq!(record(&mut t, &all_started, at(40)), Counts::default());
        assert_eq!(
            t,
            PodTimes {
                seen: Some(at(0)),
                bound: Some(at(10)),
                running: Some(at(30)),
            }
        );

        // A pod first seen already Running (a late watch) counts every state at once.
        let mut late = PodTimes::default();
        let moved = record(&mut late, &all_started, at(50));
        assert_eq!((moved.seen, moved.bound, moved.running), (1, 1, 1));
    }
}
