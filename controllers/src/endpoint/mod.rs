//! kube's Endpoints controller (`pkg/controller/endpoint`): for every Service with a selector,
//! an Endpoints object of the same name listing the selected pods' addresses — ready ones in
//! `addresses`, the others in `notReadyAddresses` — with the ports resolved per pod
//! ([`desired`]). A deleted Service's Endpoints are deleted; Services without a selector (and
//! ExternalName ones) are left alone.
//!
//! I/O: Services, Pods and Endpoints watched into caches; a pod event queues the Services of its
//! namespace that select it (before or after the change), an Endpoints event its Service. A sync
//! creates, updates (with the cached resourceVersion: a conflict is retried with backoff) or
//! deletes the one Endpoints object.
//!
//! Not done: kube's truncation spreads the cut over subsets proportionally (here ready
//! addresses are kept first, then not-ready ones, in subset order); the trigger time is taken
//! from the objects' times (creation, Ready transition) rather than from a per-change tracker.

pub mod desired;

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Endpoints, Pod, Service};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::watcher;
use kube::Client;
use mainstay_component::Leading;
use tokio::task::JoinSet;

use crate::runner::{watch_all, worker, Reconcile};
use crate::util::cache::{Cache, Change};
use crate::util::pod::{object_key, split_key};
use crate::util::queue::WorkQueue;
use crate::util::{api_code, supervise, write_with_retry};
use crate::{Error, Result};

pub const CONTROLLER_NAME: &str = "endpoints-controller";

/// The keys of the Services a pod change concerns: those of its namespace that select the pod
/// as it was or as it is (shared with the EndpointSlice controller).
pub fn services_for_pod(services: &Cache<Service>, change: &Change<Pod>) -> Vec<String> {
    let (old, new) = match change {
        Change::Added(p) | Change::Deleted(p) => (None, p),
        Change::Updated { old, new } => {
            if old.metadata.resource_version == new.metadata.resource_version
                && old.metadata.resource_version.is_some()
            {
                return Vec::new();
            }
            (Some(old), new)
        }
    };
    let ns = new.metadata.namespace.as_deref().unwrap_or("");
    services
        .in_namespace(ns)
        .iter()
        .filter(|s| desired::selects(s, new) || old.is_some_and(|o| desired::selects(s, o)))
        .map(|s| object_key(&s.metadata))
        .collect()
}

struct Controller {
    client: Client,
    leading: Leading,
    services: Cache<Service>,
    pods: Cache<Pod>,
    endpoints: Cache<Endpoints>,
    queue: WorkQueue,
}

/// Runs the controller with `concurrency` workers until `leading` is lost.
pub async fn run(client: Client, concurrency: usize, leading: Leading) -> Result<()> {
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        services: Cache::new(),
        pods: Cache::new(),
        endpoints: Cache::new(),
        queue: WorkQueue::default(),
    });
    let mut tasks = JoinSet::new();
    let c = ctl.clone();
    tasks.spawn(async move {
        let api = Api::<Service>::all(c.client.clone());
        watch_all(api, &c.services, watcher::Config::default(), |ch| {
            c.queue
                .add(&object_key(&crate::runner::changed(ch).metadata))
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
        let api = Api::<Endpoints>::all(c.client.clone());
        watch_all(api, &c.endpoints, watcher::Config::default(), |ch| {
            // Someone else changed or deleted an Endpoints object: look at its Service.
            let ep = crate::runner::changed(ch);
            let key = object_key(&ep.metadata);
            if let Some((ns, name)) = split_key(&key) {
                if c.services.get(ns, name).is_some() {
                    c.queue.add(&key);
                }
            }
        })
        .await
    });
    tokio::select! {
        _ = leading.lost() => {}
        _ = async {
            ctl.services.synced().await;
            ctl.pods.synced().await;
            ctl.endpoints.synced().await;
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
        let api: Api<Endpoints> = Api::namespaced(self.client.clone(), ns);
        let existing = self.endpoints.get(ns, name);
        let Some(svc) = self.services.get(ns, name) else {
            // The Service is gone: so are its Endpoints.
            if existing.is_some() {
                let api = &api;
                match write_with_retry(&self.leading, || async move {
                    api.delete(name, &DeleteParams::default()).await
                })
                .await
                {
                    Ok(_) => {}
                    Err(Error::Kube(e)) if api_code(&e) == Some(404) => {}
                    Err(e) => return Err(e),
                }
            }
            return Ok(None);
        };
        if !desired::is_managed(&svc) || svc.metadata.deletion_timestamp.is_some() {
            return Ok(None);
        }
        let pods = self.pods.in_namespace(ns);
        let refs: Vec<&Pod> = pods.iter().map(|p| p.as_ref()).collect();
        let mut want = desired::desired_endpoints(&svc, &refs);
        if !desired::needs_write(existing.as_deref(), &want) {
            return Ok(None);
        }
        let api = &api;
        let r = match existing {
            None => {
                let want = &want;
                write_with_retry(&self.leading, || async move {
                    api.create(&PostParams::default(), want).await
                })
                .await
            }
            Some(e) => {
                want.metadata.resource_version = e.metadata.resource_version.clone();
                want.metadata.uid = e.metadata.uid.clone();
                let want = &want;
                write_with_retry(&self.leading, || async move {
                    api.replace(name, &PostParams::default(), want).await
                })
                .await
            }
        };
        match r {
            Ok(_) => Ok(None),
            // The namespace is going away: nothing to do (kube ignores it too).
            Err(Error::Kube(e)) if api_code(&e) == Some(403) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::desired::tests::{pod, svc};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use kube::runtime::watcher::Event;

    #[test]
    fn pod_changes_wake_the_services_selecting_the_pod_before_or_after() {
        let services = Cache::<Service>::new();
        services.apply(Event::Apply(svc(
            "web",
            &[("http", 80, IntOrString::Int(80))],
        )));
        let mut db = svc("db", &[]);
        db.spec.as_mut().expect("spec").selector =
            Some([("app".to_string(), "db".to_string())].into());
        services.apply(Event::Apply(db));
        let web_pod = Arc::new(pod("a", "10.0.0.1", true));
        assert_eq!(
            services_for_pod(&services, &Change::Added(web_pod.clone())),
            ["ns/web"]
        );
        // Relabelled from web to db: both hear of it.
        let mut db_pod = pod("a", "10.0.0.1", true);
        db_pod.metadata.labels = Some([("app".to_string(), "db".to_string())].into());
        db_pod.metadata.resource_version = Some("2".into());
        let mut keys = services_for_pod(
            &services,
            &Change::Updated {
                old: web_pod,
                new: Arc::new(db_pod.clone()),
            },
        );
        keys.sort();
        assert_eq!(keys, ["ns/db", "ns/web"]);
        // A re-list showing the same version wakes nobody.
        let same = Arc::new(db_pod);
        assert!(services_for_pod(
            &services,
            &Change::Updated {
                old: same.clone(),
                new: same
            }
        )
        .is_empty());
    }
}
