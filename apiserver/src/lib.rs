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

pub mod apply;
pub mod cache;
pub mod discovery;
pub mod error;
pub mod handlers;
pub mod inflight;
pub mod metrics;
pub mod objects;
pub mod openapi;
pub mod patch;
pub mod protobuf;
pub mod resources;
pub mod selectors;
pub mod storage;
pub mod table;
pub mod tls;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ::http::HeaderMap;
use serde_json::{json, Value};

use crate::cache::Cacher;
use crate::error::{ApiError, Cause};
use crate::resources::{ResourceInfo, RESOURCES};
use crate::storage::{Storage, WriteOutcome};

/// Paths served without authentication (kube-apiserver's `system:public-info-viewer`).
pub const PUBLIC_PATHS: &[&str] = &["/healthz", "/livez", "/readyz", "/version"];

/// The Kubernetes version this server speaks.
pub const KUBE_VERSION: (&str, &str) = ("1", "32");

/// Namespaces that exist from the start, as in every Kubernetes cluster.
pub const SYSTEM_NAMESPACES: &[&str] =
    &["default", "kube-system", "kube-public", "kube-node-lease"];

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

/// A user known from the token file or a client certificate.
#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    pub groups: Vec<String>,
}

/// kube's default `--service-node-port-range`.
pub const NODE_PORTS: std::ops::RangeInclusive<u64> = 30000..=32767;

fn svc_info() -> &'static ResourceInfo {
    resources::find("", "v1", "services").expect("services is served")
}

fn svc_name(svc: &Value) -> &str {
    svc.pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
}

