//! Stopping and restarting one simulated node while the process runs, as when its machine
//! dies and comes back: a stopped node renews no Lease, posts no status and writes nothing for
//! its pods (it still follows the pod watch, as a kubelet's informer would on reconnecting).
//! On restart it posts its status at once (all four conditions transition, as kubelet's
//! condition setters do after the node controller marked them Unknown), renews its Lease on
//! schedule, and carries on with its pods: pods deleted meanwhile are stopped and removed.
//!
//! [`admin_router`] serves it over HTTP on the component's port: `GET /nodes`,
//! `POST /nodes/{name}/stop`, `POST /nodes/{name}/start`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::mpsc;

use crate::config::NodesConfig;

/// Restart notices waiting for the status task (one per start; more are dropped and the
/// node's next periodic post catches up).
pub(crate) const RESTART_CAPACITY: usize = 64;

struct Inner {
    names: Vec<String>,
    by_name: HashMap<String, usize>,
    stopped: Vec<AtomicBool>,
    restarts: mpsc::Sender<usize>,
    restarts_rx: Mutex<Option<mpsc::Receiver<usize>>>,
}

/// The handle that stops and starts this process's nodes. Clones share it.
#[derive(Clone)]
pub struct NodeControl {
    inner: Arc<Inner>,
}

/// What [`NodeControl::stop`] and [`NodeControl::start`] can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlOutcome {
    Changed,
    AlreadyThere,
    UnknownNode,
}

impl NodeControl {
    /// Every node of `cfg`, running.
    pub fn new(cfg: &NodesConfig) -> NodeControl {
        let names: Vec<String> = (cfg.first_index..cfg.first_index.saturating_add(cfg.count))
            .map(|i| cfg.node_name(i))
            .collect();
        let by_name = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), i))
            .collect();
        let stopped = names.iter().map(|_| AtomicBool::new(false)).collect();
        let (tx, rx) = mpsc::channel(RESTART_CAPACITY);
        NodeControl {
            inner: Arc::new(Inner {
                names,
                by_name,
                stopped,
                restarts: tx,
                restarts_rx: Mutex::new(Some(rx)),
            }),
        }
    }

    pub fn is_stopped(&self, slot: usize) -> bool {
        self.inner
            .stopped
            .get(slot)
            .is_some_and(|s| s.load(Ordering::Relaxed))
    }

    /// Stops the node's heartbeats and writes.
    pub fn stop(&self, name: &str) -> ControlOutcome {
        let Some(&slot) = self.inner.by_name.get(name) else {
            return ControlOutcome::UnknownNode;
        };
        if self.inner.stopped[slot].swap(true, Ordering::Relaxed) {
            return ControlOutcome::AlreadyThere;
        }
        tracing::warn!(
            node = name,
            "node stopped: no Lease renewals, status posts or pod writes"
        );
        ControlOutcome::Changed
    }

    /// Resumes a stopped node.
    pub fn start(&self, name: &str) -> ControlOutcome {
        let Some(&slot) = self.inner.by_name.get(name) else {
            return ControlOutcome::UnknownNode;
        };
        if !self.inner.stopped[slot].swap(false, Ordering::Relaxed) {
            return ControlOutcome::AlreadyThere;
        }
        tracing::warn!(node = name, "node started again");
        if self.inner.restarts.try_send(slot).is_err() {
            tracing::debug!(
                node = name,
                "restart notice dropped; the next status post catches up"
            );
        }
        ControlOutcome::Changed
    }

    /// (name, stopped) for every node.
    pub fn list(&self) -> Vec<(String, bool)> {
        self.inner
            .names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.clone(), self.is_stopped(i)))
            .collect()
    }

    /// The receiver of restart notices (the status task takes it once).
    pub(crate) fn take_restarts(&self) -> Option<mpsc::Receiver<usize>> {
        self.inner
            .restarts_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
    }
}

fn reply(outcome: ControlOutcome, name: &str, verb: &str) -> (StatusCode, String) {
    match outcome {
        ControlOutcome::Changed => (StatusCode::OK, format!("node {name} {verb}\n")),
        ControlOutcome::AlreadyThere => (StatusCode::OK, format!("node {name} already {verb}\n")),
        ControlOutcome::UnknownNode => (
            StatusCode::NOT_FOUND,
            format!("node {name} is not simulated by this process\n"),
        ),
    }
}

async fn stop(State(c): State<NodeControl>, Path(name): Path<String>) -> (StatusCode, String) {
    reply(c.stop(&name), &name, "stopped")
}

async fn start(State(c): State<NodeControl>, Path(name): Path<String>) -> (StatusCode, String) {
    reply(c.start(&name), &name, "started")
}

async fn list(State(c): State<NodeControl>) -> String {
    c.list()
        .into_iter()
        .map(|(n, s)| format!("{n} {}\n", if s { "stopped" } else { "running" }))
        .collect()
}

/// `GET /nodes`, `POST /nodes/{name}/stop`, `POST /nodes/{name}/start` (plain text replies).
pub fn admin_router(control: NodeControl) -> Router {
    Router::new()
        .route("/nodes", get(list))
        .route("/nodes/{name}/stop", post(stop))
        .route("/nodes/{name}/start", post(start))
        .with_state(control)
}

/// Serves `/healthz`, `/readyz`, `/metrics` and the admin routes on `listener` until
/// `shutdown` resolves.
pub async fn serve_admin(
    listener: tokio::net::TcpListener,
    metrics: mainstay_component::Metrics,
    control: NodeControl,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(%addr, "serving health, metrics and /nodes/{{name}}/stop|start over plain HTTP");
    }
    let router =
        mainstay_component::serve::health_router(metrics, || true).merge(admin_router(control));
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control() -> NodeControl {
        NodeControl::new(&NodesConfig {
            count: 2,
            ..NodesConfig::default()
        })
    }

    #[tokio::test]
    async fn stop_and_start_flip_one_node_and_notify_the_restart() {
        let c = control();
        let mut rx = c.take_restarts().expect("first take");
        assert!(c.take_restarts().is_none());
        assert_eq!(c.stop("mainstay-node-1"), ControlOutcome::Changed);
        assert_eq!(c.stop("mainstay-node-1"), ControlOutcome::AlreadyThere);
        assert!(c.is_stopped(1) && !c.is_stopped(0));
        assert_eq!(c.stop("nope"), ControlOutcome::UnknownNode);
        assert_eq!(
            c.list(),
            [
                ("mainstay-node-0".to_string(), false),
                ("mainstay-node-1".to_string(), true)
            ]
        );
        assert_eq!(c.start("mainstay-node-0"), ControlOutcome::AlreadyThere);
        assert!(rx.try_recv().is_err());
        assert_eq!(c.start("mainstay-node-1"), ControlOutcome::Changed);
        assert_eq!(rx.try_recv().ok(), Some(1));
        assert!(!c.is_stopped(1));
    }

    #[tokio::test]
    async fn the_admin_routes_answer() {
        let c = control();
        let (code, body) = stop(State(c.clone()), Path("mainstay-node-0".into())).await;
        assert_eq!(code, StatusCode::OK);
        assert_eq!(body, "node mainstay-node-0 stopped\n");
        assert_eq!(
            list(State(c.clone())).await,
            "mainstay-node-0 stopped\nmainstay-node-1 running\n"
        );
        let (code, _) = start(State(c.clone()), Path("x".into())).await;
        assert_eq!(code, StatusCode::NOT_FOUND);
        let _ = admin_router(c);
    }
}
