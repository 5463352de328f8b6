//! The shared context every layer is handed: `Config` (kube-apiserver's flags), `App` (the store
//! client, the watch caches, metrics, the in-flight budgets, the token file's users and the
//! events' lease) and the Kubernetes version this server speaks. Other files add `App` methods
//! of their own (`bootstrap.rs`, `storage/compactor.rs`, `registry/kinds/`); this file uses
//! none of them, and `serve.rs` builds and serves an `App`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::HeaderMap;
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::authn::{self, User};
use crate::http::inflight;
use crate::request::metrics;
use crate::resources::ResourceInfo;
use crate::storage::cacher::Cacher;
use crate::storage::etcd::Storage;

/// The Kubernetes version this server speaks.
pub const KUBE_VERSION: (&str, &str) = ("1", "32");

#[derive(Debug, Clone)]
pub struct Config {
    /// etcd client URLs (`--etcd-servers`).
    pub etcd_servers: Vec<String>,
    /// Key prefix (`--etcd-prefix`).
    pub etcd_prefix: String,
    pub bind_address: std::net::IpAddr,
    pub secure_port: u16,
    /// Serving certificate and key (PEM); without them the server speaks plain HTTP.
    pub tls_cert_file: Option<PathBuf>,
    pub tls_private_key_file: Option<PathBuf>,
    /// CA whose client certificates authenticate (CN = user).
    pub client_ca_file: Option<PathBuf>,
    /// `token,user,uid[,"group1,group2"]` lines.
    pub token_auth_file: Option<PathBuf>,
    /// 0 disables compaction (`--etcd-compaction-interval`).
    pub compaction_interval: Duration,
    pub watch_cache: bool,
    /// TTL of events (`--event-ttl`).
    pub event_ttl: Duration,
    /// `--service-cluster-ip-range` (IPv4 CIDR).
    pub service_cluster_ip_range: (std::net::Ipv4Addr, u8),
    /// Read-only requests served at once (`--max-requests-inflight`; 0 = no limit).
    pub max_requests_inflight: usize,
    /// Mutating requests served at once (`--max-mutating-requests-inflight`; 0 = no limit).
    pub max_mutating_requests_inflight: usize,
    /// The DefaultTolerationSeconds admission plugin's `tolerationSeconds` for
    /// `node.kubernetes.io/not-ready:NoExecute` (`--default-not-ready-toleration-seconds`).
    pub default_not_ready_toleration_seconds: i64,
    /// ... and for `node.kubernetes.io/unreachable:NoExecute`
    /// (`--default-unreachable-toleration-seconds`).
    pub default_unreachable_toleration_seconds: i64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            etcd_servers: vec!["http://127.0.0.1:2379".into()],
            etcd_prefix: "/registry".into(),
            bind_address: std::net::IpAddr::from([0, 0, 0, 0]),
            secure_port: 6443,
            tls_cert_file: None,
            tls_private_key_file: None,
            client_ca_file: None,
            token_auth_file: None,
            compaction_interval: Duration::from_secs(300),
            watch_cache: true,
            event_ttl: Duration::from_secs(3600),
            service_cluster_ip_range: (std::net::Ipv4Addr::new(10, 96, 0, 0), 12),
            max_requests_inflight: 400,
            max_mutating_requests_inflight: 200,
            default_not_ready_toleration_seconds: 300,
            default_unreachable_toleration_seconds: 300,
        }
    }
}

/// The shared context: what every request, the watch caches and the compactor are handed.
pub struct App {
    pub storage: Storage,
    pub config: Config,
    pub metrics: metrics::Metrics,
    pub inflight: inflight::Limits,
    caches: HashMap<(&'static str, &'static str), Arc<Cacher>>,
    tokens: Option<HashMap<String, User>>,
    event_lease: tokio::sync::Mutex<Option<(i64, Instant)>>,
}

/// The `/version` answer.
pub fn version_info() -> Value {
    json!({
        "major": KUBE_VERSION.0,
        "minor": KUBE_VERSION.1,
        "gitVersion": format!("v{}.{}.0-mainstay.{}", KUBE_VERSION.0, KUBE_VERSION.1, env!("CARGO_PKG_VERSION")),
        "gitCommit": "",
        "gitTreeState": "clean",
        "buildDate": "1970-01-01T00:00:00Z",
        "goVersion": "rust",
        "compiler": "rustc",
        "platform": format!("{}/{}", std::env::consts::OS, if std::env::consts::ARCH == "x86_64" { "amd64" } else { std::env::consts::ARCH }),
    })
}

impl App {
    /// The app over a connected `storage`, with the token file's users (when one is configured)
    /// and the watch caches (not yet running: `serve::build` starts them after bootstrap).
    pub(crate) fn new(
        config: Config,
        storage: Storage,
        tokens: Option<HashMap<String, User>>,
        caches: HashMap<(&'static str, &'static str), Arc<Cacher>>,
    ) -> App {
        App {
            storage,
            inflight: inflight::Limits::new(
                config.max_requests_inflight,
                config.max_mutating_requests_inflight,
            ),
            config,
            metrics: metrics::Metrics::default(),
            caches,
            tokens,
            event_lease: tokio::sync::Mutex::new(None),
        }
    }

    pub fn cache(&self, r: &ResourceInfo) -> Option<&Arc<Cacher>> {
        self.caches.get(&(r.group, r.plural))
    }

    /// Every watch cache (none with `--watch-cache=false`).
    pub(crate) fn caches(&self) -> impl Iterator<Item = &Arc<Cacher>> {
        self.caches.values()
    }

    /// The user a request authenticates as (`http::authn` against this app's token file).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<User>, ApiError> {
        authn::authenticate(self.tokens.as_ref(), headers)
    }

    /// Ready while the store answers and every watch cache has filled.
    pub async fn ready(&self) -> bool {
        self.storage.ping(Duration::from_secs(2)).await
            && self.caches.values().all(|c| c.is_ready())
    }

    /// A lease for events, reused for a minute (as kube-apiserver's lease manager does, so a
    /// burst of events costs one lease).
    pub async fn event_lease(&self) -> Result<i64, ApiError> {
        let mut g = self.event_lease.lock().await;
        if let Some((id, at)) = *g {
            if at.elapsed() < Duration::from_secs(60) {
                return Ok(id);
            }
        }
        let ttl = self.config.event_ttl.as_secs().max(1) as i64 + 60;
        let id = self.storage.grant_lease(ttl).await?;
        *g = Some((id, Instant::now()));
        Ok(id)
    }

    /// Per-resource object counts and cache revisions for /metrics.
    pub fn cache_stats(&self) -> Vec<(String, usize, i64)> {
        let mut v: Vec<(String, usize, i64)> = self
            .caches
            .values()
            .map(|c| {
                let (count, rev) = c.stats();
                let name = if c.resource.group.is_empty() {
                    c.resource.plural.to_string()
                } else {
                    format!("{}.{}", c.resource.plural, c.resource.group)
                };
                (name, count, rev)
            })
            .collect();
        v.sort();
        v
    }
}