pub struct App {
    pub storage: Storage,
    pub config: Config,
    pub metrics: metrics::Metrics,
    pub inflight: inflight::Limits,
    caches: HashMap<(&'static str, &'static str), Arc<Cacher>>,
    tokens: Option<HashMap<String, User>>,
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

/// Reads a kube-apiserver token file: `token,user,uid[,"g1,g2"]`.
pub fn parse_token_file(text: &str) -> Result<HashMap<String, User>, String> {
    let mut out = HashMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        for c in line.chars() {
            match c {
                '"' => quoted = !quoted,
                ',' if !quoted => fields.push(std::mem::take(&mut cur)),
                c => cur.push(c),
            }
        }
        fields.push(cur);
        if fields.len() < 3 || fields[0].is_empty() || fields[1].is_empty() {
            return Err(format!(
                "token file line {}: want token,user,uid[,groups]",
                n + 1
            ));
        }
        let groups = fields
            .get(3)
            .map(|g| {
                g.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        out.insert(
            fields[0].clone(),
            User {
                name: fields[1].clone(),
                groups,
            },
        );
    }
    Ok(out)
}

impl App {
    pub fn cache(&self, r: &ResourceInfo) -> Option<&Arc<Cacher>> {
        self.caches.get(&(r.group, r.plural))
    }

    /// Checks the bearer token when a token file is configured. Requests that arrived with a
    /// verified client certificate carry `x-mainstay-client-cert-user` set by the TLS layer
    /// (which strips it from requests).
    pub fn authenticate(&self, headers: &HeaderMap) -> Result<Option<User>, ApiError> {
        if let Some(u) = headers
            .get(tls::CLIENT_CERT_USER_HEADER)
            .and_then(|v| v.to_str().ok())
        {
            return Ok(Some(User {
                name: u.to_string(),
                groups: vec![],
            }));
        }
        let Some(tokens) = &self.tokens else {
            return Ok(None);
        };
        let token = headers
            .get(::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        match token.and_then(|t| tokens.get(t)) {
            Some(u) => Ok(Some(u.clone())),
            None => Err(ApiError::unauthorized()),
        }
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

    /// Every service this replica's watch cache holds (none without a cache).
    fn cached_services(&self) -> Vec<Arc<Value>> {
        let svc = svc_info();
        match self.cache(svc) {
            Some(c) => c.snapshot(&self.storage.resource_prefix(svc)).0,
            None => Vec::new(),
        }
    }

    /// Gives a service what it did not ask for: a cluster IP from the service range and node
    /// ports from 30000-32767 (kube's default `--service-node-port-range`), avoiding those this
    /// replica's cache shows in use and the reservations in `taken` (found held by an earlier
    /// attempt). What it asked for is checked against the ranges. The reservation keys written
    /// with the service (`Storage::reservations`) are what makes an address exclusive.
    pub fn allocate_service_addresses(
        &self,
        svc: &mut Value,
        taken: &[String],
    ) -> Result<(), ApiError> {
        let cached = self.cached_services();
        self.allocate_node_ports(svc, &cached, taken)?;
        self.allocate_cluster_ip(svc, &cached, taken)
    }

    fn allocate_cluster_ip(
        &self,
        svc: &mut Value,
        cached: &[Arc<Value>],
        taken: &[String],
    ) -> Result<(), ApiError> {
        let requested = svc
            .pointer("/spec/clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        if requested == "None"
            || svc.pointer("/spec/type").and_then(Value::as_str) == Some("ExternalName")
        {
            if requested == "None" {
                svc["spec"]["clusterIPs"] = json!(["None"]);
            }
            return Ok(());
        }
        let (base, bits) = self.config.service_cluster_ip_range;
        let size = 1u32 << (32 - bits as u32);
        let base = u32::from(base);
        if !requested.is_empty() {
            let in_range = requested
                .parse::<std::net::Ipv4Addr>()
                .is_ok_and(|ip| (u32::from(ip).wrapping_sub(base)) < size);
            if !in_range {
                return Err(ApiError::invalid(
                    svc_info(),
                    svc_name(svc),
                    vec![Cause {
                        reason: "FieldValueInvalid",
                        field: "spec.clusterIPs".into(),
                        message: format!(
                            "Invalid value: []string{{{requested:?}}}: failed to allocate IP {requested}: provided IP is not in the valid range. The range of valid IPs is {}/{bits}",
                            std::net::Ipv4Addr::from(base)
                        ),
                    }],
                ));
            }
            svc["spec"]["clusterIPs"] = json!([requested]);
            return Ok(());
        }
        let mut used: HashSet<String> = cached
            .iter()
            .filter_map(|s| {
                s.pointer("/spec/clusterIP")
                    .and_then(Value::as_str)
                    .map(str::to_string)
            })
            .collect();
        used.extend(
            taken
                .iter()
                .filter_map(|k| k.rsplit_once("/serviceips/").map(|(_, ip)| ip.to_string())),
        );
        for _ in 0..64 {
            // .1 is the kubernetes service's; skip the network address.
            let off = 2 + rand::random::<u32>() % (size - 3);
            let ip = std::net::Ipv4Addr::from(base + off).to_string();
            if !used.contains(&ip) {
                svc["spec"]["clusterIP"] = json!(ip);
                svc["spec"]["clusterIPs"] = json!([ip]);
                return Ok(());
            }
        }
        Err(ApiError::internal(
            "failed to allocate a serviceIP: range is full",
        ))
    }

    /// A NodePort or LoadBalancer service's ports without a nodePort get a free one.
    fn allocate_node_ports(
        &self,
        svc: &mut Value,
        cached: &[Arc<Value>],
        taken: &[String],
    ) -> Result<(), ApiError> {
        let typ = svc.pointer("/spec/type").and_then(Value::as_str);
        if !matches!(typ, Some("NodePort" | "LoadBalancer")) {
            return Ok(());
        }
        let name = svc_name(svc).to_string();
        let mut used: HashSet<u64> = cached
            .iter()
            .filter_map(|s| s.pointer("/spec/ports").and_then(Value::as_array))
            .flatten()
            .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
            .collect();
        used.extend(taken.iter().filter_map(|k| {
            k.rsplit_once("/servicenodeports/")
                .and_then(|(_, p)| p.parse::<u64>().ok())
        }));
        let Some(ports) = svc.pointer_mut("/spec/ports").and_then(Value::as_array_mut) else {
            return Ok(());
        };
        for (i, p) in ports.iter().enumerate() {
            if let Some(n) = p.get("nodePort").filter(|n| !n.is_null()) {
                if !n.as_u64().is_some_and(|n| NODE_PORTS.contains(&n)) {
                    return Err(ApiError::invalid(
                        svc_info(),
                        &name,
                        vec![Cause::invalid(
                            format!("spec.ports[{i}].nodePort"),
                            n,
                            &format!(
                                "provided port is not in the valid range. The range of valid ports is {}-{}",
                                NODE_PORTS.start(),
                                NODE_PORTS.end()
                            ),
                        )],
                    ));
                }
                used.insert(n.as_u64().unwrap_or(0));
            }
        }
        for p in ports.iter_mut().filter(|p| p.is_object()) {
            if p.get("nodePort").is_some_and(|n| !n.is_null()) {
                continue;
            }
            let span = NODE_PORTS.end() - NODE_PORTS.start() + 1;
            let port = (0..256)
                .map(|_| NODE_PORTS.start() + rand::random::<u64>() % span)
                .find(|port| !used.contains(port))
                .ok_or_else(|| {
                    ApiError::internal("failed to allocate a nodePort: range is full")
                })?;
            used.insert(port);
            p["nodePort"] = json!(port);
        }
        Ok(())
    }

    /// Deletes everything in a namespace being deleted, then the namespace (the namespace
    /// controller's job in Kubernetes, done here until controllers exist).
    /// (Boxed: it deletes through the same path that starts it.)
    pub fn finalize_namespace(
        self: Arc<Self>,
        ns: String,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        Box::pin(async move { self.finalize_namespace_inner(&ns).await })
    }

    async fn finalize_namespace_inner(self: &Arc<Self>, ns: &str) {
        for r in RESOURCES.iter().filter(|r| r.namespaced) {
            let prefix = self.storage.list_prefix(r, Some(ns));
            let Ok(page) = self
                .storage
                .list(&prefix, 0, None, 0, &|_| true, false)
                .await
            else {
                return;
            };
            for s in page.items {
                if let Some(name) = objects::meta_str(&s.object, "name") {
                    let _ = handlers::delete_one(
                        self,
                        r,
                        Some(ns),
                        name,
                        &json!({"gracePeriodSeconds": 0}),
                        false,
                    )
                    .await;
                }
            }
        }
        let nsr = resources::find("", "v1", "namespaces").expect("namespaces");
        let key = self.storage.key(nsr, None, ns);
        if let Ok(Some(cur)) = self.storage.get(&key).await {
            let _ = self.storage.delete(&key, cur.mod_revision, &[]).await;
        }
    }

    /// Creates what every cluster starts with: the system namespaces and the `kubernetes` service.
    async fn bootstrap(&self) -> Result<(), ApiError> {
        let nsr = resources::find("", "v1", "namespaces").expect("namespaces");
        for ns in SYSTEM_NAMESPACES {
            let mut obj = json!({
                "apiVersion": "v1", "kind": "Namespace",
                "metadata": {"name": ns, "uid": objects::new_uid(), "creationTimestamp": objects::now()},
                "spec": {}, "status": {},
            });
            objects::apply_defaults(nsr, &mut obj);
            self.storage
                .create(&self.storage.key(nsr, None, ns), &obj, None, &[])
                .await?;
        }
        let svc = svc_info();
        let (base, _) = self.config.service_cluster_ip_range;
        let ip = std::net::Ipv4Addr::from(u32::from(base) + 1).to_string();
        let mut obj = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "kubernetes", "namespace": "default", "uid": objects::new_uid(),
                "creationTimestamp": objects::now(),
                "labels": {"component": "apiserver", "provider": "kubernetes"}},
            "spec": {"clusterIP": ip, "clusterIPs": [ip],
                "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": self.config.secure_port}]},
        });
        objects::apply_defaults(svc, &mut obj);
        let reserve = self.storage.reservations(svc, &obj);
        match self
            .storage
            .create(
                &self.storage.key(svc, Some("default"), "kubernetes"),
                &obj,
                None,
                &reserve,
            )
            .await?
        {
            // Another replica made it first; or an older cluster has it without the reservation,
            // and it stays: allocation still avoids the addresses the cache shows in use.
            WriteOutcome::Done { .. }
            | WriteOutcome::Mismatch { .. }
            | WriteOutcome::Taken { .. } => Ok(()),
        }
    }

