//! The loop the workload controllers (job, cronjob, ttl-after-finished, serviceaccount,
//! endpoints, endpointslice) share: watches that fill [`Cache`]s and map each change to work
//! queue keys, and workers that hand each key to the controller's `sync` — a key is never
//! synced twice at once, a failed sync comes back with the queue's per-key backoff, and a sync
//! may ask to be run again after a delay. Everything here is I/O plumbing; the decisions live in
//! each controller's pure module.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::{watcher, WatchStreamExt};
use kube::Resource;
use serde::de::DeserializeOwned;

use crate::util::cache::{Cache, Change};
use crate::util::queue::WorkQueue;
use crate::{Error, Result};

/// A controller the workers drive.
pub trait Reconcile: Send + Sync + 'static {
    /// The controller's name (logs).
    fn name(&self) -> &'static str;
    fn queue(&self) -> &WorkQueue;
    /// Syncs one key; `Ok(Some(d))` asks for another sync after `d`.
    fn sync(&self, key: &str) -> impl Future<Output = Result<Option<Duration>>> + Send;
}

/// Hands keys to `ctl.sync` until the queue shuts down.
pub async fn worker<C: Reconcile>(ctl: Arc<C>) {
    while let Some(key) = ctl.queue().get().await {
        match ctl.sync(&key).await {
            Ok(requeue) => {
                ctl.queue().forget(&key);
                if let Some(after) = requeue {
                    ctl.queue().add_after(&key, after);
                }
            }
            Err(Error::NotLeading(_)) => {}
            Err(e) => {
                tracing::warn!(controller = ctl.name(), key = %key, error = %e, "sync failed; will retry");
                ctl.queue().add_rate_limited(&key);
            }
        }
        ctl.queue().done(&key);
    }
}

/// Watched objects keep no managedFields: nothing here reads them.
fn strip<K: Resource>(obj: &mut K) {
    obj.meta_mut().managed_fields = None;
}

/// Watches every `K` of the cluster into `cache`, calling `on_change` for each change.
pub async fn watch_all<K>(
    api: Api<K>,
    cache: &Cache<K>,
    config: watcher::Config,
    mut on_change: impl FnMut(&Change<K>) + Send,
) where
    K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
    K::DynamicType: Default,
{
    let mut events = watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                for change in cache.apply(event.modify(strip)) {
                    on_change(&change);
                }
            }
            Err(e) => tracing::warn!(
                kind = %K::kind(&Default::default()),
                error = %e,
                "watch failed; retrying"
            ),
        }
    }
}

/// The object a change is about (the new one for updates).
pub fn changed<K>(change: &Change<K>) -> &Arc<K> {
    match change {
        Change::Added(o) | Change::Deleted(o) => o,
        Change::Updated { new, .. } => new,
    }
}
