//! kube's EndpointSlice controller (`pkg/controller/endpointslice`): the Service's selected pods
//! as IPv4 EndpointSlices of at most `--max-endpoints-per-slice` endpoints, labelled
//! `kubernetes.io/service-name` and `endpointslice.kubernetes.io/managed-by:
//! endpointslice-controller.k8s.io`, owned by the Service, changed minimally by
//! [`reconcile`]. Services without a selector are left alone (their slices are someone else's).
//!
//! I/O: Services, Pods and managed EndpointSlices watched into caches; pod events queue the
//! Services selecting the pod, slice events their Service. After writing, a Service is not
//! reconciled again until the slice cache shows its writes (kube's `endpointSliceTracker`
//! `StaleSlices`): otherwise a second sync before the watch caught up would create the same
//! slices twice. A tracker entry older than [`TRACKER_TIMEOUT`] is dropped, in case an event
//! was lost.
//!
//! Not done: topology hints and zones (no Node watch), dual-stack (IPv6 slices), the
//! `endpointslice.kubernetes.io/skip-mirror` interplay with the mirroring controller.

pub mod reconcile;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::Client;
use mainstay_component::Leading;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::endpoint::desired::{is_managed, trigger_time};
use crate::endpoint::services_for_pod;
use crate::runner::{changed, watch_all, worker, Reconcile};
use crate::util::cache::Cache;
use crate::util::pod::{labels, object_key, split_key};
use crate::util::queue::WorkQueue;
use crate::util::{api_code, supervise, write_with_retry};
use crate::{Error, Result};

pub const CONTROLLER_NAME: &str = "endpointslice-controller";
/// How long a Service waits at most for the watch to show its slice writes.
pub const TRACKER_TIMEOUT: Duration = Duration::from_secs(60);

/// A write whose effect the slice cache must show before the Service is reconciled again.
#[derive(Debug, Clone)]
enum Expect {
    /// Created or updated: the cache holds this name at this resourceVersion (or newer).
    Written {
        name: String,
        rv: String,
    },
    Deleted {
        name: String,
    },
}

struct Controller {
    client: Client,
    leading: Leading,
    max_per_slice: usize,
    services: Cache<Service>,
    pods: Cache<Pod>,
    slices: Cache<EndpointSlice>,
    queue: WorkQueue,
    /// Per Service key; bounded by the number of Services.
    tracker: Mutex<HashMap<String, (Instant, Vec<Expect>)>>,
}

/// Runs the controller with `concurrency` workers until `leading` is lost.
pub async fn run(
    client: Client,
    concurrency: usize,
    max_per_slice: usize,
    leading: Leading,
) -> Result<()> {
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        max_per_slice: max_per_slice.clamp(1, 1000),
        services: Cache::new(),
        pods: Cache::new(),
        slices: Cache::new(),
        queue: WorkQueue::default(),
        tracker: Mutex::new(HashMap::new()),
    });
    let mut tasks = JoinSet::new();
    let c = ctl.clone();
    tasks.spawn(async move {
        let api = Api::<Service>::all(c.client.clone());
        watch_all(api, &c.services, watcher::Config::default(), |ch| {
            c.queue.add(&object_key(&changed(ch).metadata))
        })
        .await
    });
    let c = ctl.clone();
    tasks.spawn(async move {
        let api = Api::<Pod>::all(c.client.clone());
        watch_all(api, &c.pods, watcher::Config::default(), |ch| {
            for key in services_for_pod(&c.services, ch) {
                c.queue.add(&key);
            }
        })
        .await
    });
    let c = ctl.clone();
    tasks.spawn(async move {
        let api = Api::<EndpointSlice>::all(c.client.clone());
        let managed = watcher::Config::default().labels(&format!(
            "{}={}",
            reconcile::MANAGED_BY_LABEL,
            reconcile::MANAGED_BY
        ));
        watch_all(api, &c.slices, managed, |ch| {
            let s = changed(ch);
            if let Some(svc) = labels(&s.metadata).get(reconcile::SERVICE_NAME_LABEL) {
                c.queue.add(&format!(
                    "{}/{svc}",
                    s.metadata.namespace.as_deref().unwrap_or("")
                ));
            }
        })
        .await
    });
    tokio::select! {
        _ = leading.lost() => {}
        _ = async {
            ctl.services.synced().await;
            ctl.pods.synced().await;
            ctl.slices.synced().await;
        } => {
            for _ in 0..concurrency.max(1) {
                tasks.spawn(worker(ctl.clone()));
            }
            supervise(&mut tasks, &leading, CONTROLLER_NAME).await;
        }
    }
    ctl.queue.shut_down();
    tasks.shutdown().await;
    Ok(())
}

