//! kube's ServiceAccount controller (`pkg/controller/serviceaccount/serviceaccounts_controller.go`):
//! every active namespace has the ServiceAccounts kube-controller-manager names (just `default`),
//! created again when deleted.
//!
//! Namespaces and ServiceAccounts are watched into caches; a namespace added or updated, or a
//! ServiceAccount deleted, queues its namespace; a sync creates what [`missing`] says. A
//! namespace that is not `Active` (being terminated) gets nothing. Creating one that exists
//! already (the cache lagging) is not an error.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, PostParams};
use kube::runtime::watcher;
use kube::Client;
use mainstay_component::Leading;
use tokio::task::JoinSet;

use crate::runner::{watch_all, worker, Reconcile};
use crate::util::cache::{Cache, Change};
use crate::util::queue::WorkQueue;
use crate::util::{api_code, supervise, write_with_retry};
use crate::{Error, Result};

pub const CONTROLLER_NAME: &str = "serviceaccount-controller";
/// The ServiceAccounts every namespace gets (kube-controller-manager's list: `default`).
pub const ACCOUNTS: &[&str] = &["default"];

/// The accounts `namespace` lacks: none unless it is active (phase Active or not yet set) and
/// not being deleted.
pub fn missing(namespace: &Namespace, exists: impl Fn(&str) -> bool) -> Vec<&'static str> {
    let phase = namespace.status.as_ref().and_then(|s| s.phase.as_deref());
    let active =
        matches!(phase, None | Some("Active")) && namespace.metadata.deletion_timestamp.is_none();
    if !active {
        return Vec::new();
    }
    ACCOUNTS.iter().copied().filter(|a| !exists(a)).collect()
}

struct Controller {
    client: Client,
    leading: Leading,
    namespaces: Cache<Namespace>,
    accounts: Cache<ServiceAccount>,
    queue: WorkQueue,
}

/// Runs the controller with `concurrency` workers until `leading` is lost.
pub async fn run(client: Client, concurrency: usize, leading: Leading) -> Result<()> {
    let ctl = Arc::new(Controller {
        client,
        leading: leading.clone(),
        namespaces: Cache::new(),
        accounts: Cache::new(),
        queue: WorkQueue::default(),
    });
    let mut tasks = JoinSet::new();
    let c = ctl.clone();
    tasks.spawn(async move {
        let api = Api::<Namespace>::all(c.client.clone());
        watch_all(
            api,
            &c.namespaces,
            watcher::Config::default(),
            |ch| match ch {
                Change::Added(n) | Change::Updated { new: n, .. } => {
                    c.queue.add(n.metadata.name.as_deref().unwrap_or(""))
                }
                Change::Deleted(_) => {}
            },
        )
        .await
    });
    let c = ctl.clone();
    tasks.spawn(async move {
        let api = Api::<ServiceAccount>::all(c.client.clone());
        watch_all(api, &c.accounts, watcher::Config::default(), |ch| {
            if let Change::Deleted(sa) = ch {
                c.queue.add(sa.metadata.namespace.as_deref().unwrap_or(""));
            }
        })
        .await
    });
    tokio::select! {
        _ = leading.lost() => {}
        _ = async { ctl.namespaces.synced().await; ctl.accounts.synced().await } => {
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

    async fn sync(&self, namespace: &str) -> Result<Option<Duration>> {
        let Some(ns) = self.namespaces.get("", namespace) else {
            return Ok(None);
        };
        let api: Api<ServiceAccount> = Api::namespaced(self.client.clone(), namespace);
        for name in missing(&ns, |a| self.accounts.get(namespace, a).is_some()) {
            let sa = ServiceAccount {
                metadata: ObjectMeta {
                    name: Some(name.into()),
                    ..Default::default()
                },
                ..Default::default()
            };
            let (api, sa) = (&api, &sa);
            match write_with_retry(&self.leading, || async move {
                api.create(&PostParams::default(), sa).await
            })
            .await
            {
                Ok(_) => tracing::info!(namespace, name, "created service account"),
                // Exists already, or the namespace is going away (kube ignores both).
                Err(Error::Kube(e)) if matches!(api_code(&e), Some(409) | Some(403)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::NamespaceStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn ns(phase: Option<&str>) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some("team".into()),
                ..Default::default()
            },
            spec: None,
            status: Some(NamespaceStatus {
                phase: phase.map(Into::into),
                ..Default::default()
            }),
        }
    }

    #[test]
    fn active_namespaces_get_a_default_account() {
        // (phase, default exists, being deleted, wanted)
        let cases: &[(Option<&str>, bool, bool, &[&str])] = &[
            (Some("Active"), false, false, &["default"]),
            (None, false, false, &["default"]),
            (Some("Active"), true, false, &[]),
            (Some("Terminating"), false, false, &[]),
            (Some("Active"), false, true, &[]),
        ];
        for (phase, exists, deleting, want) in cases {
            let mut n = ns(*phase);
            if *deleting {
                n.metadata.deletion_timestamp = Some(Time(chrono::Utc::now()));
            }
            assert_eq!(
                missing(&n, |_| *exists),
                *want,
                "{phase:?} {exists} {deleting}"
            );
        }
    }
}
