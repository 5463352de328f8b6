//! `mainstay-apiserver`: a Kubernetes-compatible API server (the REST API kubectl, client-go and
//! kube-rs speak) over any etcd v3 store.
//!
//! It owns the Kubernetes side of the control plane: URL routing and verbs, the storage layout
//! (`/registry/<resource>/<namespace>/<name>`, JSON values, resourceVersion = mod revision), the
//! watch cache, discovery and OpenAPI, Tables, patches and server-side apply, validation and
//! defaulting, authentication by bearer token or client certificate, metrics.
//!
//! It must not depend on `mainstay-store`, `-raft` or `-server`: it reaches the store only through
//! the etcd v3 API (the `etcd-client` crate), so every replica is stateless and the same binary
//! runs on real etcd. Kubernetes' JSON types (k8s-openapi) stay inside this crate.
//!
//! # Layout
//! - `http/`: connections (TLS), authentication, in-flight budgets, metrics, the router, and
//!   the request plumbing every resource request goes through (`RequestInfo`, media types).
//! - `handlers/`: one file per REST verb, plus discovery and OpenAPI.
//! - `registry/`: what a write means: the generic store (create, update loop, delete), the
//!   per-kind strategy, the Scale view, `kinds/` with behaviour of their own, Table printers.
//! - `machinery/`: pure functions over `serde_json::Value` (metadata, name syntax, selectors,
//!   patches, server-side apply, protobuf); no I/O, no HTTP types, nothing else of this crate.
//! - `storage/`: the etcd layout (keys, CAS transactions, pages), the watch cache, compaction.
//! - `resources.rs` (the served resources) and `error.rs` (`ApiError` → `Status`) are shared.
//!
//! The one-way rule: `http → handlers → registry → storage`. A layer uses the layers below it,
//! and every layer may use `machinery`, `resources` and `error`; nothing points upward. `App`
//! (this file) is the shared context every layer is handed. (`http::request_info` and
//! `http::negotiate` are the plumbing `handlers` read, as kube's handlers read RequestInfo;
//! they use nothing above them.)

mod bootstrap;
mod error;
mod handlers;
mod http;
mod machinery;
mod registry;
mod resources;
mod storage;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{authn, inflight, metrics, tls};
use crate::resources::{ResourceInfo, RESOURCES};
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
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("apiserver: cannot connect to etcd at {0:?}: {1}")]
    Etcd(Vec<String>, etcd_client::Error),
    #[error("apiserver: cannot listen on {0}: {1}")]
    Listen(SocketAddr, std::io::Error),
    #[error("apiserver: {0}")]
    Config(String),
    #[error("apiserver: bootstrap: {0}")]
    Bootstrap(ApiError),
}

pub struct App {
    pub storage: Storage,
    pub config: Config,
    pub metrics: metrics::Metrics,
    pub inflight: inflight::Limits,
    caches: HashMap<(&'static str, &'static str), Arc<Cacher>>,
    tokens: Option<HashMap<String, authn::User>>,
    event_lease: tokio::sync::Mutex<Option<(i64, Instant)>>,
}

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
    pub fn cache(&self, r: &ResourceInfo) -> Option<&Arc<Cacher>> {
        self.caches.get(&(r.group, r.plural))
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
}

/// Connects to etcd, bootstraps, fills the watch caches and serves until the process ends.
pub async fn run(config: Config) -> Result<(), ServeError> {
    let app = build(config).await?;
    serve(app).await
}

/// Connects to the store and prepares the app (exposed for tests that serve it themselves).
pub async fn build(config: Config) -> Result<Arc<App>, ServeError> {
    let opts = etcd_client::ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(5))
        .with_keep_alive(Duration::from_secs(10), Duration::from_secs(5))
        .with_keep_alive_while_idle(true);
    let client = etcd_client::Client::connect(config.etcd_servers.clone(), Some(opts))
        .await
        .map_err(|e| ServeError::Etcd(config.etcd_servers.clone(), e))?;
    let storage = Storage::new(client, &config.etcd_prefix);
    let tokens = match &config.token_auth_file {
        Some(p) => {
            let text = std::fs::read_to_string(p).map_err(|e| {
                ServeError::Config(format!("--token-auth-file {}: {e}", p.display()))
            })?;
            Some(authn::parse_token_file(&text).map_err(ServeError::Config)?)
        }
        None => None,
    };
    let mut caches = HashMap::new();
    if config.watch_cache {
        for r in RESOURCES {
            caches.insert((r.group, r.plural), Cacher::new(r, &storage));
        }
    }
    let app = Arc::new(App {
        storage: storage.clone(),
        inflight: inflight::Limits::new(
            config.max_requests_inflight,
            config.max_mutating_requests_inflight,
        ),
        config,
        metrics: metrics::Metrics::default(),
        caches,
        tokens,
        event_lease: tokio::sync::Mutex::new(None),
    });
    // The store may still be electing a leader: retry bootstrap for a while.
    let mut tries = 0;
    loop {
        match app.bootstrap().await {
            Ok(()) => break,
            Err(e) if tries < 30 => {
                tries += 1;
                tracing::warn!(error = %e, "bootstrap: store not ready, retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => return Err(ServeError::Bootstrap(e)),
        }
    }
    for c in app.caches.values() {
        tokio::spawn(c.clone().run(storage.clone()));
    }
    tokio::spawn(app.clone().compactor());
    Ok(app)
}

/// Serves the API on `bind_address:secure_port`, over TLS when certificates are configured.
pub async fn serve(app: Arc<App>) -> Result<(), ServeError> {
    let addr = SocketAddr::new(app.config.bind_address, app.config.secure_port);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| ServeError::Listen(addr, e))?;
    serve_on(app, listener).await
}

pub async fn serve_on(app: Arc<App>, listener: tokio::net::TcpListener) -> Result<(), ServeError> {
    let addr = listener
        .local_addr()
        .map_err(|e| ServeError::Config(e.to_string()))?;
    let router = http::router(app.clone());
    let acceptor = match (&app.config.tls_cert_file, &app.config.tls_private_key_file) {
        (Some(cert), Some(key)) => {
            let acceptor = tls::acceptor(cert, key, app.config.client_ca_file.as_deref())
                .map_err(ServeError::Config)?;
            tracing::info!(%addr, "apiserver serving HTTPS");
            Some(acceptor)
        }
        (None, None) => {
            tracing::info!(%addr, "apiserver serving plain HTTP (no --tls-cert-file)");
            None
        }
        _ => {
            return Err(ServeError::Config(
                "--tls-cert-file and --tls-private-key-file go together".into(),
            ))
        }
    };
    tls::serve(listener, acceptor, router).await;
    Ok(())
}

impl App {
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