fn rv_number(rv: Option<&str>) -> Option<u64> {
    rv?.parse().ok()
}

impl Controller {
    fn tracker(&self) -> MutexGuard<'_, HashMap<String, (Instant, Vec<Expect>)>> {
        self.tracker.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The Service's slices in the cache.
    fn slices_of(&self, ns: &str, name: &str) -> Vec<Arc<EndpointSlice>> {
        self.slices
            .in_namespace(ns)
            .into_iter()
            .filter(|s| {
                labels(&s.metadata)
                    .get(reconcile::SERVICE_NAME_LABEL)
                    .map(String::as_str)
                    == Some(name)
            })
            .collect()
    }

    /// True while the cache has not yet shown this Service's last writes.
    fn stale(&self, key: &str, ns: &str) -> bool {
        let mut tracker = self.tracker();
        let Some((since, expects)) = tracker.get(key) else {
            return false;
        };
        let caught_up = expects.iter().all(|e| match e {
            Expect::Written { name, rv } => self.slices.get(ns, name).is_some_and(|s| {
                let cached = s.metadata.resource_version.as_deref();
                cached == Some(rv.as_str())
                    || matches!((rv_number(cached), rv_number(Some(rv))), (Some(a), Some(b)) if a > b)
            }),
            Expect::Deleted { name } => self.slices.get(ns, name).is_none(),
        });
        if caught_up || since.elapsed() > TRACKER_TIMEOUT {
            tracker.remove(key);
            return false;
        }
        true
    }
}

impl Reconcile for Controller {
    fn name(&self) -> &'static str {
        CONTROLLER_NAME
    }

    fn queue(&self) -> &WorkQueue {
        &self.queue
    }

    async fn sync(&self, key: &str) -> Result<Option<Duration>> {
        let Some((ns, name)) = split_key(key) else {
            return Ok(None);
        };
        let Some(svc) = self.services.get(ns, name) else {
            // The garbage collector deletes the slices through their owner reference.
            self.tracker().remove(key);
            return Ok(None);
        };
        if !is_managed(&svc) || svc.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        if self.stale(key, ns) {
            // The slice watch's next event queues the Service again.
            return Ok(Some(TRACKER_TIMEOUT));
        }
        let pods = self.pods.in_namespace(ns);
        let refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        let trigger =
            trigger_time(&svc, &refs).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true));
        let existing = self.slices_of(ns, name);
        let want = reconcile::desired(&svc, &refs);
        let changes = reconcile::reconcile(
            &svc,
            &existing,
            want,
            self.max_per_slice,
            trigger.as_deref(),
        );
        if changes.is_empty() {
            return Ok(None);
        }
        let api: Api<EndpointSlice> = Api::namespaced(self.client.clone(), ns);
        let api = &api;
        let mut expects = Vec::new();
        let mut first_error: Option<Error> = None;
        let mut note = |r: Result<Option<Expect>>, expects: &mut Vec<Expect>| match r {
            Ok(Some(e)) => expects.push(e),
            Ok(None) => {}
            Err(e) => {
                first_error.get_or_insert(e);
            }
        };
        for s in &changes.update {
            let n = s.metadata.name.clone().unwrap_or_default();
            let r = write_with_retry(&self.leading, || async {
                api.replace(&n, &PostParams::default(), s).await
            })
            .await;
            note(
                r.map(|w| {
                    Some(Expect::Written {
                        name: n.clone(),
                        rv: w.metadata.resource_version.unwrap_or_default(),
                    })
                }),
                &mut expects,
            );
        }
        for s in &changes.create {
            let r = write_with_retry(&self.leading, || async {
                api.create(&PostParams::default(), s).await
            })
            .await;
            note(
                r.map(|w| {
                    Some(Expect::Written {
                        name: w.metadata.name.clone().unwrap_or_default(),
                        rv: w.metadata.resource_version.unwrap_or_default(),
                    })
                }),
                &mut expects,
            );
        }
        for s in &changes.delete {
            let n = s.metadata.name.clone().unwrap_or_default();
            let r = write_with_retry(&self.leading, || async {
                api.delete(&n, &DeleteParams::default()).await
            })
            .await;
            let r = match r {
                Err(Error::Kube(e)) if api_code(&e) == Some(404) => Ok(()),
                other => other.map(|_| ()),
            };
            note(
                r.map(|_| Some(Expect::Deleted { name: n.clone() })),
                &mut expects,
            );
        }
        if !expects.is_empty() {
            self.tracker()
                .insert(key.to_string(), (Instant::now(), expects));
        }
        match first_error {
            // The namespace is going away.
            Some(Error::Kube(e)) if api_code(&e) == Some(403) => Ok(None),
            Some(e) => Err(e),
            None => Ok(None),
        }
    }
}