    /// Compacts old revisions every interval; replicas take turns through a compare-and-swap
    /// on `<prefix>/compact_rev_key` (kube-apiserver's scheme), so only one compacts per turn.
    async fn compactor(self: Arc<Self>) {
        let interval = self.config.compaction_interval;
        if interval.is_zero() {
            return;
        }
        let key = format!("{}/compact_rev_key", self.storage.prefix());
        let mut version = 0i64;
        let mut last_rev = 0i64;
        let mut tick = tokio::time::interval(interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Ok(now_rev) = self.storage.current_revision().await else {
                continue;
            };
            match self
                .storage
                .swap_raw(&key, version, last_rev.to_string().as_bytes())
                .await
            {
                Ok((won, v)) => {
                    version = v;
                    // The winner of a turn compacts what the previous turn saw as current, so
                    // one interval of history always stays for watches and continue tokens.
                    if won && last_rev > 0 {
                        if let Err(e) = self.storage.compact(last_rev).await {
                            tracing::warn!(error = %e, "compaction failed");
                        } else {
                            tracing::info!(revision = last_rev, "compacted");
                        }
                    }
                    last_rev = now_rev;
                }
                Err(e) => tracing::warn!(error = %e, "compaction turn failed"),
            }
        }
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
            Some(parse_token_file(&text).map_err(ServeError::Config)?)
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

pub fn router(app: Arc<App>) -> axum::Router {
    axum::Router::new()
        .fallback(handlers::handle)
        .with_state(app)
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
    let router = router(app.clone());
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

impl metrics::Metrics {
    pub fn render(&self, app: &App) -> String {
        use std::fmt::Write as _;
        let mut out = self.render_with(&app.cache_stats());
        out.push_str("# HELP apiserver_current_inflight_requests Number of requests being served now, per in-flight budget (request_kind).\n# TYPE apiserver_current_inflight_requests gauge\n");
        for kind in [inflight::Kind::ReadOnly, inflight::Kind::Mutating] {
            let _ = writeln!(
                out,
                "apiserver_current_inflight_requests{{request_kind=\"{}\"}} {}",
                kind.label(),
                app.inflight.current(kind)
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_files_parse_like_kube() {
        let t =
            parse_token_file("# comment\nabc,admin,1,\"system:masters,dev\"\nxyz,bob,2\n").unwrap();
        assert_eq!(t["abc"].name, "admin");
        assert_eq!(t["abc"].groups, vec!["system:masters", "dev"]);
        assert!(t["xyz"].groups.is_empty());
        assert!(parse_token_file("onlytoken\n").is_err());
    }
}
